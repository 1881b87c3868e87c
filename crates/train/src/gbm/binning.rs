//! Binning: every feature is cut once into at most 255 quantile bins
//! (`u8`), kept row-major for histograms (a row's bins share a cache line)
//! and column-major for partitioning a node on one feature (dense reads
//! where a row-major read would touch a cache line per row).

use rayon::prelude::*;
use revspend_core::model::FeatureMatrix;

/// Upper bin edges of one feature's values: midpoints between distinct
/// values when there are few, else quantiles; at most `max_bins − 1` edges.
pub fn bin_edges(mut values: Vec<f64>, max_bins: usize) -> Vec<f64> {
    values.retain(|v| !v.is_nan());
    values.sort_by(f64::total_cmp);
    values.dedup_by(|a, b| a == b);
    let max_bins = max_bins.clamp(2, 255);
    if values.len() <= max_bins {
        return values.windows(2).map(|w| w[0] + (w[1] - w[0]) / 2.0).collect();
    }
    let n = values.len();
    let mut edges: Vec<f64> = (1..max_bins)
        .map(|q| {
            let i = q * n / max_bins;
            values[i - 1] + (values[i] - values[i - 1]) / 2.0
        })
        .collect();
    edges.dedup();
    edges
}

/// The bin of `x`: the number of edges below it (NaN: bin 0).
pub(super) fn bin_of(edges: &[f64], x: f64) -> u8 {
    u8::try_from(edges.partition_point(|&e| e < x)).unwrap_or(u8::MAX)
}

/// Binned features, row-major and column-major.
pub(super) struct Binned {
    pub p: usize,
    pub n: usize,
    pub bins: Vec<u8>,
    pub columns: Vec<u8>,
}

pub(super) fn bin_matrix(x: &FeatureMatrix, edges: &[Vec<f64>]) -> Binned {
    let p = x.cols;
    let mut bins = vec![0u8; x.rows * p];
    bins.par_chunks_mut(p.max(1) * 1024)
        .enumerate()
        .for_each(|(c, out)| {
            for (k, row_out) in out.chunks_mut(p.max(1)).enumerate() {
                let row = x.row(c * 1024 + k);
                for f in 0..p {
                    row_out[f] = bin_of(&edges[f], row[f]);
                }
            }
        });
    let n = x.rows;
    let mut columns = vec![0u8; n * p];
    columns.par_chunks_mut(n.max(1)).enumerate().for_each(|(f, col)| {
        for (r, c) in col.iter_mut().enumerate() {
            *c = bins[r * p + f];
        }
    });
    Binned { p, n, bins, columns }
}
