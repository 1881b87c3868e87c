//! One function per expectation kind: each tallies the rows (or file
//! headers) it finds unexpected.

use anyhow::{Context, Result};
use polars::prelude::*;
use regex::Regex;
use revspend_core::artifact::CUSTOMER_COLUMN;

use super::codes::{Codes, Keys, Verdict, cell_text, date_text, epoch_days, is_text};
use super::report::{Example, FileHeader};
use super::tally::{Rows, Tally};
use super::{Bounds, MAX_EXAMPLES, Scalar};

pub(super) fn columns_in_order(expected: &[String], headers: &[FileHeader]) -> Tally {
    let mut t = Tally::over(headers.len() as u64);
    for h in headers {
        let Some(pos) =
            (0..expected.len().max(h.columns.len())).find(|&i| expected.get(i) != h.columns.get(i))
        else {
            continue;
        };
        t.unexpected += 1;
        if t.examples.len() < MAX_EXAMPLES {
            let shown = |c: Option<&String>| c.map_or_else(|| "nothing".to_owned(), |c| format!("{c:?}"));
            t.examples.push(Example {
                value: format!(
                    "column {}: expected {}, found {}",
                    pos + 1,
                    shown(expected.get(pos)),
                    shown(h.columns.get(pos))
                ),
                file: h.file.clone(),
                line: 1,
            });
        }
    }
    t.observed = Some(format!("{} of {} files differ", t.unexpected, headers.len()));
    t
}

pub(super) fn not_null(rows: &Rows<'_>, column: &str) -> Result<Tally> {
    let s = rows.series(column)?;
    let mut t = Tally::over(rows.height());
    if is_text(s.dtype()) {
        let text = Codes::new(s)?;
        let empty = text.verdicts(str::is_empty);
        for (row, code) in text.codes.iter().enumerate() {
            match code {
                None => t.hit(rows, row, || "null".to_owned()),
                Some(c) if empty[c as usize] => t.hit(rows, row, String::new),
                Some(_) => {}
            }
        }
    } else if s.null_count() > 0 {
        for (row, null) in s.is_null().iter().enumerate() {
            if null == Some(true) {
                t.hit(rows, row, || "null".to_owned());
            }
        }
    }
    Ok(t)
}

pub(super) fn in_set(rows: &Rows<'_>, column: &str, values: &[Scalar]) -> Result<Tally> {
    let s = rows.series(column)?;
    let mut t = Tally::over(rows.height());
    if is_text(s.dtype()) {
        let set: PlHashSet<&str> = values
            .iter()
            .filter_map(|v| match v {
                Scalar::Text(s) => Some(s.as_str()),
                Scalar::Number(_) => None,
            })
            .collect();
        tally_text(rows, s, |v| set.contains(v), &mut t)?;
    } else {
        let set: Vec<f64> = values
            .iter()
            .filter_map(|v| match v {
                Scalar::Number(n) => Some(*n),
                Scalar::Text(_) => None,
            })
            .collect();
        let numbers = s.cast(&DataType::Float64)?;
        for (row, v) in numbers.f64()?.iter().enumerate() {
            match v {
                None => t.missing += 1,
                Some(v) if !set.contains(&v) => t.hit(rows, row, || cell_text(s, row)),
                Some(_) => {}
            }
        }
    }
    Ok(t)
}

pub(super) fn between(rows: &Rows<'_>, column: &str, bounds: Bounds) -> Result<Tally> {
    let s = rows.series(column)?;
    let mut t = Tally::over(rows.height());
    match bounds {
        Bounds::Number(min, max) => {
            let numbers = s.cast(&DataType::Float64)?;
            let outside = |v: f64| v.is_nan() || min.is_some_and(|lo| v < lo) || max.is_some_and(|hi| v > hi);
            let mut seen: Option<(f64, f64)> = None;
            for (row, v) in numbers.f64()?.iter().enumerate() {
                let Some(v) = v else {
                    t.missing += 1;
                    continue;
                };
                seen = Some(seen.map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v))));
                if outside(v) {
                    t.hit(rows, row, || cell_text(s, row));
                }
            }
            t.observed = seen.map(|(lo, hi)| format!("min {lo}, max {hi}"));
        }
        Bounds::Date(min, max) => {
            let (min, max) = (min.map(epoch_days), max.map(epoch_days));
            let mut seen: Option<(i32, i32)> = None;
            for (row, v) in s.date()?.physical().iter().enumerate() {
                let Some(v) = v else {
                    t.missing += 1;
                    continue;
                };
                seen = Some(seen.map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v))));
                if min.is_some_and(|lo| v < lo) || max.is_some_and(|hi| v > hi) {
                    t.hit(rows, row, || cell_text(s, row));
                }
            }
            t.observed = seen.map(|(lo, hi)| format!("min {}, max {}", date_text(lo), date_text(hi)));
        }
    }
    Ok(t)
}

