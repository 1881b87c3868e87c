//! Distribution profiles of a dataframe's columns: the reference a drift
//! monitor compares new data to. The statistics (quantiles, histograms, PSI)
//! are `revspend_core::profile`'s; this module reads them out of polars
//! columns.

use std::collections::{BTreeMap, HashMap};

use polars::prelude::*;
use rayon::prelude::*;
use revspend_core::profile::{CategoricalProfile, NumericProfile, Profile, numeric_from_values};
use thiserror::Error;

/// Why a table could not be profiled.
#[derive(Debug, Error)]
pub enum ProfileError {
    #[error("cannot profile column `{column}`: the table has no such column")]
    MissingColumn { column: String },
    #[error("cannot profile column `{column}` as {role}: its type {dtype} is not supported")]
    UnsupportedDtype {
        column: String,
        role: Role,
        dtype: String,
    },
    #[error("cannot profile with {bins} histogram bins: at least 1 is needed")]
    NoBins { bins: usize },
    #[error("cannot profile column `{column}` as {role}")]
    Polars {
        column: String,
        role: Role,
        #[source]
        source: PolarsError,
    },
}

/// Whether a column is profiled as numeric or categorical.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Numeric,
    Categorical,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Numeric => "numeric",
            Role::Categorical => "categorical",
        })
    }
}

/// Profiles the `numeric` columns (any integer or float dtype, or Boolean as
/// 0/1) and the `categorical` columns (String, Boolean, or an integer dtype
/// rendered as text) of `df`, with `bins` histogram bins (at least 1).
///
/// Every column is checked before any is profiled, so an error names the
/// first offending column in argument order.
pub fn profile(
    df: &DataFrame,
    numeric: &[&str],
    categorical: &[&str],
    bins: usize,
) -> Result<Profile, ProfileError> {
    if bins == 0 {
        return Err(ProfileError::NoBins { bins });
    }
    let numeric_columns = numeric
        .iter()
        .map(|&name| Ok((name, checked_column(df, name, Role::Numeric)?)))
        .collect::<Result<Vec<_>, ProfileError>>()?;
    let categorical_columns = categorical
        .iter()
        .map(|&name| Ok((name, checked_column(df, name, Role::Categorical)?)))
        .collect::<Result<Vec<_>, ProfileError>>()?;

    let mut out = Profile {
        rows: df.height() as u64,
        numeric: BTreeMap::new(),
        categorical: BTreeMap::new(),
    };
    let profiles = map_on_all_cores(&numeric_columns, |&(name, column)| {
        profile_numeric(name, column, bins)
    });
    for (&(name, _), p) in numeric_columns.iter().zip(profiles) {
        out.numeric.insert(name.to_owned(), p?);
    }
    let profiles = map_on_all_cores(&categorical_columns, |&(name, column)| {
        profile_categorical(name, column)
    });
    for (&(name, _), p) in categorical_columns.iter().zip(profiles) {
        out.categorical.insert(name.to_owned(), p?);
    }
    Ok(out)
}

/// `items.iter().map(f)` on rayon's pool (columns are profiled
/// independently, and a table has tens of them); results come back in item
/// order, so the outcome does not depend on the scheduling.
fn map_on_all_cores<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    items.par_iter().map(&f).collect()
}

fn checked_column<'a>(df: &'a DataFrame, name: &str, role: Role) -> Result<&'a Column, ProfileError> {
    let column = df.column(name).map_err(|_| ProfileError::MissingColumn {
        column: name.to_owned(),
    })?;
    let dtype = column.dtype();
    let supported = match role {
        Role::Numeric => dtype.is_primitive_numeric() || dtype.is_bool(),
        Role::Categorical => dtype.is_string() || dtype.is_bool() || dtype.is_integer(),
    };
    if supported {
        Ok(column)
    } else {
        Err(ProfileError::UnsupportedDtype {
            column: name.to_owned(),
            role,
            dtype: dtype.to_string(),
        })
    }
}

