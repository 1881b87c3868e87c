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
//!
//! # Drift scenarios
//!
//! `generate.scenarios` (absent or empty: the plain data above, byte for
//! byte) lists changes that apply from a `from` date inside the generated
//! days, so that the `monitor` stage can be shown a last period that
//! drifted in a known way. Scenarios combine and stay seeded:
//!
//! ```yaml
//! scenarios:
//!   - {kind: limit_shock, from: "2020-06-29", share: 0.3, cut: 0.5}
//!   - {kind: merchant_mix, from: "2020-06-29", factor: 2}       # and/or weights: {JOALHERIA: 5}
//!   - {kind: new_customers, from: "2020-06-29", count: 300}     # min_age: 18, max_age: 30
//! ```
//!
//! **Every row dated before a scenario's `from` is the row the run without
//! it writes, in the same place.** Scenarios draw from ChaCha streams of
//! their own (same seed, other stream numbers), and a customer a scenario
//! changes is simulated twice: once plainly, which moves the run's stream
//! on exactly as without scenarios (those rows are dropped), and once with
//! the change, which repeats the plain draws up to the first changed day
//! and then draws from a stream of the customer's own. Purchase days are
//! drawn before anything else, so existing customers keep theirs.
//!
//! **A longer run does not extend a shorter one.** Every customer's
//! purchase days are drawn uniformly over the whole window (`days`) and
//! `rows` is split over the customers up front, from one stream, so
//! `days: 210, files: 7` redraws every day and shares no file with
//! `days: 180, files: 6`. The end-to-end monitoring run therefore compares
//! two 210-day runs, without and with scenarios from the 181st day
//! (2020-06-29 from 2020-01-01; `config/scenarios/clean.yaml` and
//! `drift.yaml`): their first six files are identical.
//!
//! What each scenario moves was measured on the default population (seed
//! 20200101, 2,000 customers, 70,000 rows over 210 days), the last 30 days
//! against the first 180, with the monitor's default statistics (normalised
//! Wasserstein distance for numeric features, Jensen–Shannon for binary
//! ones; drift at 0.1). Without any scenario that split already drifts on
//! `month` (always), `purchases_before` (history only grows, 1.21) and
//! `count_30d` (the first month's windows are short, 0.13), and sits at the
//! threshold on `account_age_months` and `weekday` (0.099): a monitor that
//! compares a later month with the training months sees these in clean
//! data too. The label rate (the target rule on the raw rows) is 12.8 % in
//! the clean last 30 days.
//!
//! - `limit_shock` (`share`, `cut`): round(`share` × `customers`) of the
//!   plain customers, drawn with the seed (new customers are never among
//!   them), have their available limit multiplied by `cut` on `from` (when
//!   positive), and payments restore it to `cut` × their total limit at
//!   most (an overpaying customer's extra payment aside): their purchases
//!   consume an already squeezed limit. In the rows, their `limite_disp`
//!   falls; `limite_total` is written unchanged (the contracted limit), so
//!   their utilisation and label rate rise; the bank's small
//!   overdraft tolerance caps more of their purchases, and the impulsive
//!   ones turn to superfluous groups as their limit tightens. Share 0.3,
//!   cut 0.5: `prev_utilisation` 0.368 → 0.458 (distance 0.093 → 0.280),
//!   `revenge_count_30d` 1.34 → 1.51 (0.060 → 0.122), the utilisation at
//!   the purchase (a label input) 0.37 → 0.48, the label rate 12.8 % →
//!   17.1 %; slightly `valor` (201 → 189 reais, 0.044) and
//!   `amount_to_limit` (0.057), `group_non_vital` hardly (59.1 % → 60.5 %).
//!   It leaves alone, value for value, `idade`, `sexo_m`,
//!   `account_age_months`, the date features (`month`, `weekday`,
//!   `is_weekend`, `day_of_month`, `is_holiday`, `is_month_start`,
//!   `is_month_end`) and the counts (`purchases_before`, `days_since_prev`,
//!   `count_7d`, `count_30d`): the same customers buy on the same days;
//!   `abroad` and `valor_missing` keep their distribution.
//! - `merchant_mix` (`factor`, `weights`): from `from`, every purchase (of
//!   old and new customers) draws its merchant group from a new mix: the
//!   non-vital groups' weights multiplied by `factor`, then the `weights`
//!   named set (plain weights: SUPERMERCADOS 22, RESTAURANTE 10, VESTUARIO
//!   8, JOALHERIA 0.8...; see `GROUPS`). In the rows,
//!   `grupo_estabelecimento` moves, and `valor` with it (each group has its
//!   own typical amount). Factor 2: `group_non_vital` 59.1 % → 74.7 %
//!   (0.006 → 0.111), the groups' own distribution 0.017 → 0.113 (but
//!   `group_code` as a number only 0.080: the codes are an order, not a
//!   scale), `non_vital_share_30d` 0.085 → 0.280, `spend_30d` 0.092 →
//!   0.149, `revenge_count_30d` 0.060 → 0.123, `valor` 201 → 223 reais
//!   (0.067), `amount_to_limit` (0.060), `prev_utilisation` a little (0.368
//!   → 0.380: more spending uses more limit), the label rate 12.8 % →
//!   16.4 %. It leaves alone, value for value, the profile and date
//!   features and the counts; `abroad` and `valor_missing` keep their
//!   distribution.
//! - `new_customers` (`count`, `min_age`, `max_age`): `count` new
//!   customers (ids after the plain ones) whose accounts opened on a day
//!   drawn in the 30 days up to `from` (so `safra_abertura` is that month
//!   or the one before), aged uniformly in [`min_age`, `max_age`] (default
//!   18–30), with their whole limit available and no earlier purchase; sex,
//!   city, limit and due day are drawn as for anyone, the payer type as for
//!   a young customer with a recent account (21 % stretch their payments
//!   under 30). From `from` they buy at the plain customers' rate per
//!   customer and day, in the merchant mix of the day. The plain customers'
//!   rows are all unchanged. 300 new customers: `idade` 48.8 → 45.6 (0.013
//!   → 0.237), `account_age_months` 67.4 → 58.7 (0.099 → 0.169), cold-start
//!   history (`purchases_before` 44.9 → 39.4, `count_30d` 6.9 → 6.3,
//!   `days_since_prev` -1 on first purchases), and, since a new account
//!   starts with its limit free, `prev_utilisation` falls (0.368 → 0.311)
//!   and the label rate too (12.8 % → 11.7 %) in their first month;
//!   `sexo_m`, `abroad`, the group mix and the date features stay. It moves
//!   the profile and history features together, so the shipped
//!   `config/scenarios/drift.yaml` leaves it out.

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

