//! Feature selection on the train split: requested features are dropped,
//! in order, when (quasi-)constant, an exact duplicate of a feature already
//! kept, or too correlated with one. What is left, in the requested order,
//! is the feature list `train` reads.

use rayon::prelude::*;
use revspend_core::features::Feature;
use revspend_core::params::SelectionParams;
use serde::Serialize;

use crate::stats::{CHUNK, TrainColumns, ValueCounts};

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
/// the train rows. Correlations are computed in parallel; the result does
/// not depend on the thread count.
pub fn select(
    columns: &dyn TrainColumns,
    counts: &[ValueCounts],
    requested: &[Feature],
    params: &SelectionParams,
) -> (Vec<Feature>, SelectionReport) {
    let mut kept: Vec<Feature> = Vec::new();
    let correlations = Correlations::new(columns, requested);
    let position = |f: Feature| requested.iter().position(|r| *r == f).unwrap_or(0);
    let mut dropped = Vec::new();
    for &f in requested {
        let reason = if let Some((value, share)) = counts[f.index()]
            .mode()
            .filter(|(_, s)| *s > params.quasi_constant_share)
        {
            Some(format!(
                "quasi-constant: value {value} covers {:.2}% of rows",
                100.0 * share
            ))
        } else if let Some(twin) = kept.iter().find(|k| columns.equal(**k, f)) {
            Some(format!("exact duplicate of {}", twin.name()))
        } else {
            kept.iter()
                .map(|k| (k, correlations.get(position(*k), position(f))))
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
/// Pearson correlations of every pair of columns, from one pass over the
/// rows: each block of rows is centred once and all pairwise products
/// summed while it is in cache (pair by pair over whole columns re-read the
/// train split once per pair: 3.7 s at ten million rows).
struct Correlations {
    k: usize,
    /// Centred cross products, `k × k` (upper triangle and diagonal).
    cross: Vec<f64>,
    rows: usize,
}

// Rows are summed a `CHUNK` at a time, chunks in order whatever the
// thread count: the result depends on the columns alone.
/// Rows centred and multiplied while in cache.
const BLOCK: usize = 512;

impl Correlations {
    /// Correlations of `features`, in that order.
    fn new(columns: &dyn TrainColumns, features: &[Feature]) -> Correlations {
        let k = features.len();
        let rows = columns.rows();
        let mut buffer = Vec::new();
        let means: Vec<f64> = features
            .iter()
            .map(|&f| column_sum(columns, f, &mut buffer) / rows.max(1) as f64)
            .collect();
        let chunks = rows.div_ceil(CHUNK);
        // Partial sums come back in chunk order and are added in that order.
        let partials: Vec<Vec<f64>> = (0..chunks)
            .into_par_iter()
            .map_init(Vec::new, |gathered, c| {
                let range = c * CHUNK..((c + 1) * CHUNK).min(rows);
                chunk_cross(columns, features, &means, range, gathered)
            })
            .collect();
        let mut cross = vec![0.0; k * k];
        for p in partials {
            for (a, b) in cross.iter_mut().zip(p) {
                *a += b;
            }
        }
        Correlations { k, cross, rows }
    }

    /// Correlation of columns `i` and `j`; 0 when either is constant or
    /// there are fewer than two rows.
    fn get(&self, i: usize, j: usize) -> f64 {
        let (i, j) = (i.min(j), i.max(j));
        let (ii, jj) = (self.cross[i * self.k + i], self.cross[j * self.k + j]);
        if self.rows < 2 || ii == 0.0 || jj == 0.0 {
            return 0.0;
        }
        self.cross[i * self.k + j] / (ii.sqrt() * jj.sqrt())
    }
}

/// Centred cross products of train rows `rows`, read into `gathered`
/// (feature after feature), block by block.
fn chunk_cross(
    columns: &dyn TrainColumns,
    features: &[Feature],
    means: &[f64],
    rows: std::ops::Range<usize>,
    gathered: &mut Vec<f64>,
) -> Vec<f64> {
    let k = features.len();
    let len = rows.len();
    gathered.clear();
    for &f in features {
        columns.read(f, rows.clone(), gathered);
    }
    let mut cross = vec![0.0; k * k];
    let mut centred = vec![0.0; k * BLOCK];
    let mut start = 0;
    while start < len {
        let end = (start + BLOCK).min(len);
        let n = end - start;
        for (i, m) in means.iter().enumerate() {
            let c = &gathered[i * len..(i + 1) * len];
            for (dst, x) in centred[i * BLOCK..i * BLOCK + n].iter_mut().zip(&c[start..end]) {
                *dst = x - m;
            }
        }
        for i in 0..k {
            let a = &centred[i * BLOCK..i * BLOCK + n];
            for j in i..k {
                let b = &centred[j * BLOCK..j * BLOCK + n];
                cross[i * k + j] += dot(a, b);
            }
        }
        start = end;
    }
    cross
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (xa, xb) in ca.zip(cb) {
        for l in 0..LANES {
            acc[l] += xa[l] * xb[l];
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// Independent partial sums, so the compiler can keep them in vector
/// registers: a single running sum is one dependent addition per row. The
/// lanes are fixed, so the result does not depend on anything but `values`.
const LANES: usize = 8;

/// The sum of feature `f` over the train rows, read a chunk at a time into
/// `buffer`; lane `l` adds the rows `l` modulo `LANES` (chunks are whole
/// lanes wide), the last rows that fill no lane come last.
fn column_sum(columns: &dyn TrainColumns, f: Feature, buffer: &mut Vec<f64>) -> f64 {
    const { assert!(CHUNK.is_multiple_of(LANES)) };
    let rows = columns.rows();
    let mut acc = [0.0f64; LANES];
    let mut tail: f64 = std::iter::empty::<f64>().sum();
    for start in (0..rows).step_by(CHUNK) {
        buffer.clear();
        columns.read(f, start..(start + CHUNK).min(rows), buffer);
        let chunks = buffer.chunks_exact(LANES);
        tail = chunks.remainder().iter().sum();
        for chunk in chunks {
            for l in 0..LANES {
                acc[l] += chunk[l];
            }
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// Correlations of two columns (as the first two features), on a pool of
/// `threads` threads.
#[cfg(test)]
fn correlation(a: &[f64], b: &[f64], threads: usize) -> f64 {
    let mut columns = vec![Vec::new(); Feature::ALL.len()];
    columns[0] = a.to_vec();
    columns[1] = b.to_vec();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool");
    pool.install(|| Correlations::new(&columns, &Feature::ALL[..2]).get(0, 1))
}

#[cfg(test)]
fn pearson(a: &[f64], b: &[f64]) -> f64 {
    correlation(a, b, 2)
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
        let counts = crate::stats::value_counts(&columns, &[]);
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

    #[test]
    fn correlations_do_not_depend_on_threads_and_match_a_direct_sum() {
        // Several chunks and a ragged last block.
        let n = 3 * CHUNK + 777;
        let a: Vec<f64> = (0..n).map(|i| ((i * 7919) % 1013) as f64 * 0.5).collect();
        let b: Vec<f64> = (0..n).map(|i| a[i] * -2.0 + ((i * 31) % 17) as f64).collect();
        let one = correlation(&a, &b, 1);
        assert_eq!(one.to_bits(), correlation(&a, &b, 3).to_bits());
        let mean = |v: &[f64]| v.iter().sum::<f64>() / n as f64;
        let (ma, mb) = (mean(&a), mean(&b));
        let cov: f64 = a.iter().zip(&b).map(|(x, y)| (x - ma) * (y - mb)).sum();
        let norm = |v: &[f64], m: f64| v.iter().map(|x| (x - m) * (x - m)).sum::<f64>().sqrt();
        assert!((one - cov / (norm(&a, ma) * norm(&b, mb))).abs() < 1e-9);
    }
}
