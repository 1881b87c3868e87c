//! Gradient histograms of one node: per feature, 256 bins of (gradient,
//! hessian) sums in `f64` and a row count.
//!
//! A node's histogram is built row-wise (a row's bins are one short slice of
//! the row-major matrix), in one of two ways, both giving the same model for
//! any thread count because the order of every sum is fixed by the node's
//! rows, never by the threads:
//!
//! - a node of many rows is cut into fixed chunks of rows, each summed on
//!   one thread into its own histogram (pooled buffers), then added up in
//!   chunk order ([`Hist::build_chunked`]): each row is fetched by one thread;
//! - a smaller node is split by *features*: each thread owns a group of
//!   features and streams every row of the node, summing each bin in row
//!   order ([`Hist::build`]), so both cores work on nodes smaller than a few
//!   chunks too.
//!
//! The rows of a small node are scattered over the matrix, so their cache
//! lines are fetched a block of rows ahead of the sums.

use rayon::prelude::*;

/// Bins per feature: a `u8` bin always indexes inside, so the hot loop has
/// no bounds check on the bin.
pub(super) const STRIDE: usize = 256;

/// Rows per chunk of [`Hist::build_chunked`].
pub(super) const CHUNK_ROWS: usize = 8_192;

/// Rows whose cache lines are fetched together before they are summed.
const TOUCH: usize = 32;

/// Gradient and hessian of one row, stored compactly (half the bytes of two
/// `f64`); sums are taken in `f64`.
pub(super) type GradPair = [f32; 2];

/// The sums of one node, in `f64`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct Totals {
    pub g: f64,
    pub h: f64,
    pub n: u64,
}

impl Totals {
    pub fn sub(&self, o: &Totals) -> Totals {
        Totals {
            g: self.g - o.g,
            h: self.h - o.h,
            n: self.n - o.n,
        }
    }
}

/// One feature's bins: sums of (gradient, hessian) and counts.
#[derive(Debug, Clone)]
pub(super) struct FeatureHist {
    pub gh: [[f64; 2]; STRIDE],
    pub n: [u32; STRIDE],
}

impl FeatureHist {
    /// Zeroes the first `used` bins: the others are never written (a bin
    /// index is below the feature's bin count), so they stay zero from
    /// [`Hist::new`] on, and clearing all 256 would cost a feature of two
    /// bins as much as one of 255.
    fn clear(&mut self, used: usize) {
        let used = used.min(STRIDE);
        self.gh[..used].fill([0.0; 2]);
        self.n[..used].fill(0);
    }

    /// The totals of the node (every row is in exactly one bin).
    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for (gh, &n) in self.gh.iter().zip(&self.n) {
            t.g += gh[0];
            t.h += gh[1];
            t.n += u64::from(n);
        }
        t
    }

    /// Whether the node's rows fall in two bins or more (else no split on
    /// this feature is possible here or in any descendant).
    pub fn splittable(&self) -> bool {
        self.n.iter().filter(|&&n| n > 0).take(2).count() == 2
    }
}

/// A node's histograms, one per feature; only the features marked active
/// are filled (the others cannot split the node).
#[derive(Debug, Clone)]
pub(super) struct Hist {
    pub features: Vec<FeatureHist>,
}

impl Hist {
    pub fn new(p: usize) -> Hist {
        let empty = FeatureHist {
            gh: [[0.0; 2]; STRIDE],
            n: [0; STRIDE],
        };
        Hist {
            features: vec![empty; p],
        }
    }

    /// Fills the active features' histograms from `rows` (row ids into the
    /// row-major `bins` of width `p`) and their gradient pairs.
    pub fn build(
        &mut self,
        rows: &[u32],
        bins: &[u8],
        p: usize,
        gh: &[GradPair],
        active: &[bool],
        n_bins: &[usize],
    ) {
        let width = self.features.len();
        let on: Vec<usize> = (0..width)
            .filter(|&f| active.get(f).copied().unwrap_or(false))
            .collect();
        for &f in &on {
            self.features[f].clear(n_bins.get(f).copied().unwrap_or(STRIDE));
        }
        if on.is_empty() {
            return;
        }
        // One group of features per worker thread, with as many *active*
        // features in each (below the root, features that cannot split are
        // skipped, and an even cut by feature index would leave one thread
        // idle while the other sums the rest). The grouping decides who sums
        // a feature, never the order in which its bins are summed.
        let groups = rayon::current_num_threads().clamp(1, on.len());
        let mut tasks: Vec<(usize, &mut [FeatureHist])> = Vec::with_capacity(groups);
        let mut rest: &mut [FeatureHist] = &mut self.features;
        let mut start = 0;
        for k in 1..=groups {
            let end = if k == groups {
                width
            } else {
                on[k * on.len() / groups]
            };
            let (group, tail) = std::mem::take(&mut rest).split_at_mut(end - start);
            tasks.push((start, group));
            rest = tail;
            start = end;
        }
        tasks
            .par_iter_mut()
            .for_each(|(f0, group)| accumulate(group, *f0, rows, bins, p, gh, active));
    }

