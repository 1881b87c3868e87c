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
    fn clear(&mut self) {
        self.gh.fill([0.0; 2]);
        self.n.fill(0);
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
    pub fn build(&mut self, rows: &[u32], bins: &[u8], p: usize, gh: &[GradPair], active: &[bool]) {
        for (h, _) in self.features.iter_mut().zip(active).filter(|(_, on)| **on) {
            h.clear();
        }
        // One group of features per worker thread: the grouping decides who
        // sums a feature, never the order in which its bins are summed.
        let groups = rayon::current_num_threads().clamp(1, p.max(1));
        let per = p.div_ceil(groups).max(1);
        let mut tasks: Vec<(usize, &mut [FeatureHist])> = self
            .features
            .chunks_mut(per)
            .enumerate()
            .map(|(k, c)| (k * per, c))
            .collect();
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
                for (h, _) in hist.features.iter_mut().zip(active).filter(|(_, on)| **on) {
                    h.clear();
                }
                accumulate(&mut hist.features, 0, rows, bins, p, gh, active);
            });
        for part in &parts {
            for (((a, b), _), &used) in self
                .features
                .iter_mut()
                .zip(&part.features)
                .zip(active)
                .zip(n_bins)
                .filter(|((_, on), _)| **on)
            {
                let used = used.min(STRIDE);
                for (x, y) in a.gh[..used].iter_mut().zip(&b.gh[..used]) {
                    x[0] += y[0];
                    x[1] += y[1];
                }
                for (x, y) in a.n[..used].iter_mut().zip(&b.n[..used]) {
                    *x = x.wrapping_add(*y);
                }
            }
        }
        spare.extend(parts);
    }

    /// `self` (the parent's) becomes the larger child's: parent − `small`,
    /// on the parent's active features.
    pub fn subtract(&mut self, small: &Hist, active: &[bool]) {
        let pairs = self.features.iter_mut().zip(&small.features);
        for ((a, b), _) in pairs.zip(active).filter(|(_, on)| **on) {
            for (x, y) in a.gh.iter_mut().zip(&b.gh) {
                x[0] -= y[0];
                x[1] -= y[1];
            }
            for (x, y) in a.n.iter_mut().zip(&b.n) {
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
    if !on.contains(&true) {
        return;
    }
    // Rows of a small node are scattered over the matrix (a dense
    // node's rows, like the root's, stream from memory in order).
    let span = rows.last().map_or(0, |&l| l as usize + 1) - rows.first().map_or(0, |&f| f as usize);
    let scattered = rows.len() * 2 < span;
    for block in rows.chunks(TOUCH) {
        if scattered {
            // Load a byte of each row of the block first, in a loop
            // short enough for all those cache misses to be in flight
            // at once, so the long update loop below finds the rows
            // in cache.
            let mut touched = 0u32;
            for &r in block {
                let r = r as usize;
                touched ^= u32::from(bins[r.wrapping_mul(p) + f0]) ^ gh[r][0].to_bits();
            }
            std::hint::black_box(touched);
        }
        for &r in block {
            let r = r as usize;
            let [g, h] = gh[r];
            let (g, h) = (f64::from(g), f64::from(h));
            let at = r.wrapping_mul(p);
            let row = &bins[at + f0..at + f1];
            for ((hist, &b), _) in group.iter_mut().zip(row).zip(on).filter(|(_, on)| **on) {
                let b = b as usize;
                let cell = &mut hist.gh[b];
                cell[0] += g;
                cell[1] += h;
                // A bin cannot overflow (it counts at most the rows of
                // a u32-indexed matrix); skip the overflow check.
                hist.n[b] = hist.n[b].wrapping_add(1);
            }
        }
    }
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
            h.clear();
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
            pool.install(|| got.build(&rows, &bins, p, &gh, &active));
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
