//! Histogram gradient-boosted trees for log loss, written for this problem
//! (tens of dense numeric features, up to millions of rows, 2 cores):
//!
//! - every feature is binned once into at most 255 quantile bins (`u8`)
//!   (`binning`);
//! - trees grow leaf-wise (best gain first) up to `max_leaves`, with an
//!   optional depth limit, L2 on leaf values, minimum rows and hessian per
//!   leaf; row ids are partitioned in place, only the smaller child's
//!   histogram is built and the larger one is the parent's minus it, and a
//!   feature that cannot split a node is skipped below it (`grow`);
//! - gradients and hessians are computed and stored as `f32` pairs and
//!   summed in `f64`; a histogram is built over fixed chunks of rows (large
//!   nodes) or with its features split across the threads (small ones), so
//!   the order of every sum is fixed by the rows and the model is
//!   bit-identical whatever the thread count (`hist`);
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

mod binning;
mod grow;
mod hist;

use std::time::{Duration, Instant};

use rayon::prelude::*;
use revspend_core::model::{FeatureMatrix, Gbm, GbmTree, sigmoid};
use revspend_core::params::{ClassWeight, GbmConfig};

pub use binning::bin_edges;
use binning::{Binned, bin_matrix};
use grow::Grower;
use hist::{GradPair, Hist};

/// Rows per chunk of the per-row passes (gradients, validation loss):
/// fixed, so sums over chunks do not depend on the thread count.
const CHUNK: usize = 16_384;
/// Rows sampled per feature to find the bin edges.
const BIN_SAMPLE: usize = 200_000;
/// Hessians are floored here so a leaf's Newton step stays finite.
const MIN_HESSIAN: f32 = 1e-16;

/// Where a fit's rounds spent their time (wall clock, summed over rounds).
#[derive(Debug, Clone, Copy, Default)]
pub struct PhaseTimes {
    /// Gradients and hessians of every row.
    pub gradients: Duration,
    /// Building and subtracting histograms.
    pub histograms: Duration,
    /// Partitioning row ids (training and early-stopping) at splits.
    pub partition: Duration,
    /// Finding each leaf's best split.
    pub splits: Duration,
    /// Adding the tree to the scores, validation loss, the rest.
    pub update: Duration,
}

/// Deterministic hash of (seed, group) for the validation slice.
fn mix(seed: u64, v: u64) -> u64 {
    let mut z = seed ^ v.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
/// Score of a tree for a binned row: core's walk, deciding by the split's
/// bin instead of its raw threshold (the same routing: the threshold is the
/// bin's upper edge).
fn score_binned(tree: &GbmTree, row: &[u8]) -> f64 {
    // NaN was binned to 0 and goes left, as the raw walk sends it.
    tree.score_by(|n| row.get(n.feature as usize).is_some_and(|&b| b > n.bin))
}

/// Features cut into bins once, to be shared by many fits: the search's
/// folds select their rows from the train split's bins, and the final fit
/// takes them whole, so every fit splits at the same edges and nothing is
/// binned twice.
pub struct Bins {
    max_bins: u16,
    edges: Vec<Vec<f64>>,
    binned: Binned,
}

impl std::fmt::Debug for Bins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bins")
            .field("rows", &self.binned.n)
            .field("features", &self.binned.p)
            .field("max_bins", &self.max_bins)
            .finish_non_exhaustive()
    }
}

impl Bins {
    /// At most `max_bins` quantile bins per feature of `x`, edges from an
    /// evenly strided sample of its rows (deterministic and cheap).
    pub fn new(x: &FeatureMatrix, max_bins: u16) -> Bins {
        let (n, p) = (x.rows, x.cols);
        let stride = n.div_ceil(BIN_SAMPLE).max(1);
        let edges: Vec<Vec<f64>> = (0..p)
            .into_par_iter()
            .map(|f| {
                let sample: Vec<f64> = (0..n).step_by(stride).map(|r| x.values[r * p + f]).collect();
                bin_edges(sample, max_bins as usize)
            })
            .collect();
        let binned = bin_matrix(x, &edges);
        Bins {
            max_bins,
            edges,
            binned,
        }
    }

    /// The rows `rows` (in that order), with the same edges.
    pub fn select(&self, rows: &[usize]) -> Bins {
        Bins {
            max_bins: self.max_bins,
            edges: self.edges.clone(),
            binned: select_binned(&self.binned, rows),
        }
    }

    pub fn rows(&self) -> usize {
        self.binned.n
    }

    pub fn max_bins(&self) -> u16 {
        self.max_bins
    }
}

/// The rows `rows` of `b`, row-major and column-major.
fn select_binned(b: &Binned, rows: &[usize]) -> Binned {
    let p = b.p;
    let mut bins = Vec::with_capacity(rows.len() * p);
    for &r in rows {
        bins.extend_from_slice(&b.bins[r * p..(r + 1) * p]);
    }
    let mut columns = vec![0u8; rows.len() * p];
    if !rows.is_empty() {
        columns
            .par_chunks_mut(rows.len())
            .enumerate()
            .for_each(|(f, col)| {
                let from = &b.columns[f * b.n..(f + 1) * b.n];
                for (c, &r) in col.iter_mut().zip(rows) {
                    *c = from[r];
                }
            });
    }
    Binned {
        p,
        n: rows.len(),
        bins,
        columns,
    }
}