    /// [`Hist::build`] for a node of many rows: fixed chunks of `CHUNK_ROWS`
    /// rows, each summed on one thread into its own histogram (taken from
    /// `spare`), then added up in chunk order. The chunks, not the threads,
    /// fix the order of the sums, so the result is the same for any thread
    /// count; each row's cache lines are fetched by one thread only, where
    /// splitting by features fetches them on every thread.
    #[allow(clippy::too_many_arguments)]
    pub fn build_chunked(
        &mut self,
        rows: &[u32],
        bins: &[u8],
        p: usize,
        gh: &[GradPair],
        active: &[bool],
        n_bins: &[usize],
        spare: &mut Vec<Hist>,
    ) {
        let chunks: Vec<&[u32]> = rows.chunks(CHUNK_ROWS).collect();
        let mut parts: Vec<Hist> = (0..chunks.len().saturating_sub(1))
            .map(|_| spare.pop().unwrap_or_else(|| Hist::new(p)))
            .collect();
        let mut all: Vec<&mut Hist> = std::iter::once(&mut *self).chain(parts.iter_mut()).collect();
        all.par_iter_mut()
            .zip(chunks.par_iter())
            .for_each(|(hist, rows)| {
                for ((h, _), &used) in hist
                    .features
                    .iter_mut()
                    .zip(active)
                    .zip(n_bins)
                    .filter(|((_, on), _)| **on)
                {
                    h.clear(used);
                }
                accumulate(&mut hist.features, 0, rows, bins, p, gh, active);
            });
        // Each feature adds the chunks in chunk order (the order of its
        // sums); features are independent, so they are merged in parallel.
        let parts_ref = &parts;
        self.features
            .par_iter_mut()
            .zip(active.par_iter())
            .zip(n_bins.par_iter())
            .enumerate()
            .filter(|(_, ((_, on), _))| **on)
            .for_each(|(f, ((a, _), &used))| {
                let used = used.min(STRIDE);
                for part in parts_ref {
                    let Some(b) = part.features.get(f) else {
                        continue;
                    };
                    for (x, y) in a.gh[..used].iter_mut().zip(&b.gh[..used]) {
                        x[0] += y[0];
                        x[1] += y[1];
                    }
                    for (x, y) in a.n[..used].iter_mut().zip(&b.n[..used]) {
                        *x = x.wrapping_add(*y);
                    }
                }
            });
        spare.extend(parts);
    }

    /// `self` (the parent's) becomes the larger child's: parent − `small`,
    /// on the parent's active features (their used bins: the rest are zero
    /// in both).
    pub fn subtract(&mut self, small: &Hist, active: &[bool], n_bins: &[usize]) {
        let pairs = self.features.iter_mut().zip(&small.features);
        for (((a, b), _), &used) in pairs.zip(active).zip(n_bins).filter(|((_, on), _)| **on) {
            let used = used.min(STRIDE);
            for (x, y) in a.gh[..used].iter_mut().zip(&b.gh[..used]) {
                x[0] -= y[0];
                x[1] -= y[1];
            }
            for (x, y) in a.n[..used].iter_mut().zip(&b.n[..used]) {
                *x -= y;
            }
        }
    }
}

/// Sums `rows` into the histograms of features `f0..f0 + group.len()` that
/// are active, in row order.
fn accumulate(
    group: &mut [FeatureHist],
    f0: usize,
    rows: &[u32],
    bins: &[u8],
    p: usize,
    gh: &[GradPair],
    active: &[bool],
) {
    let f1 = f0 + group.len();
    let on = &active[f0..f1];
    // Positions (in the group) of the features to sum: with all of them on,
    // the row loop runs without a test per feature. (Summing the features
    // in several passes over a block of rows, each pass's cells small
    // enough for L1, was tried: 4% faster on synthetic data with twelve
    // 255-bin features, 8% slower on the pipeline's, per-row work repeated.)
    let wanted: Vec<usize> = (0..on.len()).filter(|&k| on[k]).collect();
    if wanted.is_empty() {
        return;
    }
    let all = wanted.len() == on.len();
    // Rows of a small node are scattered over the matrix (a dense
    // node's rows, like the root's, stream from memory in order).
    let span = rows.last().map_or(0, |&l| l as usize + 1) - rows.first().map_or(0, |&f| f as usize);
    let scattered = rows.len() * 2 < span;
    for block in rows.chunks(TOUCH) {
        if scattered {
            // Load the group's first and last byte of each row of the
            // block (a row's bins may straddle two cache lines) and its
            // gradient first, in a loop short enough for all those cache
            // misses to be in flight at once, so the long update loop below
            // finds the rows in cache: a miss there stalls it alone.
            let mut touched = 0u32;
            for &r in block {
                let r = r as usize;
                let at = r.wrapping_mul(p);
                touched ^= u32::from(bins[at + f0]) ^ u32::from(bins[at + f1 - 1]) ^ gh[r][0].to_bits();
            }
            std::hint::black_box(touched);
        }
        for &r in block {
            let r = r as usize;
            let [g, h] = gh[r];
            let (g, h) = (f64::from(g), f64::from(h));
            let at = r.wrapping_mul(p);
            let row = &bins[at + f0..at + f1];
            if all {
                for (hist, &b) in group.iter_mut().zip(row) {
                    add(hist, b, g, h);
                }
            } else {
                for &k in &wanted {
                    if let (Some(hist), Some(&b)) = (group.get_mut(k), row.get(k)) {
                        add(hist, b, g, h);
                    }
                }
            }
        }
    }
}

