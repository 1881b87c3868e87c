//! Histogram gradient-boosted trees for log loss, written for this problem
//! (tens of dense numeric features, up to millions of rows, 2 cores):
//!
//! - every feature is binned once into at most 255 quantile bins (`u8`),
//!   row-major, so building a node's histogram streams one short row per
//!   sample;
//! - trees grow leaf-wise (best gain first) up to `max_leaves`, with an
//!   optional depth limit, L2 on leaf values, minimum rows and hessian per
//!   leaf; only the smaller child's histogram is built, the larger one is
//!   the parent's minus it;
//! - histograms are built row-parallel over fixed chunks of rows and summed
//!   in chunk order, so the model is bit-identical whatever the thread count;
//! - `balanced` class weights enter as sample weights of the gradients;
//! - early stopping watches the weighted log loss on a seeded slice of whole
//!   customers held out from boosting.
//!
//! The fitted [`Gbm`] keeps each split's bin upper edge as a raw threshold,
//! so prediction works on raw `f64` features (`revspend_core::model`).
//!
//! Why not a crate: `perpetual` (the best-kept pure-Rust booster) replaces
//! learning rate, leaves and depth by a single `budget`, so it does not fit a
//! grid/random search over those; its fitted booster would have to live in
//! our bincode artifact as its own serde types, whose format has changed
//! across its 1.x/2.x/3.0-rc releases; and it adds its own dependency tree to
//! a 2-core build. The booster needed here is a few hundred lines we can test
//! for thread-count independence and tune for this data shape.

use rayon::prelude::*;
use revspend_core::model::{FeatureMatrix, Gbm, GbmNode, GbmTree, sigmoid};
use revspend_core::params::{ClassWeight, GbmConfig};

/// Rows per histogram chunk: fixed, so the floating-point summation order
/// (and so the model) does not depend on how many threads run.
const CHUNK: usize = 16_384;
/// Rows sampled per feature to find the bin edges.
const BIN_SAMPLE: usize = 200_000;
/// Stride of the histogram of one feature (bins are `u8`).
const STRIDE: usize = 256;
/// Hessians are floored here so a leaf's Newton step stays finite.
const MIN_HESSIAN: f64 = 1e-16;
/// Smallest hessian sum a leaf may have.
const MIN_LEAF_HESSIAN: f64 = 1e-3;

#[derive(Debug, Clone, Copy, Default)]
struct Bin {
    g: f64,
    h: f64,
    n: u64,
}

impl Bin {
    fn add(&mut self, o: &Bin) {
        self.g += o.g;
        self.h += o.h;
        self.n += o.n;
    }

    fn sub(&self, o: &Bin) -> Bin {
        Bin {
            g: self.g - o.g,
            h: self.h - o.h,
            n: self.n - o.n,
        }
    }
}

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
fn bin_of(edges: &[f64], x: f64) -> u8 {
    u8::try_from(edges.partition_point(|&e| e < x)).unwrap_or(u8::MAX)
}

/// Binned features, row-major for histograms (a row's bins share a cache
/// line) and column-major for partitioning a node on one feature (dense
/// reads where a row-major read would touch a cache line per row).
struct Binned {
    p: usize,
    n: usize,
    bins: Vec<u8>,
    columns: Vec<u8>,
}