pub(super) fn unique(rows: &Rows<'_>, columns: &[String]) -> Result<Tally> {
    let key = rows.df.select(columns.iter().map(String::as_str))?;
    let mut t = Tally::over(rows.height());
    if distinct_hashes(&key)? {
        return Ok(t);
    }
    let duplicated = key.is_duplicated()?;
    for (row, dup) in duplicated.iter().enumerate() {
        if dup == Some(true) {
            t.hit(rows, row, || {
                key.columns()
                    .iter()
                    .map(|c| cell_text(c.as_materialized_series(), row))
                    .collect::<Vec<_>>()
                    .join(", ")
            });
        }
    }
    Ok(t)
}

/// Whether every row of `key` hashes differently, which proves the rows
/// distinct. The usual case (a unique key) then costs a hash and a sort
/// instead of polars' exact group-by on row-encoded keys, which is several
/// times slower on 1M rows; any shared hash falls back to the exact check.
pub(super) fn distinct_hashes(key: &DataFrame) -> Result<bool> {
    let seed = PlSeedableRandomStateQuality::seed_from_u64(0);
    let mut hashes = Vec::with_capacity(key.height());
    let mut columns = key.columns().iter();
    if let Some(first) = columns.next() {
        first.vec_hash(seed.clone(), &mut hashes)?;
    }
    for c in columns {
        c.vec_hash_combine(seed.clone(), &mut hashes)?;
    }
    hashes.sort_unstable();
    Ok(hashes.windows(2).all(|w| w[0] != w[1]))
}

pub(super) fn matches_pattern(rows: &Rows<'_>, column: &str, pattern: &str) -> Result<Tally> {
    let regex = Regex::new(pattern).with_context(|| format!("compiling pattern {pattern:?}"))?;
    let mut t = Tally::over(rows.height());
    tally_text(rows, rows.series(column)?, |v| regex.is_match(v), &mut t)?;
    Ok(t)
}

/// Tallies a text column against `expected`, decided once per distinct
/// value: null and empty text are missing, the rest expected or not.
pub(super) fn tally_text(
    rows: &Rows<'_>,
    s: &Series,
    expected: impl Fn(&str) -> bool,
    t: &mut Tally,
) -> Result<()> {
    let text = Codes::new(s)?;
    let verdict = text.verdicts(|v| match v {
        "" => Verdict::Missing,
        v if expected(v) => Verdict::Expected,
        _ => Verdict::Unexpected,
    });
    for (row, code) in text.codes.iter().enumerate() {
        match code.map(|c| (c, verdict[c as usize])) {
            None | Some((_, Verdict::Missing)) => t.missing += 1,
            Some((c, Verdict::Unexpected)) => t.hit(rows, row, || text.text(c).to_owned()),
            Some((_, Verdict::Expected)) => {}
        }
    }
    Ok(())
}

pub(super) fn row_count_between(rows: &Rows<'_>, min: Option<u64>, max: Option<u64>) -> Tally {
    // Elements are the rows, but the table is what is unexpected (count 0
    // or 1, percent 0 or 100: see `Tally::into_result`).
    let n = rows.height();
    let mut t = Tally::over(n);
    if min.is_some_and(|lo| n < lo) || max.is_some_and(|hi| n > hi) {
        t.unexpected = 1;
    }
    t.observed = Some(format!("{n} rows"));
    t
}