/// Adds one row's pair to bin `b` of one feature.
#[inline(always)]
fn add(hist: &mut FeatureHist, b: u8, g: f64, h: f64) {
    let b = b as usize;
    let cell = &mut hist.gh[b];
    cell[0] += g;
    cell[1] += h;
    // A bin cannot overflow (it counts at most the rows of a u32-indexed
    // matrix); skip the overflow check.
    hist.n[b] = hist.n[b].wrapping_add(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_is_the_row_order_sum_whatever_the_thread_count() {
        let (n, p) = (5_000usize, 7usize);
        let bins: Vec<u8> = (0..n * p)
            .map(|i| ((i * 2_654_435_761) >> 7) as u8 % 40)
            .collect();
        let gh: Vec<GradPair> = (0..n)
            .map(|r| [(r as f32 * 0.37).sin(), 0.1 + (r % 13) as f32 * 0.01])
            .collect();
        // Scattered rows (every third), and one feature left out.
        let rows: Vec<u32> = (0..n as u32).filter(|r| r % 3 == 1).collect();
        let active = [true, true, false, true, true, true, true];
        // What a plain loop in row order gives, bit for bit.
        let mut want = Hist::new(p);
        for h in &mut want.features {
            h.clear(STRIDE);
        }
        for &r in &rows {
            let r = r as usize;
            for (f, h) in want.features.iter_mut().enumerate() {
                let b = bins[r * p + f] as usize;
                h.gh[b][0] += f64::from(gh[r][0]);
                h.gh[b][1] += f64::from(gh[r][1]);
                h.n[b] += 1;
            }
        }
        for threads in [1, 2, 3, 5] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("pool");
            let mut got = Hist::new(p);
            pool.install(|| got.build(&rows, &bins, p, &gh, &active, &[40; 7]));
            for (f, (g, w)) in got.features.iter().zip(&want.features).enumerate() {
                if !active[f] {
                    continue;
                }
                let bits = |h: &FeatureHist| -> Vec<u64> {
                    h.gh.iter()
                        .flat_map(|c| [c[0].to_bits(), c[1].to_bits()])
                        .collect()
                };
                assert_eq!(bits(g), bits(w), "feature {f}, {threads} threads");
                assert_eq!(g.n, w.n, "feature {f}, {threads} threads");
            }
        }
    }

    #[test]
    fn a_chunked_histogram_is_the_same_whatever_the_thread_count() {
        let (n, p) = (5 * CHUNK_ROWS + 77, 5usize);
        let bins: Vec<u8> = (0..n * p)
            .map(|i| ((i * 2_654_435_761) >> 9) as u8 % 23)
            .collect();
        let gh: Vec<GradPair> = (0..n)
            .map(|r| [(r as f32 * 0.11).cos(), 0.05 + (r % 7) as f32 * 0.02])
            .collect();
        let rows: Vec<u32> = (0..n as u32).filter(|r| r % 5 != 2).collect();
        let active = [true, false, true, true, true];
        let n_bins = [23usize; 5];
        let build = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("pool");
            let mut hist = Hist::new(p);
            let mut spare = Vec::new();
            pool.install(|| hist.build_chunked(&rows, &bins, p, &gh, &active, &n_bins, &mut spare));
            let mut out: Vec<u64> = Vec::new();
            for (h, _) in hist.features.iter().zip(active).filter(|(_, on)| *on) {
                out.extend(h.gh.iter().flat_map(|c| [c[0].to_bits(), c[1].to_bits()]));
                out.extend(h.n.iter().map(|&c| u64::from(c)));
            }
            out
        };
        let one = build(1);
        assert_eq!(
            one.len(),
            4 * 3 * STRIDE,
            "four active features of 2 sums and a count per bin"
        );
        for threads in [2, 3, 4] {
            assert_eq!(build(threads), one, "{threads} threads");
        }
    }
}