fn bin_matrix(x: &FeatureMatrix, edges: &[Vec<f64>]) -> Binned {
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

/// Deterministic hash of (seed, group) for the validation slice.
fn mix(seed: u64, v: u64) -> u64 {
    let mut z = seed ^ v.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[derive(Debug, Clone, Copy)]
struct Split {
    feature: usize,
    bin: u8,
    gain: f64,
}

/// One histogram per feature; a `u8` bin always indexes inside its array,
/// so the hot loop needs no bounds checks.
type Hist = Vec<[Bin; STRIDE]>;

struct Leaf {
    node: usize,
    start: usize,
    end: usize,
    depth: u16,
    hist: Hist,
    total: Bin,
    split: Option<Split>,
}

struct Grower<'a> {
    cfg: &'a GbmConfig,
    binned: &'a Binned,
    n_bins: Vec<usize>,
    g: &'a [f64],
    h: &'a [f64],
}

impl Grower<'_> {
    fn histogram(&self, rows: &[u32]) -> Hist {
        let p = self.binned.p;
        let build = |rows: &[u32]| {
            let mut hist: Hist = vec![[Bin::default(); STRIDE]; p];
            for &r in rows {
                let r = r as usize;
                let (gr, hr) = (self.g[r], self.h[r]);
                let row = &self.binned.bins[r * p..(r + 1) * p];
                for (feature, &b) in hist.iter_mut().zip(row) {
                    let cell = &mut feature[b as usize];
                    cell.g += gr;
                    cell.h += hr;
                    cell.n += 1;
                }
            }
            hist
        };
        if rows.len() <= CHUNK {
            return build(rows);
        }
        let parts: Vec<Hist> = rows.par_chunks(CHUNK).map(build).collect();
        let mut parts = parts.into_iter();
        let mut hist = parts.next().unwrap_or_else(|| vec![[Bin::default(); STRIDE]; p]);
        for part in parts {
            for (a, b) in hist.iter_mut().zip(&part) {
                for (x, y) in a.iter_mut().zip(b) {
                    x.add(y);
                }
            }
        }
        hist
    }

    fn best_split(&self, hist: &Hist, total: &Bin, depth: u16) -> Option<Split> {
        let cfg = self.cfg;
        if cfg.max_depth.is_some_and(|d| depth >= d) {
            return None;
        }
        let min_n = cfg.min_samples_leaf as u64;
        if total.n < 2 * min_n {
            return None;
        }
        let score = |b: &Bin| b.g * b.g / (b.h + cfg.l2);
        let parent = score(total);
        let mut best: Option<Split> = None;
        for (f, (feature, &n_bins)) in hist.iter().zip(&self.n_bins).enumerate() {
            let mut left = Bin::default();
            // The last bin cannot be a left side: nothing would go right.
            for (b, cell) in feature.iter().enumerate().take(n_bins.saturating_sub(1)) {
                left.add(cell);
                if left.n < min_n || left.h < MIN_LEAF_HESSIAN {
                    continue;
                }
                let right = total.sub(&left);
                if right.n < min_n || right.h < MIN_LEAF_HESSIAN {
                    break;
                }
                let gain = score(&left) + score(&right) - parent;
                if gain > 1e-12 && best.is_none_or(|s| gain > s.gain) {
                    best = Some(Split {
                        feature: f,
                        bin: u8::try_from(b).unwrap_or(u8::MAX),
                        gain,
                    });
                }
            }
        }
        best
    }

    fn leaf(&self, node: usize, start: usize, end: usize, depth: u16, hist: Hist) -> Leaf {
        let mut total = Bin::default();
        // Every row is in exactly one bin of the first feature.
        for b in hist.first().map_or(&[][..], |h| &h[..]) {
            total.add(b);
        }
        let split = self.best_split(&hist, &total, depth);
        Leaf {
            node,
            start,
            end,
            depth,
            hist,
            total,
            split,
        }
    }

    /// Grows one tree on `rows` (reordered in place into leaves); returns
    /// the tree and, per leaf, its row range and value.
    fn grow(
        &self,
        rows: &mut [u32],
        edges: &[Vec<f64>],
        scratch: &mut Vec<u32>,
    ) -> (GbmTree, Vec<(usize, usize, f64)>) {
        let cfg = self.cfg;
        let leaf_node = GbmNode {
            feature: 0,
            threshold: 0.0,
            bin: 0,
            left: 0,
            right: 0,
            value: 0.0,
        };
        let mut nodes = vec![leaf_node.clone()];
        let root_hist = self.histogram(rows);
        let mut open = vec![self.leaf(0, 0, rows.len(), 0, root_hist)];
        let mut done: Vec<Leaf> = Vec::new();
        while open.len() + done.len() < cfg.max_leaves as usize {
            // Best gain first; ties go to the earliest leaf (deterministic).
            let Some(k) = open
                .iter()
                .enumerate()
                .filter_map(|(k, l)| l.split.map(|s| (k, s.gain)))
                .fold(None, |best: Option<(usize, f64)>, (k, g)| match best {
                    Some((_, bg)) if bg >= g => best,
                    _ => Some((k, g)),
                })
                .map(|(k, _)| k)
            else {
                break;
            };
            let leaf = open.swap_remove(k);
            let Some(split) = leaf.split else { break };
            // Stable partition of the leaf's rows: left (bin <= split) first.
            let range = &mut rows[leaf.start..leaf.end];
            let column =
                &self.binned.columns[split.feature * self.binned.n..(split.feature + 1) * self.binned.n];
            scratch.clear();
            let mut w = 0;
            for i in 0..range.len() {
                let r = range[i];
                if column[r as usize] <= split.bin {
                    range[w] = r;
                    w += 1;
                } else {
                    scratch.push(r);
                }
            }
            range[w..].copy_from_slice(scratch);
            let mid = leaf.start + w;
            let (left_id, right_id) = (nodes.len(), nodes.len() + 1);
            nodes.push(leaf_node.clone());
            nodes.push(leaf_node.clone());
            nodes[leaf.node] = GbmNode {
                feature: u32::try_from(split.feature).unwrap_or(u32::MAX),
                threshold: edges[split.feature][split.bin as usize],
                bin: split.bin,
                left: u32::try_from(left_id).unwrap_or(u32::MAX),
                right: u32::try_from(right_id).unwrap_or(u32::MAX),
                value: 0.0,
            };
            let left_small = w <= leaf.end - leaf.start - w;
            let small_rows = if left_small {
                &rows[leaf.start..mid]
            } else {
                &rows[mid..leaf.end]
            };
            let small = self.histogram(small_rows);
            let large: Hist = leaf
                .hist
                .iter()
                .zip(&small)
                .map(|(a, b)| std::array::from_fn(|i| a[i].sub(&b[i])))
                .collect();
            let (lh, rh) = if left_small {
                (small, large)
            } else {
                (large, small)
            };
            let depth = leaf.depth + 1;
            for child in [
                self.leaf(left_id, leaf.start, mid, depth, lh),
                self.leaf(right_id, mid, leaf.end, depth, rh),
            ] {
                if child.split.is_some() {
                    open.push(child);
                } else {
                    done.push(child);
                }
            }
        }
        done.extend(open);
        let mut leaves = Vec::with_capacity(done.len());
        for l in done {
            let value = -cfg.learning_rate * l.total.g / (l.total.h + cfg.l2);
            nodes[l.node].value = value;
            leaves.push((l.start, l.end, value));
        }
        (GbmTree { nodes }, leaves)
    }
}