mod scenarios;

use scenarios::{Cohort, Draws, Life, Plan, Weights};

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

/// The days a run covers.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: NaiveDate,
    days: u32,
}

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
    let (customers, rows) = simulate_run(params)?;
    write_files(params, &customers, &rows, out_dir)
}

/// Draws the customers and their purchases, in the order the files list
/// them.
fn simulate_run(params: &GenerateParams) -> Result<(Vec<Customer>, Vec<Row>)> {
    let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
    let mut customers: Vec<Customer> = (0..params.customers)
        .map(|i| customer(&mut rng, i, params.start_date))
        .collect();
    let counts = rows_per_customer(&mut rng, params.customers, params.rows);
    let plan = Plan::new(params)?;
    let window = Window {
        start: params.start_date,
        days: params.days,
    };
    let mut rows = Vec::with_capacity(params.rows as usize);
    for (i, (c, &n)) in customers.iter().zip(&counts).enumerate() {
        let life = plan.life(i);
        match life.changes_from() {
            None => simulate(
                &mut Draws::plain(&mut rng),
                i as u32,
                c,
                n,
                window,
                &life,
                &mut rows,
            ),
            Some(day) => {
                // The plain simulation moves the run's stream on exactly as
                // without scenarios (its rows are dropped), so every later
                // customer is drawn as in the plain run; this customer's
                // own rows repeat the plain draws up to `day`.
                let mut fork = rng.clone();
                let plain = &mut Vec::new();
                simulate(
                    &mut Draws::plain(&mut rng),
                    i as u32,
                    c,
                    n,
                    window,
                    &Life::PLAIN,
                    plain,
                );
                let after = scenarios::after_stream(params.seed, i);
                let mut draws = Draws::switching(&mut fork, day, after);
                simulate(&mut draws, i as u32, c, n, window, &life, &mut rows);
            }
        }
    }
    for cohort in plan.cohorts() {
        add_cohort(params, &plan, cohort, window, &mut customers, &mut rows);
    }
    // Interleave customers within a day, as a bank export would. Stable, so
    // that rows a scenario adds after a day cannot reorder the earlier days.
    rows.sort_by_key(|r| (r.day, r.order));
    Ok((customers, rows))
}

