//! Seeded generator of raw files in the exact format of the data contract
//! (`revspend_core::contract`): cp1252, `;`, the ` valor ` header, Brazilian
//! amounts with spaces, ` -   ` for missing amounts, `dd.mm.yyyy` dates, the
//! 0x82 mis-encoded service group, `AUTO PE AS`, empty groups, available
//! limits above the total, 13-character merchant cities and a few foreign
//! countries.
//!
//! Behaviour, so that the target is learnable but not trivial: each customer
//! has a constant profile, a payer type and an impulsivity. Their available
//! limit evolves: purchases consume it and a monthly payment on the due day
//! restores part of the balance; accounts predate the window, so customers
//! enter it with the balance their payer type leaves (young customers and
//! recent accounts stretch payments more often). Impulsive customers buy more in
//! superfluous groups when their limit is nearly used up, so revenge
//! spending is an imbalanced class that past behaviour partly predicts.
//!
//! Reads: `generate` params. Writes: `files` CSV files into an output
//! directory, each holding a run of consecutive days.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{Datelike, Duration, NaiveDate};
use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal};
use revspend_core::artifact::write_atomic;
use revspend_core::contract::{COLUMNS, MERCHANT_CITY_LEN, encode_cp1252, format_amount};
use revspend_core::params::{Checked, GenerateParams};
use serde::Serialize;

/// Home cities (with their accents, encoded to cp1252) and states.
const CITIES: [(&str, &str); 12] = [
    ("SÃO PAULO", "SP"),
    ("RIO DE JANEIRO", "RJ"),
    ("BELO HORIZONTE", "MG"),
    ("CURITIBA", "PR"),
    ("PORTO ALEGRE", "RS"),
    ("SALVADOR", "BA"),
    ("FORTALEZA", "CE"),
    ("RECIFE", "PE"),
    ("BRASÍLIA", "DF"),
    ("GOIÂNIA", "GO"),
    ("FLORIANÓPOLIS", "SC"),
    ("SÃO JOSÉ DOS CAMPOS", "SP"),
];

/// Foreign merchant cities and their country codes.
const ABROAD: [(&str, &str); 6] = [
    ("MIAMI", "US"),
    ("LISBOA", "PT"),
    ("BUENOS AIRES", "AR"),
    ("MONTEVIDEO", "UY"),
    ("PARIS", "FR"),
    ("MADRID", "ES"),
];

/// Merchant groups as the real file writes them (raw bytes: `SERVI\x82O`
/// and `AUTO PE AS` are the file's own mis-encodings), whether they are
/// vital, their share of purchases and the median amount in reais.
struct Group {
    label: &'static [u8],
    vital: bool,
    weight: f64,
    median: f64,
}

const GROUPS: [Group; 22] = [
    Group {
        label: b"SUPERMERCADOS",
        vital: true,
        weight: 22.0,
        median: 110.0,
    },
    Group {
        label: b"SERVI\x82O",
        vital: true,
        weight: 9.0,
        median: 90.0,
    },
    Group {
        label: b"FARMACIAS",
        vital: true,
        weight: 8.0,
        median: 55.0,
    },
    Group {
        label: b"HOSP E CLINICA",
        vital: true,
        weight: 3.0,
        median: 250.0,
    },
    Group {
        label: b"TRANS FINANC",
        vital: true,
        weight: 2.0,
        median: 300.0,
    },
    Group {
        label: b"POSTO DE GAS",
        vital: false,
        weight: 9.0,
        median: 140.0,
    },
    Group {
        label: b"RESTAURANTE",
        vital: false,
        weight: 10.0,
        median: 75.0,
    },
    Group {
        label: b"VESTUARIO",
        vital: false,
        weight: 8.0,
        median: 170.0,
    },
    Group {
        label: b"LOJA DE DEPART",
        vital: false,
        weight: 7.0,
        median: 210.0,
    },
    Group {
        label: b"VAREJO",
        vital: false,
        weight: 6.0,
        median: 120.0,
    },
    Group {
        label: b"ARTIGOS ELETRO",
        vital: false,
        weight: 3.0,
        median: 650.0,
    },
    Group {
        label: b"MOVEIS E DECOR",
        vital: false,
        weight: 2.0,
        median: 500.0,
    },
    Group {
        label: b"MAT CONSTRUCAO",
        vital: false,
        weight: 2.0,
        median: 300.0,
    },
    Group {
        label: b"AUTO PE AS",
        vital: false,
        weight: 1.5,
        median: 280.0,
    },
    Group {
        label: b"JOALHERIA",
        vital: false,
        weight: 0.8,
        median: 900.0,
    },
    Group {
        label: b"CIA AEREAS",
        vital: false,
        weight: 1.2,
        median: 1300.0,
    },
    Group {
        label: b"AGENCIA DE TUR",
        vital: false,
        weight: 0.8,
        median: 1600.0,
    },
    Group {
        label: b"HOTEIS",
        vital: false,
        weight: 1.0,
        median: 700.0,
    },
    Group {
        label: b"ALUG DE CARROS",
        vital: false,
        weight: 0.6,
        median: 450.0,
    },
    Group {
        label: b"M.O.T.O.",
        vital: false,
        weight: 1.0,
        median: 200.0,
    },
    Group {
        label: b"SEM RAMO",
        vital: false,
        weight: 1.5,
        median: 100.0,
    },
    Group {
        label: b"INEXISTENTE",
        vital: false,
        weight: 1.0,
        median: 90.0,
    },
];