/// Score of a tree for a binned row: core's walk, deciding by the split's
/// bin instead of its raw threshold (the same routing: the threshold is the
/// bin's upper edge).
fn score_binned(tree: &GbmTree, row: &[u8]) -> f64 {
    // NaN was binned to 0 and goes left, as the raw walk sends it.
    tree.score_by(|n| row.get(n.feature as usize).is_some_and(|&b| b > n.bin))
}

/// What one fit did, for logs and the experiment record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitStats {
    pub rounds: usize,
    pub best_validation_loss: Option<f64>,
}

/// Fits boosted trees on `x`, `y`; `groups` (one id per row, e.g. the
/// customer) decide the early-stopping slice.
pub fn fit(
    x: &FeatureMatrix,
    y: &[bool],
    groups: &[u64],
    cfg: &GbmConfig,
    class_weight: ClassWeight,
    seed: u64,
) -> (Gbm, FitStats) {
    let mut booster = Booster::new(x, y, groups, cfg, class_weight, seed);
    while booster.round() {}
    booster.finish()
}

/// A fit in progress, one boosting round at a time: [`fit`] is `new`,
/// `round` until it returns false, `finish`. Public so that a benchmark can
/// time single rounds.
pub struct Booster<'a> {
    cfg: GbmConfig,
    y: &'a [bool],
    edges: Vec<Vec<f64>>,
    binned: Binned,
    n_bins: Vec<usize>,
    val: Vec<u32>,
    train: Vec<u32>,
    w_pos: f64,
    w_neg: f64,
    base_score: f64,
    raw: Vec<f64>,
    g: Vec<f64>,
    h: Vec<f64>,
    rows: Vec<u32>,
    scratch: Vec<u32>,
    trees: Vec<GbmTree>,
    best: Option<(f64, usize)>,
    round: usize,
}

impl std::fmt::Debug for Booster<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Booster")
            .field("rows", &self.y.len())
            .field("round", &self.round)
            .finish_non_exhaustive()
    }
}