/// Writes the rows into `params.files` files of consecutive days, replacing
/// the directory's old `*.csv`.
fn write_files(
    params: &GenerateParams,
    customers: &[Customer],
    rows: &[Row],
    out_dir: &Path,
) -> Result<Summary> {
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
        let bytes = render(&rows[start..end], customers, &cities, params.start_date)?;
        write_atomic(&path, &bytes).with_context(|| format!("writing {}", path.display()))?;
        files.push(path);
        start = end;
    }
    Ok(Summary {
        files,
        rows: rows.len() as u64,
        customers: customers.len() as u64,
    })
}

/// Adds a cohort of new customers (`new_customers`) and their purchases,
/// all drawn from the cohort's own stream.
fn add_cohort(
    params: &GenerateParams,
    plan: &Plan,
    cohort: &Cohort,
    window: Window,
    customers: &mut Vec<Customer>,
    rows: &mut Vec<Row>,
) {
    let mut rng = scenarios::cohort_stream(params.seed, cohort);
    let first = customers.len() as u64;
    let opens = window.start + Duration::days(i64::from(cohort.first_day));
    let new: Vec<Customer> = (0..cohort.count)
        .map(|j| new_customer(&mut rng, first + j, opens, cohort))
        .collect();
    let counts = rows_per_customer(&mut rng, cohort.count, cohort.rows);
    let life = plan.new_life(cohort);
    for (j, (c, &n)) in new.iter().zip(&counts).enumerate() {
        let index = (first as usize + j) as u32;
        simulate(&mut Draws::plain(&mut rng), index, c, n, window, &life, rows);
    }
    customers.extend(new);
}

fn customer(rng: &mut impl Rng, i: u64, start: NaiveDate) -> Customer {
    let id = customer_id(rng, i);
    let year = rng.random_range(2010..start.year());
    let cohort = year as u32 * 100 + rng.random_range(1..=12);
    let age: u16 = 18 + rng.random_range(0..32) + rng.random_range(0..32);
    let (payer, impulsivity) = habits(rng, age, start.year() - year <= 3);
    Customer {
        id,
        cohort,
        limit: draw_limit(rng),
        city: rng.random_range(0..CITIES.len()),
        age,
        female: rng.random_bool(0.5),
        payer,
        impulsivity,
        due_day: rng.random_range(1..=28),
        overpays: rng.random_bool(0.03),
    }
}

/// A customer of a `new_customers` cohort: the account opened in the 30
/// days up to `opens`, an age in the cohort's range, habits drawn as for
/// anyone with a recent account.
fn new_customer(rng: &mut impl Rng, i: u64, opens: NaiveDate, cohort: &Cohort) -> Customer {
    let id = customer_id(rng, i);
    let opened = opens - Duration::days(rng.random_range(0..=30));
    let age: u16 = rng.random_range(cohort.min_age..=cohort.max_age);
    let (payer, impulsivity) = habits(rng, age, true);
    Customer {
        id,
        cohort: opened.year() as u32 * 100 + opened.month(),
        limit: draw_limit(rng),
        city: rng.random_range(0..CITIES.len()),
        age,
        female: rng.random_bool(0.5),
        payer,
        impulsivity,
        due_day: rng.random_range(1..=28),
        overpays: rng.random_bool(0.03),
    }
}

/// Eleven-digit (and longer) ids, unique by construction: customer `i`
/// draws in its own band of 104,729.
fn customer_id(rng: &mut impl Rng, i: u64) -> u64 {
    10_000_000_000 + i * 104_729 + rng.random_range(0..104_729)
}

/// Payer type and impulsivity.
fn habits(rng: &mut impl Rng, age: u16, recent_account: bool) -> (Payer, f64) {
    // Young customers and recent accounts stretch their payments more
    // often, so the profile says something about a customer the history
    // cannot yet (a cold start).
    let stretched: i32 = 5 + if age < 30 { 8 } else { 0 } + if recent_account { 8 } else { 0 };
    let payer = match rng.random_range(0..100) {
        p if p < stretched => Payer::Stretched,
        p if p < stretched + 37 => Payer::Partial,
        _ => Payer::Full,
    };
    let impulsivity = match payer {
        Payer::Stretched => rng.random_range(0.3..1.0),
        _ => rng.random_range(0.0..0.6),
    };
    (payer, impulsivity)
}