/// Index used for a row whose merchant group the file leaves empty.
const EMPTY_GROUP: u8 = u8::MAX;

/// How a customer pays the monthly bill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Payer {
    /// Pays the whole balance.
    Full,
    /// Pays 30–70 % of the balance.
    Partial,
    /// Pays 3–20 % of the balance: their limit stays nearly used up.
    Stretched,
}

#[derive(Debug)]
struct Customer {
    id: u64,
    cohort: u32,
    city: usize,
    age: u16,
    female: bool,
    limit: f64,
    payer: Payer,
    /// 0..1: how strongly a tight limit pushes purchases to superfluous groups.
    impulsivity: f64,
    due_day: u32,
    /// Overpays sometimes, so the available limit exceeds the total.
    overpays: bool,
}

/// One generated purchase, kept compact so millions fit in memory.
#[derive(Debug, Clone, Copy)]
struct Row {
    day: u32,
    order: u32,
    customer: u32,
    group: u8,
    /// `None`: home city; `Some(i)`: another home city or abroad (>= 100).
    place: Option<u8>,
    amount_missing: bool,
    amount: f64,
    available: f64,
}

/// What a run wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub files: Vec<PathBuf>,
    pub rows: u64,
    pub customers: u64,
}

/// Where the pipeline keeps the raw files, relative to the repository (the
/// `--out-dir` default, and the directory `build_features.raw_glob` reads).
pub const RAW_DIR: &str = "data/raw";