/// Fits boosted trees on binned features (see [`Bins`]); as [`fit`]
/// otherwise.
pub fn fit_binned(
    bins: Bins,
    y: &[bool],
    groups: &[u64],
    cfg: &GbmConfig,
    class_weight: ClassWeight,
    seed: u64,
) -> (Gbm, FitStats) {
    let mut booster = Booster::from_bins(bins, y, groups, cfg, class_weight, seed);
    while booster.round() {}
    booster.finish()
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
    fit_binned(Bins::new(x, cfg.max_bins), y, groups, cfg, class_weight, seed)
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
    /// `val`, reordered by each tree into its leaves.
    val_rows: Vec<u32>,
    train: Vec<u32>,
    w_pos: f64,
    w_neg: f64,
    base_score: f64,
    raw: Vec<f64>,
    gh: Vec<GradPair>,
    rows: Vec<u32>,
    scratch: Vec<u32>,
    pool: Vec<Hist>,
    trees: Vec<GbmTree>,
    best: Option<(f64, usize)>,
    round: usize,
    times: PhaseTimes,
    /// Seeds each round's row sample (`subsample` < 1).
    seed: u64,
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
        Booster::from_bins(Bins::new(x, cfg.max_bins), y, groups, cfg, class_weight, seed)
    }

    /// As [`Booster::new`] on features binned beforehand (`bins` has one row
    /// per row of `y`; its `max_bins` wins over the config's).
    pub fn from_bins(
        bins: Bins,
        y: &'a [bool],
        groups: &[u64],
        cfg: &GbmConfig,
        class_weight: ClassWeight,
        seed: u64,
    ) -> Booster<'a> {
        let Bins { edges, binned, .. } = bins;
        let n = binned.n;
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
        let val_rows = val.clone();
        let rows = train.clone();
        let scratch = Vec::with_capacity(rows.len());
        Booster {
            cfg: cfg.clone(),
            y,
            edges,
            binned,
            n_bins,
            val,
            val_rows,
            train,
            w_pos,
            w_neg,
            base_score,
            raw: vec![base_score; n],
            gh: vec![[0.0; 2]; n],
            rows,
            scratch,
            pool: Vec::new(),
            trees: Vec::new(),
            best: None,
            round: 0,
            times: PhaseTimes::default(),
            seed,
        }
    }

    /// Where the rounds so far spent their time.
    pub fn phase_times(&self) -> PhaseTimes {
        self.times
    }

    fn val_loss(&self) -> f64 {
        let (y, raw) = (self.y, &self.raw);
        let (w_pos, w_neg) = (self.w_pos, self.w_neg);
        // Partial sums per fixed chunk, added in chunk order.
        let parts: Vec<(f64, f64)> = self
            .val
            .par_chunks(CHUNK)
            .map(|chunk| {
                let (mut loss, mut wsum) = (0.0, 0.0);
                for &r in chunk {
                    let r = r as usize;
                    let pr = sigmoid(raw[r]).clamp(1e-15, 1.0 - 1e-15);
                    let w = if y[r] { w_pos } else { w_neg };
                    loss -= w * if y[r] { pr.ln() } else { (1.0 - pr).ln() };
                    wsum += w;
                }
                (loss, wsum)
            })
            .collect();
        let (loss, wsum) = parts.iter().fold((0.0, 0.0), |(l, w), (a, b)| (l + a, w + b));
        loss / wsum.max(f64::MIN_POSITIVE)
    }

    fn gradients(&mut self) {
        let started = Instant::now();
        let (raw, y) = (&self.raw, self.y);
        let (w_pos, w_neg) = (self.w_pos, self.w_neg);
        self.gh.par_chunks_mut(CHUNK).enumerate().for_each(|(c, out)| {
            for (k, pair) in out.iter_mut().enumerate() {
                let r = c * CHUNK + k;
                // In f32 (the pair is stored in f32): sigmoid(x) and
                // 1 − sigmoid(x) from one exp(−|x|), each accurate in its
                // tail, where 1 − p would cancel.
                let x = raw[r] as f32;
                let e = (-x.abs()).exp();
                let big = 1.0 / (1.0 + e);
                let small = e * big;
                let (p, q) = if x >= 0.0 { (big, small) } else { (small, big) };
                let w = if y[r] { w_pos } else { w_neg } as f32;
                let g = if y[r] { -w * q } else { w * p };
                let h = (w * p * q).max(MIN_HESSIAN);
                *pair = [g, h];
            }
        });
        self.times.gradients += started.elapsed();
    }

    /// The rows this round's tree is grown on (`rows`) and the rows it only
    /// routes to their leaves (`val_rows`: the early-stopping slice, and
    /// under `subsample` < 1 the training rows not drawn this round, so that
    /// every row's score is updated). The draw hashes (seed, round, row): it
    /// does not depend on the thread count.
    fn sample_rows(&mut self, round: usize) {
        self.val_rows.clear();
        self.val_rows.extend_from_slice(&self.val);
        if self.cfg.subsample >= 1.0 {
            self.rows.clear();
            self.rows.extend_from_slice(&self.train);
            return;
        }
        let threshold = (self.cfg.subsample * u64::MAX as f64) as u64;
        let salt = mix(self.seed, round as u64 + 1);
        self.rows.clear();
        for &r in &self.train {
            if mix(salt, u64::from(r)) < threshold {
                self.rows.push(r);
            } else {
                self.val_rows.push(r);
            }
        }
    }

    /// Grows one tree; false when boosting is over (no round left, no split
    /// worth making, or early stopping).
    pub fn round(&mut self) -> bool {
        if self.round >= self.cfg.max_iter as usize {
            return false;
        }
        let round = self.round;
        self.round += 1;
        self.gradients();
        self.sample_rows(round);
        let mut grower = Grower {
            cfg: &self.cfg,
            binned: &self.binned,
            n_bins: &self.n_bins,
            gh: &self.gh,
            pool: &mut self.pool,
            times: &mut self.times,
        };
        let (tree, leaves) = grower.grow(&mut self.rows, &mut self.val_rows, &self.edges, &mut self.scratch);
        if tree.nodes.len() == 1 {
            // No split left worth making: further rounds would repeat it.
            self.round = self.cfg.max_iter as usize;
            return false;
        }
        let started = Instant::now();
        for leaf in leaves {
            for &r in &self.rows[leaf.start..leaf.end] {
                self.raw[r as usize] += leaf.value;
            }
            for &r in &self.val_rows[leaf.vstart..leaf.vend] {
                self.raw[r as usize] += leaf.value;
            }
        }
        self.trees.push(tree);
        let mut more = self.round < self.cfg.max_iter as usize;
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
                more = false;
            }
        }
        self.times.update += started.elapsed();
        more
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
    use binning::bin_of;
    use revspend_core::model::GbmNode;

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
            subsample: 1.0,
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
            gain: 1.0,
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

    /// Issue 14: every split records the loss reduction it was chosen
    /// with: positive, the root's equal to the gain recomputed from the
    /// first round's gradients, and the feature carrying the signal
    /// gathering more of it than the noise.
    #[test]
    fn splits_record_the_gain_they_were_chosen_with() {
        let n = 2_000;
        let mut values = Vec::with_capacity(2 * n);
        let mut y = Vec::with_capacity(n);
        for i in 0..n {
            let signal = (i % 100) as f64;
            let noise = ((i * 7919) % 53) as f64;
            values.extend([noise, signal]);
            y.push(signal >= 70.0 || i.is_multiple_of(17));
        }
        let x = FeatureMatrix::new(n, 2, values);
        let groups: Vec<u64> = (0..n as u64).collect();
        let cfg = GbmConfig {
            learning_rate: 0.3,
            max_iter: 3,
            max_leaves: 8,
            max_depth: None,
            min_samples_leaf: 5,
            l2: 1.0,
            max_bins: 32,
            subsample: 1.0,
            validation_fraction: 0.0,
            patience: 5,
        };
        let (model, _) = fit(&x, &y, &groups, &cfg, ClassWeight::None, 1);
        let splits: Vec<&GbmNode> = model
            .trees
            .iter()
            .flat_map(|t| &t.nodes)
            .filter(|node| node.left != 0)
            .collect();
        assert!(splits.len() > 3, "{} splits", splits.len());
        assert!(splits.iter().all(|node| node.gain > 0.0), "{splits:?}");
        let leaves = model
            .trees
            .iter()
            .flat_map(|t| &t.nodes)
            .filter(|node| node.left == 0);
        assert!(leaves.into_iter().all(|node| node.gain == 0.0));

        // The first root, from the gradients at the starting score.
        let root = &model.trees[0].nodes[0];
        let p0 = sigmoid(model.base_score);
        let (mut left, mut right) = ([0.0f64; 2], [0.0f64; 2]);
        for (r, &label) in y.iter().enumerate() {
            let side = if x.row(r)[root.feature as usize] > root.threshold {
                &mut right
            } else {
                &mut left
            };
            side[0] += p0 - f64::from(u8::from(label));
            side[1] += p0 * (1.0 - p0);
        }
        let score = |g: f64, h: f64| g * g / (h + cfg.l2);
        let expected = score(left[0], left[1]) + score(right[0], right[1])
            - score(left[0] + right[0], left[1] + right[1]);
        assert!(
            (root.gain - expected).abs() <= 1e-4 * expected,
            "recorded {}, recomputed {expected}",
            root.gain
        );
        let gain = model.gain_importance(2);
        assert!(gain[1] > 10.0 * gain[0], "{gain:?}");
    }

    #[test]
    fn many_values_get_at_most_max_bins() {
        let v: Vec<f64> = (0..10_000).map(f64::from).collect();
        let e = bin_edges(v, 16);
        assert_eq!(e.len(), 15);
        assert!(e.windows(2).all(|w| w[0] < w[1]));
    }
}