fn draw_limit(rng: &mut impl Rng) -> f64 {
    let limit_dist: LogNormal<f64> =
        LogNormal::new(8.0, 0.7).unwrap_or_else(|_| unreachable!("valid lognormal"));
    (limit_dist.sample(rng) / 100.0).round().clamp(3.0, 500.0) * 100.0
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

/// Draws a merchant group from `weights` (one per group); `non_vital_boost`
/// scales up the non-vital ones.
fn pick_group(rng: &mut impl Rng, weights: &Weights, non_vital_boost: f64) -> u8 {
    let weight = |(g, &w): (&Group, &f64)| {
        if g.vital { w } else { w * (1.0 + non_vital_boost) }
    };
    let total: f64 = GROUPS.iter().zip(weights).map(weight).sum();
    let mut x = rng.random_range(0.0..total);
    for (i, gw) in GROUPS.iter().zip(weights).enumerate() {
        let w = weight(gw);
        if x < w {
            return i as u8;
        }
        x -= w;
    }
    0
}

/// Simulates one customer's `n` purchases over the window, as `life` says
/// (the plain customer, a shocked one, a new one...).
fn simulate(
    draws: &mut Draws<'_>,
    index: u32,
    c: &Customer,
    n: u64,
    window: Window,
    life: &Life<'_>,
    rows: &mut Vec<Row>,
) {
    let first = life.first_day;
    let rng = draws.main();
    let mut purchase_days: Vec<u32> = (0..n).map(|_| rng.random_range(first..window.days)).collect();
    purchase_days.sort_unstable();
    let mut available = if life.new_account {
        c.limit
    } else {
        // Every account was opened before the window, so a customer enters
        // it with the balance their paying habits leave: even a first
        // purchase can be made on a nearly used-up limit, and be revenge
        // spending.
        let used = match c.payer {
            Payer::Full => rng.random_range(0.0..0.6),
            Payer::Partial => rng.random_range(0.1..0.9),
            Payer::Stretched => rng.random_range(0.4..1.0),
        };
        c.limit * (1.0 - used)
    };
    // The most a payment restores the available limit to: the total limit,
    // until a limit shock cuts it.
    let mut ceiling = c.limit;
    let mut shocks = life.shocks.iter().peekable();
    let mut day = first;
    let mut cut_due = |day: u32, available: &mut f64, ceiling: &mut f64| {
        while let Some(s) = shocks.next_if(|s| s.day <= day) {
            *ceiling *= s.cut;
            if *available > 0.0 {
                *available *= s.cut;
            }
        }
    };
    cut_due(day, &mut available, &mut ceiling);
    for d in purchase_days {
        // Monthly payments between the previous purchase and this one.
        while day < d {
            day += 1;
            cut_due(day, &mut available, &mut ceiling);
            let date = window.start + Duration::days(i64::from(day));
            if date.day() == c.due_day {
                let rng = draws.at(day);
                let balance = (ceiling - available).max(0.0);
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
        let rng = draws.at(d);
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
            pick_group(rng, life.weights(d), boost)
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
            let window = Window { start, days: 30 };
            simulate(
                &mut Draws::plain(&mut rng),
                i,
                &c,
                1,
                window,
                &Life::PLAIN,
                &mut rows,
            );
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

    /// A cut customer who never overpays has at most `cut` of their total
    /// limit available from the shock's day on, and only the customers the
    /// shock drew are cut.
    #[test]
    fn a_limit_shock_caps_the_available_limit_from_its_day() {
        use revspend_core::params::Check;
        let p: GenerateParams = serde_norway::from_str(
            "seed: 3\ncustomers: 300\nrows: 9000\nstart_date: \"2020-01-01\"\ndays: 180\nfiles: 6\n\
             scenarios:\n  - {kind: limit_shock, from: \"2020-04-15\", share: 0.5, cut: 0.4}\n",
        )
        .expect("parse");
        let p = p.check().expect("valid");
        let from = p.day_of(p.scenarios[0].from());
        let plan = Plan::new(&p).expect("plan");
        let shocked: Vec<bool> = (0..300).map(|i| !plan.life(i).shocks.is_empty()).collect();
        assert_eq!(shocked.iter().filter(|&&s| s).count(), 150);
        let (customers, rows) = simulate_run(&p).expect("rows");
        let (mut capped, mut above_before) = (0, 0);
        for r in &rows {
            let c = &customers[r.customer as usize];
            if !shocked[r.customer as usize] || c.overpays {
                continue;
            }
            if r.day >= from {
                assert!(r.available <= 0.4 * c.limit + 0.005, "{r:?} of {c:?}");
                capped += 1;
            } else if r.available > 0.4 * c.limit {
                above_before += 1;
            }
        }
        assert!(capped > 1_000, "{capped}");
        assert!(above_before > 1_000, "the cap is new: {above_before}");
    }
}