/// Generates the raw files into `out_dir` (created if needed). Existing
/// `*.csv` files there are removed first so the directory holds exactly
/// this run's output.
pub fn run(params: &Checked<GenerateParams>, out_dir: &Path) -> Result<Summary> {
    let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
    let customers: Vec<Customer> = (0..params.customers)
        .map(|i| customer(&mut rng, i, params.start_date))
        .collect();
    let counts = rows_per_customer(&mut rng, params.customers, params.rows);
    let mut rows = Vec::with_capacity(params.rows as usize);
    for (i, (c, &n)) in customers.iter().zip(&counts).enumerate() {
        simulate(
            &mut rng,
            i as u32,
            c,
            n,
            params.days,
            params.start_date,
            &mut rows,
        );
    }
    // Interleave customers within a day, as a bank export would.
    rows.sort_unstable_by_key(|r| (r.day, r.order));

    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    for entry in std::fs::read_dir(out_dir).with_context(|| format!("listing {}", out_dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "csv") {
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
    }

    let cities: Vec<Vec<u8>> = CITIES.iter().map(|(c, _)| encode_cp1252(c)).collect();
    let days_per_file = params.days.div_ceil(params.files);
    let mut files = Vec::new();
    let mut start = 0usize;
    for f in 0..params.files {
        let first_day = f * days_per_file;
        let last_day = ((f + 1) * days_per_file).min(params.days) - 1;
        let end = start + rows[start..].partition_point(|r| r.day <= last_day);
        let name = format!(
            "mibolsillo_{}_{}.csv",
            (params.start_date + Duration::days(i64::from(first_day))).format("%Y%m%d"),
            (params.start_date + Duration::days(i64::from(last_day))).format("%Y%m%d"),
        );
        let path = out_dir.join(name);
        let bytes = render(&rows[start..end], &customers, &cities, params.start_date)?;
        write_atomic(&path, &bytes).with_context(|| format!("writing {}", path.display()))?;
        files.push(path);
        start = end;
    }
    Ok(Summary {
        files,
        rows: rows.len() as u64,
        customers: params.customers,
    })
}

fn customer(rng: &mut impl Rng, i: u64, start: NaiveDate) -> Customer {
    // Eleven-digit ids, unique by construction.
    let id = 10_000_000_000 + i * 104_729 + rng.random_range(0..104_729);
    let year = rng.random_range(2010..start.year());
    let cohort = year as u32 * 100 + rng.random_range(1..=12);
    let age = 18 + rng.random_range(0..32) + rng.random_range(0..32);
    // Young customers and recent accounts stretch their payments more
    // often, so the profile says something about a customer the history
    // cannot yet (a cold start).
    let stretched = 5 + if age < 30 { 8 } else { 0 } + if start.year() - year <= 3 { 8 } else { 0 };
    let payer = match rng.random_range(0..100) {
        p if p < stretched => Payer::Stretched,
        p if p < stretched + 37 => Payer::Partial,
        _ => Payer::Full,
    };
    let impulsivity = match payer {
        Payer::Stretched => rng.random_range(0.3..1.0),
        _ => rng.random_range(0.0..0.6),
    };
    let limit_dist: LogNormal<f64> =
        LogNormal::new(8.0, 0.7).unwrap_or_else(|_| unreachable!("valid lognormal"));
    let limit = (limit_dist.sample(rng) / 100.0).round().clamp(3.0, 500.0) * 100.0;
    Customer {
        id,
        cohort,
        city: rng.random_range(0..CITIES.len()),
        age,
        female: rng.random_bool(0.5),
        limit,
        payer,
        impulsivity,
        due_day: rng.random_range(1..=28),
        overpays: rng.random_bool(0.03),
    }
}

/// Splits `rows` over customers by a lognormal activity weight, at least one
/// each, summing exactly to `rows`.
fn rows_per_customer(rng: &mut impl Rng, customers: u64, rows: u64) -> Vec<u64> {
    let activity = LogNormal::new(0.0, 0.6).unwrap_or_else(|_| unreachable!("valid lognormal"));
    let weights: Vec<f64> = (0..customers).map(|_| activity.sample(rng)).collect();
    let total: f64 = weights.iter().sum();
    let spare = rows - customers;
    let mut counts: Vec<u64> = weights
        .iter()
        .map(|w| 1 + (spare as f64 * w / total) as u64)
        .collect();
    let mut left = rows - counts.iter().sum::<u64>();
    let mut i = 0usize;
    let n = counts.len();
    while left > 0 {
        counts[i % n] += 1;
        left -= 1;
        i += 1;
    }
    counts
}

fn pick_group(rng: &mut impl Rng, non_vital_boost: f64) -> u8 {
    let total: f64 = GROUPS
        .iter()
        .map(|g| {
            if g.vital {
                g.weight
            } else {
                g.weight * (1.0 + non_vital_boost)
            }
        })
        .sum();
    let mut x = rng.random_range(0.0..total);
    for (i, g) in GROUPS.iter().enumerate() {
        let w = if g.vital {
            g.weight
        } else {
            g.weight * (1.0 + non_vital_boost)
        };
        if x < w {
            return i as u8;
        }
        x -= w;
    }
    0
}

fn simulate(
    rng: &mut impl Rng,
    index: u32,
    c: &Customer,
    n: u64,
    days: u32,
    start: NaiveDate,
    rows: &mut Vec<Row>,
) {
    let mut purchase_days: Vec<u32> = (0..n).map(|_| rng.random_range(0..days)).collect();
    purchase_days.sort_unstable();
    // Every account was opened before the window, so a customer enters it
    // with the balance their paying habits leave: even a first purchase
    // can be made on a nearly used-up limit, and be revenge spending.
    let used = match c.payer {
        Payer::Full => rng.random_range(0.0..0.6),
        Payer::Partial => rng.random_range(0.1..0.9),
        Payer::Stretched => rng.random_range(0.4..1.0),
    };
    let mut available = c.limit * (1.0 - used);
    let mut day = 0u32;
    for d in purchase_days {
        // Monthly payments between the previous purchase and this one.
        while day < d {
            day += 1;
            let date = start + Duration::days(i64::from(day));
            if date.day() == c.due_day {
                let balance = (c.limit - available).max(0.0);
                let share = match c.payer {
                    Payer::Full => 1.0,
                    Payer::Partial => rng.random_range(0.5..0.95),
                    Payer::Stretched => rng.random_range(0.1..0.35),
                };
                available += balance * share;
                if c.overpays && rng.random_bool(0.5) {
                    available += c.limit * rng.random_range(0.01..0.15);
                }
            }
        }
        let tight = 1.0 - (available / c.limit).clamp(0.0, 1.0);
        // Revenge behaviour: a nearly used-up limit pushes impulsive
        // customers towards superfluous groups.
        let boost = if tight > 0.6 {
            c.impulsivity * 3.0 * (tight - 0.6) / 0.4
        } else {
            0.0
        };
        let group = if rng.random_bool(0.012) {
            EMPTY_GROUP
        } else {
            pick_group(rng, boost)
        };
        let median = GROUPS.get(group as usize).map_or(100.0, |g| g.median);
        let spread = LogNormal::new(median.ln(), 0.8).unwrap_or_else(|_| unreachable!("valid lognormal"));
        let mut amount = (spread.sample(rng) * 100.0).round() / 100.0;
        // Banks tolerate a small overdraft; beyond it the customer buys
        // something smaller that still goes through.
        let headroom = (available + 0.05 * c.limit).max(5.0);
        if amount > headroom {
            amount = (headroom * rng.random_range(0.2..0.9) * 100.0).round() / 100.0;
        }
        let place = if rng.random_bool(0.015) {
            Some(100 + rng.random_range(0..ABROAD.len()) as u8)
        } else if rng.random_bool(0.12) {
            Some(rng.random_range(0..CITIES.len()) as u8)
        } else {
            None
        };
        rows.push(Row {
            day: d,
            order: rng.random(),
            customer: index,
            group,
            place,
            amount_missing: rng.random_bool(0.004),
            amount,
            available: (available * 100.0).round() / 100.0,
        });
        available -= amount;
    }
}

fn render(rows: &[Row], customers: &[Customer], cities: &[Vec<u8>], start: NaiveDate) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(rows.len() * 110 + 200);
    out.extend_from_slice(COLUMNS.join(";").as_bytes());
    out.extend_from_slice(b"\n");
    let mut dates: Vec<String> = Vec::new();
    for r in rows {
        let c = &customers[r.customer as usize];
        let day = r.day as usize;
        if dates.len() <= day {
            dates.extend(
                (dates.len()..=day)
                    .map(|d| (start + Duration::days(d as i64)).format("%d.%m.%Y").to_string()),
            );
        }
        write!(out, "{};{};", c.id, c.cohort)?;
        out.extend_from_slice(&cities[c.city]);
        write!(
            out,
            ";{};{};{};{:.1};{:.2};{};",
            CITIES[c.city].1,
            c.age,
            if c.female { 'F' } else { 'M' },
            c.limit,
            r.available,
            dates[day],
        )?;
        let amount = if r.amount_missing { None } else { Some(r.amount) };
        out.extend_from_slice(format_amount(amount).as_bytes());
        out.push(b';');
        if let Some(g) = GROUPS.get(r.group as usize) {
            out.extend_from_slice(g.label);
        }
        out.push(b';');
        let (city, country): (&[u8], &str) = match r.place {
            None => (&cities[c.city], "BR"),
            Some(p) if p >= 100 => (
                ABROAD[(p - 100) as usize].0.as_bytes(),
                ABROAD[(p - 100) as usize].1,
            ),
            Some(p) => (&cities[p as usize], "BR"),
        };
        out.extend_from_slice(&city[..city.len().min(MERCHANT_CITY_LEN)]);
        out.push(b';');
        out.extend_from_slice(country.as_bytes());
        out.push(b'\n');
    }
    Ok(out)
}