fn profile_numeric(name: &str, column: &Column, bins: usize) -> Result<NumericProfile, ProfileError> {
    let polars_err = |source| ProfileError::Polars {
        column: name.to_owned(),
        role: Role::Numeric,
        source,
    };
    let series = column
        .as_materialized_series()
        .cast(&DataType::Float64)
        .map_err(polars_err)?;
    let chunked = series.f64().map_err(polars_err)?;

    let mut values = Vec::with_capacity(chunked.len() - chunked.null_count());
    let (mut nans, mut infinite) = (0u64, 0u64);
    for array in chunked.downcast_iter() {
        for x in array.non_null_values_iter() {
            if x.is_finite() {
                values.push(x);
            } else if x.is_nan() {
                nans += 1;
            } else {
                infinite += 1;
            }
        }
    }
    Ok(numeric_from_values(
        values,
        chunked.null_count() as u64,
        nans,
        infinite,
        bins,
    ))
}

fn profile_categorical(name: &str, column: &Column) -> Result<CategoricalProfile, ProfileError> {
    let polars_err = |source| ProfileError::Polars {
        column: name.to_owned(),
        role: Role::Categorical,
        source,
    };
    let series = column
        .as_materialized_series()
        .cast(&DataType::String)
        .map_err(polars_err)?;
    let chunked = series.str().map_err(polars_err)?;

    let mut counts: HashMap<&str, u64> = HashMap::new();
    for value in chunked.iter().flatten() {
        *counts.entry(value).or_insert(0) += 1;
    }
    let frequencies: BTreeMap<String, u64> = counts
        .into_iter()
        .map(|(value, n)| (value.to_owned(), n))
        .collect();
    Ok(CategoricalProfile {
        count: frequencies.values().sum(),
        nulls: chunked.null_count() as u64,
        frequencies,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use revspend_core::profile::{QUANTILE_PROBABILITIES, numeric_from_counts, psi};

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * (1.0 + b.abs())
    }

    fn df(columns: Vec<Column>) -> DataFrame {
        let height = columns.first().map_or(0, |c| c.len());
        DataFrame::new(height, columns).expect("valid test frame")
    }

    fn quantile_values(p: &NumericProfile) -> Vec<f64> {
        p.quantiles.iter().map(|q| q.value).collect()
    }

    /// Deterministic pseudo-random values in [0, 1) (64-bit LCG).
    fn uniform(n: usize, seed: u64) -> Vec<f64> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 11) as f64 / (1u64 << 53) as f64
            })
            .collect()
    }

    #[test]
    fn known_column_matches_numpy() {
        // Finite values 4, 1, 3, 2, 10 plus a null and a NaN.
        let frame = df(vec![Column::new(
            "a".into(),
            [
                Some(4.0),
                None,
                Some(1.0),
                Some(f64::NAN),
                Some(3.0),
                Some(2.0),
                Some(10.0),
            ],
        )]);
        let p = profile(&frame, &["a"], &[], 3).expect("profiles");
        assert_eq!(p.rows, 7);
        let a = &p.numeric["a"];
        assert_eq!((a.count, a.nulls, a.nans, a.infinite), (5, 1, 1, 0));
        assert_eq!(a.min, Some(1.0));
        assert_eq!(a.max, Some(10.0));
        assert_eq!(a.mean, Some(4.0));
        // np.std([1, 2, 3, 4, 10], ddof=1) = sqrt(50 / 4)
        assert!(close(a.std.expect("std"), 12.5f64.sqrt()));
        // np.quantile([1, 2, 3, 4, 10], [.01, .05, .25, .5, .75, .95, .99])
        let expected = [1.04, 1.2, 2.0, 3.0, 4.0, 8.8, 9.76];
        let ps: Vec<f64> = a.quantiles.iter().map(|q| q.p).collect();
        assert_eq!(ps, QUANTILE_PROBABILITIES);
        for (got, want) in quantile_values(a).into_iter().zip(expected) {
            assert!(close(got, want), "{got} != {want}");
        }
        // np.histogram([1, 2, 3, 4, 10], bins=3): 4 sits on an inner edge and
        // goes right; 10 is the max and lands in the closed last bin.
        assert_eq!(a.histogram.edges, [1.0, 4.0, 7.0, 10.0]);
        assert_eq!(a.histogram.counts, [3, 1, 1]);
        assert_eq!(a.histogram.counts.iter().sum::<u64>(), a.count);
    }

    #[test]
    fn profile_from_counts_equals_profile_from_rows() {
        // Integers with repeats, a continuous column, a constant, one value.
        let mut seed = 7u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as f64 / (1u64 << 31) as f64
        };
        let columns: Vec<Vec<f64>> = vec![
            (0..1000).map(|_| (next() * 12.0).floor()).collect(),
            (0..999).map(|_| next() * 1e4 - 300.0).collect(),
            vec![2.5; 10],
            vec![-1.0],
        ];
        for rows in columns {
            let frame = df(vec![Column::new("x".into(), rows.clone())]);
            let expected = &profile(&frame, &["x"], &[], 10).expect("profiles").numeric["x"];
            let mut sorted = rows.clone();
            sorted.sort_by(f64::total_cmp);
            let (mut values, mut counts) = (Vec::new(), Vec::<u64>::new());
            for v in sorted {
                if values.last() == Some(&v) {
                    *counts.last_mut().expect("a count") += 1;
                } else {
                    values.push(v);
                    counts.push(1);
                }
            }
            let got = numeric_from_counts(&values, &counts, 10);
            let close = |a: Option<f64>, b: Option<f64>| match (a, b) {
                (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * a.abs().max(1.0),
                (a, b) => a == b,
            };
            assert!(
                close(got.mean, expected.mean),
                "{:?} {:?}",
                got.mean,
                expected.mean
            );
            assert!(close(got.std, expected.std), "{:?} {:?}", got.std, expected.std);
            let exact = |p: &NumericProfile| {
                (
                    p.count,
                    p.nulls,
                    p.nans,
                    p.min,
                    p.max,
                    p.quantiles.clone(),
                    p.histogram.clone(),
                )
            };
            assert_eq!(exact(&got), exact(expected));
        }
    }

    #[test]
    fn histogram_edges_follow_linspace() {
        let frame = df(vec![Column::new("a".into(), [1i64, 2, 3, 4, 10])]);
        let a = &profile(&frame, &["a"], &[], 4).expect("profiles").numeric["a"];
        assert_eq!(a.histogram.edges, [1.0, 3.25, 5.5, 7.75, 10.0]);
        assert_eq!(a.histogram.counts, [3, 1, 0, 1]);
    }

    #[test]
    fn constant_and_single_value_columns() {
        let frame = df(vec![
            Column::new("c".into(), [5.0f32; 4]),
            Column::new("one".into(), [Some(7i32), None, None, None]),
        ]);
        let p = profile(&frame, &["c", "one"], &[], 10).expect("profiles");
        let c = &p.numeric["c"];
        assert_eq!(
            (c.min, c.max, c.mean, c.std),
            (Some(5.0), Some(5.0), Some(5.0), Some(0.0))
        );
        assert!(quantile_values(c).iter().all(|&v| v == 5.0));
        assert_eq!(c.histogram.edges, [5.0, 5.0]);
        assert_eq!(c.histogram.counts, [4]);

        let one = &p.numeric["one"];
        assert_eq!((one.count, one.nulls), (1, 3));
        assert_eq!((one.mean, one.std), (Some(7.0), None));
        assert!(quantile_values(one).iter().all(|&v| v == 7.0));
        assert_eq!(one.histogram.counts, [1]);
    }

    #[test]
    fn all_null_column_has_no_statistics() {
        let frame = df(vec![Column::new("n".into(), [None::<f64>, None, None])]);
        let n = &profile(&frame, &["n"], &[], 5).expect("profiles").numeric["n"];
        assert_eq!((n.count, n.nulls, n.nans), (0, 3, 0));
        assert_eq!((n.min, n.max, n.mean, n.std), (None, None, None, None));
        assert!(n.quantiles.is_empty());
        assert!(n.histogram.edges.is_empty() && n.histogram.counts.is_empty());
    }

    #[test]
    fn non_finite_values_are_counted_apart() {
        let frame = df(vec![Column::new(
            "x".into(),
            [1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 3.0],
        )]);
        let x = &profile(&frame, &["x"], &[], 2).expect("profiles").numeric["x"];
        assert_eq!((x.count, x.nulls, x.nans, x.infinite), (2, 0, 1, 2));
        assert_eq!((x.min, x.max, x.mean), (Some(1.0), Some(3.0), Some(2.0)));
        // Still valid JSON that reads back.
        let json = serde_json::to_string(x).expect("serialises");
        assert_eq!(&serde_json::from_str::<NumericProfile>(&json).expect("reads"), x);
    }

    #[test]
    fn categorical_frequencies_count_every_value_and_nulls() {
        let frame = df(vec![
            Column::new("g".into(), [Some("A"), None, Some("B"), Some("A"), Some("")]),
            Column::new("k".into(), [Some(3i32), Some(1), Some(3), None, Some(3)]),
        ]);
        let p = profile(&frame, &[], &["g", "k"], 10).expect("profiles");
        let g = &p.categorical["g"];
        assert_eq!((g.count, g.nulls), (4, 1));
        let want: BTreeMap<String, u64> =
            [("".to_owned(), 1), ("A".to_owned(), 2), ("B".to_owned(), 1)].into();
        assert_eq!(g.frequencies, want);
        let k = &p.categorical["k"];
        assert_eq!((k.count, k.nulls), (4, 1));
        let want: BTreeMap<String, u64> = [("1".to_owned(), 1), ("3".to_owned(), 3)].into();
        assert_eq!(k.frequencies, want);
    }

    #[test]
    fn boolean_column_is_numeric_zero_one_or_categorical() {
        let frame = df(vec![Column::new(
            "b".into(),
            [Some(true), Some(false), Some(true), None],
        )]);
        let p = profile(&frame, &["b"], &["b"], 2).expect("profiles");
        let n = &p.numeric["b"];
        assert_eq!((n.count, n.nulls, n.min, n.max), (3, 1, Some(0.0), Some(1.0)));
        assert!(close(n.mean.expect("mean"), 2.0 / 3.0));
        assert_eq!(n.histogram.edges, [0.0, 0.5, 1.0]);
        assert_eq!(n.histogram.counts, [1, 2]);
        let c = &p.categorical["b"];
        assert_eq!((c.count, c.nulls), (3, 1));
        let want: BTreeMap<String, u64> = [("false".to_owned(), 1), ("true".to_owned(), 2)].into();
        assert_eq!(c.frequencies, want);
    }

    #[test]
    fn bad_requests_name_the_column() {
        let frame = df(vec![
            Column::new("a".into(), [1.0, 2.0]),
            Column::new("s".into(), ["x", "y"]),
            Column::new("f".into(), [0.5, 1.5]),
        ]);
        let err = profile(&frame, &["a", "nope"], &[], 10).expect_err("missing column");
        assert!(matches!(&err, ProfileError::MissingColumn { column } if column == "nope"));
        assert!(err.to_string().contains("`nope`"), "{err}");

        let err = profile(&frame, &["s"], &[], 10).expect_err("string is not numeric");
        assert!(
            matches!(&err, ProfileError::UnsupportedDtype { column, role: Role::Numeric, .. } if column == "s")
        );
        assert!(err.to_string().contains("`s`"), "{err}");

        let err = profile(&frame, &[], &["f"], 10).expect_err("float is not categorical");
        assert!(
            matches!(&err, ProfileError::UnsupportedDtype { column, role: Role::Categorical, .. } if column == "f")
        );

        let err = profile(&frame, &["a"], &[], 0).expect_err("no bins");
        assert!(matches!(err, ProfileError::NoBins { bins: 0 }));
    }

    #[test]
    fn same_table_gives_identical_json_that_reads_back() {
        let x = uniform(10_000, 7);
        let groups: Vec<&str> = x
            .iter()
            .map(|v| ["VAREJO", "HOTEIS", "SERVICO"][(v * 3.0) as usize])
            .collect();
        let frame = df(vec![
            Column::new("x".into(), x.iter().map(|v| v * 100.0 - 20.0).collect::<Vec<_>>()),
            Column::new("g".into(), groups),
        ]);
        let run = || {
            let p = profile(&frame, &["x"], &["g"], 20).expect("profiles");
            serde_json::to_string_pretty(&p).expect("serialises")
        };
        let first = run();
        assert_eq!(first, run());
        // serde_json without its `float_roundtrip` feature may read a float
        // back one ulp off, so the read-back is compared with a tolerance.
        let read: Profile = serde_json::from_str(&first).expect("reads");
        let original = profile(&frame, &["x"], &["g"], 20).expect("profiles");
        let value = |p: &Profile| serde_json::to_value(p).expect("serialises");
        assert_json_close(&value(&read), &value(&original));
    }

    fn assert_json_close(a: &serde_json::Value, b: &serde_json::Value) {
        use serde_json::Value;
        match (a, b) {
            (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
                let (x, y) = (x.as_f64().unwrap_or(f64::NAN), y.as_f64().unwrap_or(f64::NAN));
                assert!(close(x, y), "{x} != {y}");
            }
            (Value::Array(x), Value::Array(y)) => {
                assert_eq!(x.len(), y.len());
                x.iter().zip(y).for_each(|(x, y)| assert_json_close(x, y));
            }
            (Value::Object(x), Value::Object(y)) => {
                assert!(x.keys().eq(y.keys()), "{:?} != {:?}", x.keys(), y.keys());
                x.values()
                    .zip(y.values())
                    .for_each(|(x, y)| assert_json_close(x, y));
            }
            _ => assert_eq!(a, b),
        }
    }

    #[test]
    fn order_statistics_do_not_depend_on_row_order() {
        let mut x = uniform(5_001, 11);
        let forward = df(vec![Column::new("x".into(), x.clone())]);
        x.reverse();
        let backward = df(vec![Column::new("x".into(), x)]);
        let a = &profile(&forward, &["x"], &[], 7).expect("profiles").numeric["x"];
        let b = &profile(&backward, &["x"], &[], 7).expect("profiles").numeric["x"];
        assert_eq!((a.min, a.max), (b.min, b.max));
        assert_eq!(a.quantiles, b.quantiles);
        assert_eq!(a.histogram, b.histogram);
    }

    #[test]
    fn selected_quantiles_equal_those_of_a_full_sort() {
        // With ties and an odd length, so that several positions coincide.
        let x: Vec<f64> = uniform(1_237, 3).iter().map(|v| (v * 50.0).floor()).collect();
        let mut sorted = x.clone();
        sorted.sort_by(f64::total_cmp);
        let frame = df(vec![Column::new("x".into(), x)]);
        let got = &profile(&frame, &["x"], &[], 10).expect("profiles").numeric["x"];
        let last = (sorted.len() - 1) as f64;
        for q in &got.quantiles {
            let h = last * q.p;
            let lo = h.floor() as usize;
            let want = sorted[lo] + (h - lo as f64) * (sorted[lo + 1] - sorted[lo]);
            assert!(close(q.value, want), "p={}: {} != {want}", q.p, q.value);
        }
        assert_eq!(got.histogram.counts.iter().sum::<u64>(), got.count);
    }

    #[test]
    fn psi_is_zero_for_the_same_distribution_and_large_for_a_shift() {
        let reference_values: Vec<f64> = uniform(20_000, 1).iter().map(|v| v * 1000.0).collect();
        let frame = df(vec![Column::new("x".into(), reference_values.clone())]);
        let reference = &profile(&frame, &["x"], &[], 10).expect("profiles").numeric["x"];

        assert!(psi(reference, &reference_values).abs() < 1e-12);
        let fresh: Vec<f64> = uniform(20_000, 2).iter().map(|v| v * 1000.0).collect();
        assert!(psi(reference, &fresh) < 0.01, "{}", psi(reference, &fresh));

        // Shifted by 30% of the range: values past the max fill the last bin.
        let shifted: Vec<f64> = fresh.iter().map(|v| v + 300.0).collect();
        assert!(psi(reference, &shifted) > 0.1, "{}", psi(reference, &shifted));
        // Entirely outside the reference range on the low side.
        let below: Vec<f64> = fresh.iter().map(|v| v - 5000.0).collect();
        assert!(psi(reference, &below) > 1.0);
        // NaNs are ignored.
        let mut with_nan = reference_values.clone();
        with_nan.push(f64::NAN);
        assert!(psi(reference, &with_nan).abs() < 1e-12);
    }

    #[test]
    fn psi_is_nan_when_undefined() {
        let frame = df(vec![Column::new("n".into(), [None::<f64>, None])]);
        let empty = &profile(&frame, &["n"], &[], 10).expect("profiles").numeric["n"];
        assert!(psi(empty, &[1.0, 2.0]).is_nan());
        let frame = df(vec![Column::new("x".into(), [1.0, 2.0])]);
        let reference = &profile(&frame, &["x"], &[], 10).expect("profiles").numeric["x"];
        assert!(psi(reference, &[]).is_nan());
        assert!(psi(reference, &[f64::NAN]).is_nan());
    }
}
