//! Issue: drift scenarios. Each one changes what it documents from its
//! first day, and nothing before it.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use revspend_core::contract::{Group, ValueRanges, check_row, decode_cp1252, parse_row};

use crate::support::{day_181, generate, mean, params, utilisation};

const SHOCK: &str = "  - {kind: limit_shock, from: \"2020-06-29\", share: 0.25, cut: 0.5}\n";
const MIX: &str = "  - {kind: merchant_mix, from: \"2020-06-29\", factor: 2}\n";
const NEW: &str = "  - {kind: new_customers, from: \"2020-06-29\", count: 60, min_age: 20, max_age: 25}\n";

/// The property the monitor's end-to-end run stands on: a run with
/// scenarios from the 181st day writes the plain run's first six files,
/// byte for byte, whatever the scenarios (alone or together).
#[test]
fn the_files_before_a_scenario_are_the_plain_files() {
    let plain = generate(&params(""));
    for scenarios in [SHOCK, MIX, NEW, &format!("{SHOCK}{MIX}{NEW}")] {
        let run = generate(&params(scenarios));
        assert_eq!(run.files.len(), 7);
        for (a, b) in plain.files.iter().zip(&run.files).take(6) {
            assert_eq!(a.0, b.0);
            assert!(a.1 == b.1, "{} differs under {scenarios}", a.0);
        }
        assert!(
            plain.files[6].1 != run.files[6].1,
            "{scenarios} changes the seventh file"
        );
    }
}

/// The same holds for a scenario starting inside a file: every row dated
/// before it is the plain run's row, in the same place.
#[test]
fn rows_before_a_mid_file_scenario_are_the_plain_rows() {
    let from = NaiveDate::from_ymd_opt(2020, 4, 15).expect("date");
    let plain = generate(&params(""));
    let scenarios = [
        "  - {kind: limit_shock, from: \"2020-04-15\", share: 0.5, cut: 0.3}\n",
        "  - {kind: merchant_mix, from: \"2020-04-15\", weights: {JOALHERIA: 30, SUPERMERCADOS: 5}}\n",
        "  - {kind: new_customers, from: \"2020-04-15\", count: 100}\n",
    ];
    for scenario in scenarios {
        let run = generate(&params(scenario));
        let before = plain.lines_before(from);
        assert!(before.len() > 6_000, "{}", before.len());
        assert_eq!(before, run.lines_before(from), "{scenario}");
        assert_ne!(plain.lines.len() - before.len(), 0);
        let after = |r: &crate::support::Run| r.lines.iter().filter(|(_, t)| t.date >= from).count();
        if scenario.contains("new_customers") {
            assert!(after(&run) > after(&plain));
        } else {
            assert_eq!(after(&run), after(&plain), "the same purchase days");
        }
    }
}

#[test]
fn runs_with_scenarios_are_deterministic() {
    let p = params(&format!("{SHOCK}{MIX}{NEW}"));
    let (a, b) = (generate(&p), generate(&p));
    assert!(a.files == b.files);
}

/// A quarter of the customers have their limit halved from the 181st day:
/// exactly they, and no one else, buy differently from then on, on a limit
/// that is half used up at most.
#[test]
fn a_limit_shock_squeezes_the_limit_of_its_share_of_customers() {
    let plain = generate(&params(""));
    let run = generate(&params(SHOCK));
    let (before, after) = (plain.by_customer_from(day_181()), run.by_customer_from(day_181()));
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    let changed: Vec<&String> = before.keys().filter(|id| before[*id] != after[*id]).collect();
    // 100 customers are cut; a few of them buy nothing in the last 30 days.
    assert!((90..=100).contains(&changed.len()), "{}", changed.len());
    let rows = |by: &std::collections::BTreeMap<String, Vec<&revspend_core::contract::Transaction>>| {
        changed
            .iter()
            .flat_map(|id| by[*id].iter().copied().cloned())
            .collect::<Vec<_>>()
    };
    let (was, now) = (rows(&before), rows(&after));
    let util_was = mean(was.iter().map(utilisation));
    let util_now = mean(now.iter().map(utilisation));
    assert!(util_now > util_was + 0.25, "{util_was} -> {util_now}");
    // Half the limit is gone: the available limit stays under half the
    // total (an overpaying customer's extra payment aside).
    let squeezed = |rows: &[revspend_core::contract::Transaction]| {
        rows.iter()
            .filter(|t| t.limite_disp <= 0.5 * t.limite_total + 0.01)
            .count() as f64
            / rows.len() as f64
    };
    assert!(squeezed(&now) > 0.97, "{}", squeezed(&now));
    assert!(squeezed(&was) < 0.6, "{}", squeezed(&was));
    // The same purchase days, and the total limit as written is the
    // contract's: unchanged.
    assert_eq!(was.len(), now.len());
    assert!(
        was.iter()
            .zip(&now)
            .all(|(a, b)| { (&a.id, a.date, a.limite_total) == (&b.id, b.date, b.limite_total) })
    );
    let tight = |rows: &[revspend_core::contract::Transaction]| {
        rows.iter()
            .filter(|t| t.limite_disp < 0.2 * t.limite_total)
            .count() as f64
            / rows.len() as f64
    };
    assert!(
        tight(&now) > tight(&was) + 0.1,
        "{} -> {}",
        tight(&was),
        tight(&now)
    );
}