impl<'a> Booster<'a> {
    /// Bins the features and sets up the early-stopping slice and weights.
    pub fn new(
        x: &FeatureMatrix,
        y: &'a [bool],
        groups: &[u64],
        cfg: &GbmConfig,
        class_weight: ClassWeight,
        seed: u64,
    ) -> Booster<'a> {
        let n = x.rows;
        let p = x.cols;
        // Bin edges from an evenly strided sample: deterministic and cheap.
        let stride = n.div_ceil(BIN_SAMPLE).max(1);
        let edges: Vec<Vec<f64>> = (0..p)
            .into_par_iter()
            .map(|f| {
                let sample: Vec<f64> = (0..n).step_by(stride).map(|r| x.values[r * p + f]).collect();
                bin_edges(sample, cfg.max_bins as usize)
            })
            .collect();
        let binned = bin_matrix(x, &edges);

        let threshold = (cfg.validation_fraction * u64::MAX as f64) as u64;
        let is_val = |r: usize| cfg.validation_fraction > 0.0 && mix(seed, groups[r]) < threshold;
        let (val, train): (Vec<u32>, Vec<u32>) = (0..n as u32).partition(|&r| is_val(r as usize));
        // A slice too small to judge by is not worth the rows it takes.
        let (val, train) = if val.len() < 50 || train.len() < 50 {
            (Vec::new(), (0..n as u32).collect())
        } else {
            (val, train)
        };