/// One pass over the rows in order: each customer's first non-null value
/// per column is remembered, and any later different value marks the
/// customer (an example is its first change, with where the first value
/// was read). Every row of a marked customer is unexpected.
pub(super) fn constant_per_customer(rows: &Rows<'_>, columns: &[String]) -> Result<Tally> {
    const NONE: usize = usize::MAX;
    let customers = Codes::new(rows.series(CUSTOMER_COLUMN)?)?;
    let series: Vec<&Series> = columns.iter().map(|c| rows.series(c)).collect::<Result<_>>()?;
    let keys: Vec<Keys<'_>> = series.iter().map(|s| Keys::new(s)).collect::<Result<_>>()?;
    let mut iters: Vec<_> = keys.iter().map(Keys::iter).collect();
    // Null customers share the last slot.
    let n = customers.len() + 1;
    let k = columns.len();
    let mut row_count = vec![0u64; n];
    let mut first = vec![NONE; n * k];
    let mut first_key = vec![0u64; n * k];
    let mut varies = vec![false; n * k];
    let mut bad = vec![false; n];
    let mut examples = Vec::new();
    for (row, customer) in customers.codes.iter().enumerate() {
        let c = customer.map_or(n - 1, |c| c as usize);
        row_count[c] += 1;
        let mut changed = None;
        for (j, keys) in iters.iter_mut().enumerate() {
            let Some(key) = keys.next().flatten() else {
                continue;
            };
            let slot = c * k + j;
            if first[slot] == NONE {
                (first[slot], first_key[slot]) = (row, key);
            } else if first_key[slot] != key {
                varies[slot] = true;
                changed = changed.or(Some(j));
            }
        }
        if let Some(j) = changed {
            if !bad[c] && examples.len() < MAX_EXAMPLES {
                let r0 = first[c * k + j];
                let value = format!(
                    "customer {}: {} {} (was {} at {}:{})",
                    customer.map_or("null", |c| customers.text(c)),
                    columns[j],
                    cell_text(series[j], row),
                    cell_text(series[j], r0),
                    rows.file(r0),
                    rows.line.get(r0).unwrap_or_default()
                );
                examples.push(rows.example(row, value));
            }
            bad[c] = true;
        }
    }

    let mut t = Tally::over(rows.height());
    t.unexpected = (0..n).filter(|&c| bad[c]).map(|c| row_count[c]).sum();
    let per_column: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(j, name)| {
            let customers = (0..n).filter(|&c| varies[c * k + j]).count();
            format!("{name}: {customers}")
        })
        .collect();
    t.observed = Some(format!(
        "{} customer(s) with more than one value ({})",
        bad.iter().filter(|b| **b).count(),
        per_column.join(", ")
    ));
    t.examples = examples;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use polars::prelude::*;
    use revspend_core::artifact::CUSTOMER_COLUMN;

    use super::super::testkit::*;
    use super::super::*;

    const COLUMNS_IN_ORDER: &str = "
expectations:
  - expect: columns_in_order
    columns: [id, safra_abertura, cidade, estado, idade, sexo, limite_total, limite_disp, data,
              ' valor ', grupo_estabelecimento, cidade_estabelecimento, pais_estabelecimento]