/// Which merchant groups the generator treats as vital, by their clean names
/// (for tests that check the generator agrees with the default params).
pub fn vital_groups() -> Vec<String> {
    GROUPS
        .iter()
        .filter(|g| g.vital)
        .map(|g| revspend_core::contract::normalise_group(&revspend_core::contract::decode_cp1252(g.label)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_counts_are_exact() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let counts = rows_per_customer(&mut rng, 100, 2_345);
        assert_eq!(counts.iter().sum::<u64>(), 2_345);
        assert!(counts.iter().all(|&c| c >= 1));
    }

    #[test]
    fn merchant_cities_fit_the_contract() {
        let cities: Vec<Vec<u8>> = CITIES.iter().map(|(c, _)| encode_cp1252(c)).collect();
        // FLORIANÓPOLIS is 13 characters; SÃO JOSÉ DOS CAMPOS is cut.
        assert!(cities.iter().any(|c| c.len() > MERCHANT_CITY_LEN));
        assert!(cities.iter().all(|c| !c.contains(&b'?')));
    }

    /// Issue 14: accounts predate the window, so some customers' first
    /// purchase is made on a nearly used-up limit (a new customer can be
    /// flagged), and more often for those who stretch their payments.
    #[test]
    fn some_first_purchases_are_made_on_a_nearly_used_up_limit() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let start = NaiveDate::from_ymd_opt(2020, 1, 1).expect("date");
        let (mut tight, mut tight_stretched, mut stretched) = (0, 0, 0);
        for i in 0..4_000u32 {
            let c = customer(&mut rng, u64::from(i), start);
            let mut rows = Vec::new();
            simulate(&mut rng, i, &c, 1, 30, start, &mut rows);
            let first = rows[0].available < 0.2 * c.limit;
            tight += usize::from(first);
            if c.payer == Payer::Stretched {
                stretched += 1;
                tight_stretched += usize::from(first);
            }
        }
        let share = tight as f64 / 4_000.0;
        assert!((0.03..0.2).contains(&share), "{share}");
        let share_stretched = tight_stretched as f64 / stretched as f64;
        assert!(share_stretched > 2.0 * share, "{share_stretched} vs {share}");
    }
}