/// Doubling the weight of the non-vital groups moves the mix after the
/// 181st day; a named weight makes a rare group common.
#[test]
fn a_merchant_mix_moves_the_groups_bought_from_its_day() {
    let vital: BTreeSet<String> = generate::vital_groups().into_iter().collect();
    let share = |run: &crate::support::Run, pick: &dyn Fn(&str) -> bool| {
        let late: Vec<&str> = run
            .lines
            .iter()
            .filter(|(_, t)| t.date >= day_181() && !t.grupo.is_empty())
            .map(|(_, t)| t.grupo.as_str())
            .collect();
        late.iter().filter(|g| pick(g)).count() as f64 / late.len() as f64
    };
    let non_vital = |g: &str| !vital.contains(g);
    let plain = generate(&params(""));
    let run = generate(&params(MIX));
    let (was, now) = (share(&plain, &non_vital), share(&run, &non_vital));
    // 58.2 % of the plain weight is non-vital: doubled, 73.6 % (before the
    // revenge push both runs share).
    assert!(now > was + 0.1, "{was} -> {now}");

    let jewels = |g: &str| g == "JOALHERIA";
    let run = generate(&params(
        "  - {kind: merchant_mix, from: \"2020-06-29\", weights: {joalheria: 20}}\n",
    ));
    let (was, now) = (share(&plain, &jewels), share(&run, &jewels));
    assert!(was < 0.02 && now > 0.12, "{was} -> {now}");
}

/// New customers: `count` new ids whose accounts opened in the 30 days up
/// to `from`, who buy only from then on, at the ages asked for; the plain
/// customers' rows are all unchanged, and every row keeps the contract.
#[test]
fn new_customers_open_accounts_and_start_buying_from_their_day() {
    let plain = generate(&params(""));
    let run = generate(&params(NEW));
    let old = plain.ids();
    let new: BTreeSet<&str> = run.ids().difference(&old).copied().collect();
    assert_eq!(new.len(), 60);
    assert!(old.iter().all(|id| run.ids().contains(id)));
    let theirs: Vec<_> = run
        .lines
        .iter()
        .filter(|(_, t)| new.contains(t.id.as_str()))
        .map(|(_, t)| t)
        .collect();
    // 35 rows per customer over 210 days: 60 customers over 30 days.
    assert_eq!(theirs.len(), 300);
    assert!(theirs.iter().all(|t| t.date >= day_181()));
    assert!(
        theirs
            .iter()
            .all(|t| t.idade.is_some_and(|a| (20..=25).contains(&a)))
    );
    assert!(
        theirs
            .iter()
            .all(|t| matches!(t.safra_abertura, Some(202005 | 202006)))
    );
    let cohorts: BTreeSet<_> = theirs.iter().map(|t| t.safra_abertura).collect();
    assert_eq!(cohorts.len(), 2, "opened on or near the day: both months");
    let old_lines: Vec<&[u8]> = run
        .lines
        .iter()
        .filter(|(_, t)| !new.contains(t.id.as_str()))
        .map(|(l, _)| l.as_slice())
        .collect();
    let plain_lines: Vec<&[u8]> = plain.lines.iter().map(|(l, _)| l.as_slice()).collect();
    assert_eq!(old_lines, plain_lines);

    let ranges = ValueRanges::default();
    for (line, _) in &run.lines {
        let text = decode_cp1252(line);
        let fields: Vec<&str> = text.split(';').collect();
        let row = parse_row(&fields).expect("parses");
        check_row(&ranges, &row, &fields, Group::Unchecked).expect("keeps the contract's rules");
    }
}