";

    #[test]
    fn columns_in_order_checks_every_file_header() {
        let df = staged(vec![ints("idade", &[Some(30)])]);
        let mut renamed = header("b.csv");
        renamed.columns[9] = "valor".into();
        let mut short = header("c.csv");
        short.columns.pop();
        let headers = [header("a.csv"), renamed, short, header("d.csv")];

        let report = run_suite(&suite(COLUMNS_IN_ORDER), &df, &headers).expect("runs");
        let r = &report.results[0];
        assert!(!r.success);
        assert_eq!((r.element_count, r.unexpected_count), (4, 2));
        assert!(close(r.unexpected_percent, 50.0));
        assert_eq!(r.examples.len(), 2);
        assert_eq!((r.examples[0].file.as_str(), r.examples[0].line), ("b.csv", 1));
        assert_eq!(
            r.examples[0].value,
            r#"column 10: expected " valor ", found "valor""#
        );
        assert_eq!(r.examples[1].file, "c.csv");
        assert_eq!(
            r.examples[1].value,
            r#"column 13: expected "pais_estabelecimento", found nothing"#
        );

        let report = run_suite(&suite(COLUMNS_IN_ORDER), &df, &[header("a.csv")]).expect("runs");
        assert!(report.success && report.results[0].success);
        assert_eq!(report.results[0].unexpected_count, 0);
    }

    #[test]
    fn not_null_counts_nulls_and_empty_strings() {
        let df = staged(vec![
            strings("cidade", &[Some("RECIFE"), None, Some(""), Some("NATAL")]),
            ints("idade", &[Some(30), Some(40), None, Some(50)]),
        ]);
        let r = one("expectations: [{expect: not_null, column: cidade}]", &df);
        assert!(!r.success);
        assert_eq!((r.element_count, r.unexpected_count, r.missing_count), (4, 2, 0));
        assert!(close(r.unexpected_percent, 50.0));
        assert_eq!(lines(&r), [3, 4]);
        assert_eq!(values(&r), ["null", ""]);
        assert_eq!(r.expectation, "not_null(cidade)");
        assert_eq!(r.examples[0].file, "a.csv");

        let r = one("expectations: [{expect: not_null, column: idade}]", &df);
        assert_eq!(r.unexpected_count, 1);
        assert_eq!(lines(&r), [4]);

        let ok = staged(vec![strings("cidade", &[Some("RECIFE")])]);
        let r = one("expectations: [{expect: not_null, column: cidade}]", &ok);
        assert!(r.success);
        assert_eq!(r.unexpected_count, 0);
    }

    #[test]
    fn in_set_skips_nulls_and_reports_the_other_values() {
        let df = staged(vec![
            strings(
                "sexo",
                &[Some("F"), Some("M"), Some("X"), None, Some(""), Some("F")],
            ),
            ints(
                "safra_abertura",
                &[Some(201901), Some(201902), None, Some(201903), None, None],
            ),
        ]);
        let r = one(
            "expectations: [{expect: in_set, column: sexo, values: [F, M]}]",
            &df,
        );
        assert!(!r.success);
        assert_eq!((r.element_count, r.missing_count, r.unexpected_count), (6, 2, 1));
        assert!(close(r.unexpected_percent, 25.0));
        assert_eq!(values(&r), ["X"]);
        assert_eq!(lines(&r), [4]);

        let r = one(
            "expectations: [{expect: in_set, column: sexo, values: [F, M, X]}]",
            &df,
        );
        assert!(r.success);

        let r = one(
            "expectations: [{expect: in_set, column: safra_abertura, values: [201901, 201902]}]",
            &df,
        );
        assert_eq!((r.missing_count, r.unexpected_count), (3, 1));
        assert_eq!(values(&r), ["201903"]);
        assert_eq!(lines(&r), [5]);
    }

    #[test]
    fn between_checks_numbers_and_dates() {
        let df = staged(vec![
            ints("idade", &[Some(10), Some(20), Some(120), None, Some(110)]),
            dates(
                "data",
                &[
                    "2020-01-01",
                    "2019-12-31",
                    "2020-06-30",
                    "2020-07-01",
                    "2020-03-01",
                ],
            ),
        ]);
        let r = one(
            "expectations: [{expect: between, column: idade, min: 16, max: 110}]",
            &df,
        );
        assert!(!r.success);
        assert_eq!((r.element_count, r.missing_count, r.unexpected_count), (5, 1, 2));
        assert!(close(r.unexpected_percent, 50.0));
        assert_eq!(values(&r), ["10", "120"]);
        assert_eq!(lines(&r), [2, 4]);
        assert_eq!(r.observed.as_deref(), Some("min 10, max 120"));

        let r = one("expectations: [{expect: between, column: idade, max: 200}]", &df);
        assert!(r.success);

        let r = one(
            "expectations: [{expect: between, column: data, min: 2020-01-01, max: '2020-06-30'}]",
            &df,
        );
        assert_eq!(r.unexpected_count, 2);
        assert_eq!(values(&r), ["2019-12-31", "2020-07-01"]);
        assert_eq!(lines(&r), [3, 5]);
    }

    #[test]
    fn unique_flags_every_row_of_a_repeated_key() {
        let mut df = staged(vec![ints("idade", &[Some(1), Some(2), Some(3), Some(4)])]);
        // Lines 2, 3, 3, 5: the two rows at line 3 collide.
        df.replace(LINE_COLUMN, Column::new(LINE_COLUMN.into(), [2u64, 3, 3, 5]))
            .expect("replace");
        let r = one("expectations: [{expect: unique, columns: [file, line]}]", &df);
        assert!(!r.success);
        assert_eq!((r.element_count, r.unexpected_count), (4, 2));
        assert!(close(r.unexpected_percent, 50.0));
        assert_eq!(values(&r), ["a.csv, 3", "a.csv, 3"]);
        assert_eq!(lines(&r), [3, 3]);
        assert_eq!(r.expectation, "unique(file, line)");

        let r = one("expectations: [{expect: unique, columns: [file, idade]}]", &df);
        assert!(r.success);
    }

    #[test]
    fn matches_pattern_is_a_search_skipping_nulls() {
        let df = staged(vec![strings(
            "estado",
            &[
                Some("SP"),
                Some("sp"),
                Some(""),
                Some("S P"),
                Some("RJ"),
                Some("xSPx"),
            ],
        )]);
        let r = one(
            r#"expectations: [{expect: matches_pattern, column: estado, pattern: "^[A-Z]{2}$"}]"#,
            &df,
        );
        assert!(!r.success);
        assert_eq!((r.element_count, r.missing_count, r.unexpected_count), (6, 1, 3));
        assert!(close(r.unexpected_percent, 60.0));
        assert_eq!(values(&r), ["sp", "S P", "xSPx"]);
        assert_eq!(lines(&r), [3, 5, 7]);

        // Unanchored: a search, so "xSPx" matches.
        let r = one(
            r#"expectations: [{expect: matches_pattern, column: estado, pattern: "[A-Z]{2}"}]"#,
            &df,
        );
        assert_eq!(values(&r), ["sp", "S P"]);
    }

    #[test]
    fn row_count_between_counts_the_table() {
        let df = staged(vec![ints("idade", &[Some(1), Some(2), Some(3)])]);
        let r = one("expectations: [{expect: row_count_between, min: 1, max: 3}]", &df);
        assert!(r.success);
        assert_eq!((r.element_count, r.unexpected_count), (3, 0));
        assert!(close(r.unexpected_percent, 0.0));
        assert_eq!(r.observed.as_deref(), Some("3 rows"));

        let r = one("expectations: [{expect: row_count_between, min: 5}]", &df);
        assert!(!r.success);
        assert_eq!(r.unexpected_count, 1);
        assert!(close(r.unexpected_percent, 100.0));

        let empty = staged(vec![ints("idade", &[])]);
        let r = one("expectations: [{expect: row_count_between, min: 1}]", &empty);
        assert!(!r.success);
    }

    #[test]
    fn constant_per_customer_flags_all_rows_of_a_changing_customer() {
        let df = staged(vec![
            strings(
                CUSTOMER_COLUMN,
                &[
                    Some("c1"),
                    Some("c2"),
                    Some("c1"),
                    Some("c2"),
                    Some("c3"),
                    Some("c3"),
                    Some("c3"),
                ],
            ),
            strings(
                "sexo",
                &[
                    Some("F"),
                    Some("F"),
                    Some("F"),
                    Some("M"),
                    Some("M"),
                    None,
                    Some(""),
                ],
            ),
            ints(
                "idade",
                &[Some(30), Some(40), Some(30), Some(40), Some(50), None, Some(50)],
            ),
        ]);
        let r = one(
            "expectations: [{expect: constant_per_customer, columns: [sexo, idade]}]",
            &df,
        );
        assert!(!r.success);
        assert_eq!((r.element_count, r.unexpected_count), (7, 2));
        assert!(close(r.unexpected_percent, 100.0 * 2.0 / 7.0));
        assert_eq!(lines(&r), [5]);
        assert_eq!(values(&r), ["customer c2: sexo M (was F at a.csv:3)"]);
        assert_eq!(
            r.observed.as_deref(),
            Some("1 customer(s) with more than one value (sexo: 1, idade: 0)")
        );

        let r = one(
            "expectations: [{expect: constant_per_customer, columns: [idade]}]",
            &df,
        );
        assert!(r.success);
        assert_eq!(r.unexpected_count, 0);
        assert!(r.examples.is_empty());
    }
}
