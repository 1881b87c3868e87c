//! Feature selection on the train split: requested features are dropped,
//! in order, when (quasi-)constant, an exact duplicate of a feature already
//! kept, or too correlated with one. What is left, in the requested order,
//! is the feature list `train` reads.

use revspend_core::features::Feature;
use revspend_core::params::SelectionParams;
use serde::Serialize;

use crate::stats::ValueCounts;

/// A dropped feature and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dropped {
    pub feature: String,
    pub reason: String,
}

/// `reports/feature_selection.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SelectionReport {
    pub requested: Vec<String>,
    pub selected: Vec<String>,
    pub dropped: Vec<Dropped>,
}

/// Selects among `requested`; `columns[f.index()]` holds feature `f` over
/// the train rows.
pub fn select(
    columns: &[Vec<f64>],
    counts: &[ValueCounts],
    requested: &[Feature],
    params: &SelectionParams,
) -> (Vec<Feature>, SelectionReport) {
    let mut kept: Vec<Feature> = Vec::new();
    let moments: Vec<Moments> = columns.iter().map(|c| Moments::of(c)).collect();
    let mut dropped = Vec::new();
    for &f in requested {
        let values = &columns[f.index()];
        let reason = if let Some((value, share)) = counts[f.index()]
            .mode()
            .filter(|(_, s)| *s > params.quasi_constant_share)
        {
            Some(format!(
                "quasi-constant: value {value} covers {:.2}% of rows",
                100.0 * share
            ))
        } else if let Some(twin) = kept.iter().find(|k| columns[k.index()] == *values) {
            Some(format!("exact duplicate of {}", twin.name()))
        } else {
            kept.iter()
                .map(|k| {
                    (
                        k,
                        moments[k.index()].correlation(&moments[f.index()], &columns[k.index()], values),
                    )
                })
                .find(|(_, r)| r.abs() > params.max_abs_correlation)
                .map(|(k, r)| {
                    format!(
                        "|correlation| {:.4} with {} > {}",
                        r.abs(),
                        k.name(),
                        params.max_abs_correlation
                    )
                })
        };
        match reason {
            Some(reason) => dropped.push(Dropped {
                feature: f.name().to_owned(),
                reason,
            }),
            None => kept.push(f),
        }
    }
    let report = SelectionReport {
        requested: requested.iter().map(|f| f.name().to_owned()).collect(),
        selected: kept.iter().map(|f| f.name().to_owned()).collect(),
        dropped,
    };
    (kept, report)
}

/// The most frequent value and its share of the rows (ties: the smaller value).
/// Mean and centred norm of a column, computed once so each pair costs
/// one pass.
struct Moments {
    mean: f64,
    norm: f64,
}

impl Moments {
    fn of(values: &[f64]) -> Moments {
        let n = values.len().max(1) as f64;
        let mean = lanes_sum(values, |x| x) / n;
        let norm = lanes_sum(values, |x| (x - mean) * (x - mean)).sqrt();
        Moments { mean, norm }
    }

    /// Pearson correlation of `a` (these moments) with `b` (`other`'s); 0
    /// when either is constant or there are fewer than two rows.
    fn correlation(&self, other: &Moments, a: &[f64], b: &[f64]) -> f64 {
        if a.len() < 2 || self.norm == 0.0 || other.norm == 0.0 {
            return 0.0;
        }
        let (ma, mb) = (self.mean, other.mean);
        let mut acc = [0.0f64; LANES];
        let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
        let (ra, rb) = (ca.remainder(), cb.remainder());
        for (xa, xb) in ca.zip(cb) {
            for k in 0..LANES {
                acc[k] += (xa[k] - ma) * (xb[k] - mb);
            }
        }
        let tail: f64 = ra.iter().zip(rb).map(|(x, y)| (x - ma) * (y - mb)).sum();
        (acc.iter().sum::<f64>() + tail) / (self.norm * other.norm)
    }
}

/// Independent partial sums, so the compiler can keep them in vector
/// registers: a single running sum is one dependent addition per row. The
/// lanes are fixed, so the result does not depend on anything but `values`.
const LANES: usize = 8;

fn lanes_sum(values: &[f64], f: impl Fn(f64) -> f64) -> f64 {
    let mut acc = [0.0f64; LANES];
    let chunks = values.chunks_exact(LANES);
    let tail: f64 = chunks.remainder().iter().map(|&x| f(x)).sum();
    for chunk in chunks {
        for k in 0..LANES {
            acc[k] += f(chunk[k]);
        }
    }
    acc.iter().sum::<f64>() + tail
}

#[cfg(test)]
fn pearson(a: &[f64], b: &[f64]) -> f64 {
    Moments::of(a).correlation(&Moments::of(b), a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::needless_range_loop)] // one row index fills five columns
    fn constant_duplicate_and_correlated_features_are_dropped_with_reasons() {
        let n = 1000;
        let mut columns = vec![vec![0.0; n]; Feature::ALL.len()];
        for i in 0..n {
            let x = (i * 37 % 101) as f64;
            columns[Feature::Valor.index()][i] = x;
            columns[Feature::Spend7d.index()][i] = x; // duplicate of valor
            columns[Feature::Spend30d.index()][i] = 2.0 * x + 1.0 + (i % 2) as f64 * 0.01; // correlated
            columns[Feature::ValorMissing.index()][i] = if i == 0 { 1.0 } else { 0.0 }; // 99.9 % zeros
            columns[Feature::Count7d.index()][i] = (i % 3) as f64; // independent-ish
        }
        let requested = [
            Feature::Valor,
            Feature::ValorMissing,
            Feature::Spend7d,
            Feature::Spend30d,
            Feature::Count7d,
        ];
        let params = SelectionParams {
            quasi_constant_share: 0.995,
            max_abs_correlation: 0.95,
        };
        let counts = crate::stats::value_counts(&columns, &[], 2);
        let (kept, report) = select(&columns, &counts, &requested, &params);
        assert_eq!(kept, vec![Feature::Valor, Feature::Count7d]);
        let reasons: Vec<(&str, &str)> = report
            .dropped
            .iter()
            .map(|d| (d.feature.as_str(), d.reason.as_str()))
            .collect();
        assert!(reasons[0].0 == "valor_missing" && reasons[0].1.starts_with("quasi-constant"));
        assert!(reasons[1].0 == "spend_7d" && reasons[1].1 == "exact duplicate of valor");
        assert!(reasons[2].0 == "spend_30d" && reasons[2].1.contains("with valor"));
    }

    #[test]
    fn pearson_of_known_columns() {
        assert!((pearson(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.0]) - 1.0).abs() < 1e-12);
        assert!((pearson(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
        assert_eq!(pearson(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), 0.0);
    }
}