        let positives = train.iter().filter(|&&r| y[r as usize]).count() as f64;
        let negatives = train.len() as f64 - positives;
        let (w_pos, w_neg) = match class_weight {
            ClassWeight::Balanced if positives > 0.0 && negatives > 0.0 => {
                let total = train.len() as f64;
                (total / (2.0 * positives), total / (2.0 * negatives))
            }
            _ => (1.0, 1.0),
        };
        let prior = (w_pos * positives / (w_pos * positives + w_neg * negatives)).clamp(1e-6, 1.0 - 1e-6);
        let base_score = (prior / (1.0 - prior)).ln();
        let n_bins: Vec<usize> = edges.iter().map(|e| e.len() + 1).collect();
        let rows = train.clone();
        let scratch = Vec::with_capacity(rows.len());
        Booster {
            cfg: cfg.clone(),
            y,
            edges,
            binned,
            n_bins,
            val,
            train,
            w_pos,
            w_neg,
            base_score,
            raw: vec![base_score; n],
            g: vec![0f64; n],
            h: vec![0f64; n],
            rows,
            scratch,
            trees: Vec::new(),
            best: None,
            round: 0,
        }
    }

    fn weight(&self, r: usize) -> f64 {
        if self.y[r] { self.w_pos } else { self.w_neg }
    }

    fn val_loss(&self) -> f64 {
        let (mut loss, mut wsum) = (0.0, 0.0);
        for &r in &self.val {
            let r = r as usize;
            let pr = sigmoid(self.raw[r]).clamp(1e-15, 1.0 - 1e-15);
            let w = self.weight(r);
            loss -= w * if self.y[r] { pr.ln() } else { (1.0 - pr).ln() };
            wsum += w;
        }
        loss / wsum.max(f64::MIN_POSITIVE)
    }

    /// Grows one tree; false when boosting is over (no round left, no split
    /// worth making, or early stopping).
    pub fn round(&mut self) -> bool {
        if self.round >= self.cfg.max_iter as usize {
            return false;
        }
        let round = self.round;
        self.round += 1;
        let p = self.binned.p;
        {
            let (raw, y) = (&self.raw, self.y);
            let (w_pos, w_neg) = (self.w_pos, self.w_neg);
            self.g
                .par_chunks_mut(CHUNK)
                .zip(self.h.par_chunks_mut(CHUNK))
                .enumerate()
                .for_each(|(c, (gc, hc))| {
                    for k in 0..gc.len() {
                        let r = c * CHUNK + k;
                        let pr = sigmoid(raw[r]);
                        let w = if y[r] { w_pos } else { w_neg };
                        gc[k] = w * (pr - f64::from(u8::from(y[r])));
                        hc[k] = (w * pr * (1.0 - pr)).max(MIN_HESSIAN);
                    }
                });
        }
        self.rows.copy_from_slice(&self.train);
        let grower = Grower {
            cfg: &self.cfg,
            binned: &self.binned,
            n_bins: self.n_bins.clone(),
            g: &self.g,
            h: &self.h,
        };
        let (tree, leaves) = grower.grow(&mut self.rows, &self.edges, &mut self.scratch);
        if tree.nodes.len() == 1 {
            // No split left worth making: further rounds would repeat it.
            self.round = self.cfg.max_iter as usize;
            return false;
        }
        for (start, end, value) in leaves {
            for &r in &self.rows[start..end] {
                self.raw[r as usize] += value;
            }
        }
        for &r in &self.val {
            let r = r as usize;
            self.raw[r] += score_binned(&tree, &self.binned.bins[r * p..(r + 1) * p]);
        }
        self.trees.push(tree);
        if !self.val.is_empty() {
            let loss = self.val_loss();
            match self.best {
                Some((b, _)) if loss >= b - 1e-7 => {}
                _ => self.best = Some((loss, round)),
            }
            if self
                .best
                .is_some_and(|(_, at)| round - at >= self.cfg.patience as usize)
            {
                self.round = self.cfg.max_iter as usize;
                return false;
            }
        }
        self.round < self.cfg.max_iter as usize
    }

    /// The model (cut back to the best validation round) and what the fit
    /// did.
    pub fn finish(mut self) -> (Gbm, FitStats) {
        if let Some((_, at)) = self.best {
            self.trees.truncate(at + 1);
        }
        let stats = FitStats {
            rounds: self.trees.len(),
            best_validation_loss: self.best.map(|(l, _)| l),
        };
        (
            Gbm {
                base_score: self.base_score,
                trees: self.trees,
                bin_edges: self.edges,
            },
            stats,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_distinct_values_get_one_bin_each() {
        let e = bin_edges(vec![3.0, 1.0, 2.0, 2.0, f64::NAN], 255);
        assert_eq!(e, vec![1.5, 2.5]);
        assert_eq!(bin_of(&e, 1.0), 0);
        assert_eq!(bin_of(&e, 1.5), 0);
        assert_eq!(bin_of(&e, 2.0), 1);
        assert_eq!(bin_of(&e, 9.0), 2);
        assert_eq!(bin_of(&e, f64::NAN), 0);
    }

    #[test]
    fn binned_and_raw_scores_agree_and_cycles_end() {
        // Two features with ties and NaN; a few rounds of deep trees.
        let n = 3_000;
        let mut values = Vec::with_capacity(2 * n);
        let mut y = Vec::with_capacity(n);
        for i in 0..n {
            let a = if i.is_multiple_of(13) {
                f64::NAN
            } else {
                (i % 37) as f64
            };
            let b = ((i * 7) % 11) as f64 * 0.25;
            values.extend([a, b]);
            y.push((i % 37 > 20) ^ i.is_multiple_of(5));
        }
        let x = FeatureMatrix::new(n, 2, values);
        let groups: Vec<u64> = (0..n as u64).collect();
        let cfg = GbmConfig {
            learning_rate: 0.3,
            max_iter: 5,
            max_leaves: 31,
            max_depth: None,
            min_samples_leaf: 5,
            l2: 1.0,
            max_bins: 16,
            validation_fraction: 0.0,
            patience: 5,
        };
        let (model, _) = fit(&x, &y, &groups, &cfg, ClassWeight::None, 1);
        assert!(!model.trees.is_empty());
        let binned = bin_matrix(&x, &model.bin_edges);
        for tree in &model.trees {
            for r in 0..n {
                let raw = tree.score(x.row(r));
                let by_bin = score_binned(tree, &binned.bins[r * 2..(r + 1) * 2]);
                assert_eq!(raw.to_bits(), by_bin.to_bits(), "row {r}");
            }
        }
        // Node 1 is its own child.
        let split = GbmNode {
            feature: 0,
            threshold: 0.0,
            bin: 0,
            left: 1,
            right: 1,
            value: 0.0,
        };
        let looping = GbmTree {
            nodes: vec![split.clone(), split],
        };
        assert_eq!(
            score_binned(&looping, &[0, 0]),
            0.0,
            "a cycle ends instead of hanging"
        );
    }

    #[test]
    fn many_values_get_at_most_max_bins() {
        let v: Vec<f64> = (0..10_000).map(f64::from).collect();
        let e = bin_edges(v, 16);
        assert_eq!(e.len(), 15);
        assert!(e.windows(2).all(|w| w[0] < w[1]));
    }
}
