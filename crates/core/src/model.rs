//! Fitted model types, the routing of their trees and their probability
//! output. Fitting lives in `train`; this is what the artifact carries and
//! what `evaluate` and `serve` call.
//!
//! Every classifier produces an honest probability of the positive class:
//! logistic and naive Bayes from their fitted parameters, boosting from the
//! summed leaf scores through the sigmoid, a CART tree from its leaf, the
//! forest as the mean of its trees' leaf probabilities. The artifact then
//! applies its [`Calibrator`], so what `serve` returns is calibrated.
//!
//! Trees are held in this crate's own node types ([`CartTree`], [`GbmTree`]),
//! never in a fitting library's: the model file format is ours to version,
//! and serving needs no fitting library. Every tree is walked by the one
//! function [`walk`]; a tree type only says which way a node sends a row.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::calibration::Calibrator;
pub use crate::calibration::sigmoid;
use crate::features::Feature;
use crate::metrics::{BinaryMetrics, ReliabilityBin};
use crate::target::TargetRule;

/// Why a prediction failed.
#[derive(Debug, Error)]
pub enum ModelError {
    #[error("feature matrix has {got} columns, the model expects {expected}")]
    Width { expected: usize, got: usize },
    #[error("tree {tree} is malformed: a row reached no leaf")]
    Tree { tree: usize },
}

/// Row-major feature values, one row per purchase, columns in the model's
/// feature order.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureMatrix {
    pub rows: usize,
    pub cols: usize,
    pub values: Vec<f64>,
}

impl FeatureMatrix {
    pub fn new(rows: usize, cols: usize, values: Vec<f64>) -> FeatureMatrix {
        assert_eq!(rows * cols, values.len(), "matrix shape");
        FeatureMatrix { rows, cols, values }
    }

    pub fn row(&self, i: usize) -> &[f64] {
        &self.values[i * self.cols..(i + 1) * self.cols]
    }

    /// The rows `rows`, all columns, as a new matrix.
    pub fn select_rows(&self, rows: &[usize]) -> FeatureMatrix {
        let mut values = Vec::with_capacity(rows.len() * self.cols);
        for &r in rows {
            values.extend_from_slice(self.row(r));
        }
        FeatureMatrix::new(rows.len(), self.cols, values)
    }
}

/// Logistic regression on standardised features: `p = σ(b + Σ w_j z_j)`
/// with `z_j = (x_j − mean_j) / scale_j`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Logistic {
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
    pub coefficients: Vec<f64>,
    pub intercept: f64,
}

/// Gaussian naive Bayes: per class a prior and per feature a mean and a
/// (smoothed) variance; index 0 is the negative class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NaiveBayes {
    pub priors: [f64; 2],
    pub means: [Vec<f64>; 2],
    pub variances: [Vec<f64>; 2],
}

/// A node of a binary tree held as an array, root at index 0. Children are
/// always stored after their parent, so no child is ever node 0 and a child
/// index of 0 marks a leaf.
pub trait TreeNode {
    /// The `(left, right)` children of a split node; `None` for a leaf.
    fn children(&self) -> Option<(usize, usize)>;
}

/// The leaf a row reaches: from the root, each split node sends the row to
/// its right child when `goes_right(node)` holds, else to its left child.
/// `None` when the nodes do not form a tree (a child out of range, or a
/// cycle: a path visits each node at most once, so the bound keeps a
/// malformed tree from hanging the caller).
///
/// The one tree walk of the workspace: raw-value prediction here and
/// `train`'s binned scoring differ only in `goes_right`.
pub fn walk<N: TreeNode>(nodes: &[N], mut goes_right: impl FnMut(&N) -> bool) -> Option<&N> {
    let mut i = 0usize;
    for _ in 0..=nodes.len() {
        let node = nodes.get(i)?;
        let Some((left, right)) = node.children() else {
            return Some(node);
        };
        i = if goes_right(node) { right } else { left };
    }
    None
}

/// The value of feature `f` in `row`; a feature the row does not have reads
/// as missing (NaN), so a malformed tree routes instead of panicking.
fn value(row: &[f64], f: usize) -> f64 {
    row.get(f).copied().unwrap_or(f64::NAN)
}

/// One node of a CART tree (as grown by `train` with smartcore). A leaf has
/// `left == right == 0`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CartNode {
    /// Column of the split, in the feature order the tree was grown on.
    pub feature: u32,
    /// Rows with `x <= threshold` go left, all others (NaN included) right,
    /// as smartcore routes them (a NaN threshold, like smartcore's split
    /// without a value, sends every row right).
    pub threshold: f64,
    pub left: u32,
    pub right: u32,
    /// A leaf's probability of the positive class (smartcore's leaf
    /// probability is one-hot on its majority class: 0 or 1); 0 for a split.
    pub positive: f64,
}

impl TreeNode for CartNode {
    fn children(&self) -> Option<(usize, usize)> {
        (self.left != 0).then_some((self.left as usize, self.right as usize))
    }
}

impl CartNode {
    /// Whether a row whose split feature is `x` goes right.
    pub fn goes_right(&self, x: f64) -> bool {
        // `<=` is false when either side is NaN, so NaN goes right.
        let goes_left = x <= self.threshold;
        !goes_left
    }
}

/// A CART classification tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CartTree {
    pub nodes: Vec<CartNode>,
}

impl CartTree {
    /// The positive-class probability of the leaf a row reaches, reading
    /// split feature `f` as `x(f)`; `None` for a malformed tree.
    pub fn positive_proba(&self, x: impl Fn(usize) -> f64) -> Option<f64> {
        walk(&self.nodes, |n| n.goes_right(x(n.feature as usize))).map(|leaf| leaf.positive)
    }
}

/// One bagged tree and the feature columns (indices into the model's
/// feature order) it was grown on; its nodes' features index `columns`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaggedTree {
    pub columns: Vec<usize>,
    pub tree: CartTree,
}

impl BaggedTree {
    /// The tree's positive-class probability for a row in the model's
    /// feature order.
    pub fn positive_proba(&self, row: &[f64]) -> Option<f64> {
        self.tree
            .positive_proba(|f| self.columns.get(f).map_or(f64::NAN, |&c| value(row, c)))
    }
}

/// One node of a boosted tree. A leaf has `left == right == 0`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GbmNode {
    pub feature: u32,
    /// Rows with `x <= threshold` (or NaN) go left. The threshold is the
    /// upper edge of histogram bin `bin`, so raw values route exactly as
    /// their bins did in training.
    pub threshold: f64,
    pub bin: u8,
    pub left: u32,
    pub right: u32,
    /// Leaf score (learning rate included); 0 for a split node.
    pub value: f64,
    /// The loss reduction the split was chosen with (LightGBM's split
    /// gain: `G_L²/(H_L+λ) + G_R²/(H_R+λ) − G²/(H+λ)`); 0 for a leaf.
    /// Summed per feature, it is the model's gain importance.
    pub gain: f64,
}

impl TreeNode for GbmNode {
    fn children(&self) -> Option<(usize, usize)> {
        (self.left != 0).then_some((self.left as usize, self.right as usize))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GbmTree {
    pub nodes: Vec<GbmNode>,
}

impl GbmTree {
    /// Rows [`add_scores`](Self::add_scores) walks side by side.
    const LANES: usize = 8;

    /// The leaf score for one row of raw feature values; 0 for a malformed
    /// tree.
    pub fn score(&self, row: &[f64]) -> f64 {
        // `walk` with `value` inlined by hand (this loop is most of a batch
        // prediction: 10 % faster at 1.5M rows x 285 trees, the same bits).
        // NaN compares false and goes left, like bin 0 in training; a
        // feature the row lacks reads as NaN; a cycle or a child out of
        // range scores 0, as `walk` does.
        let nodes = &self.nodes;
        let mut i = 0usize;
        for _ in 0..=nodes.len() {
            let Some(n) = nodes.get(i) else {
                return 0.0;
            };
            if n.left == 0 {
                return n.value;
            }
            let v = row.get(n.feature as usize).copied().unwrap_or(f64::NAN);
            i = if v > n.threshold { n.right } else { n.left } as usize;
        }
        0.0
    }

    /// The longest root-to-leaf path, when every split's children come
    /// after it in the node list and every feature is below `width` (as
    /// training writes trees); `None` otherwise.
    fn checked_depth(&self, width: usize) -> Option<usize> {
        let len = self.nodes.len();
        let mut depth = vec![0usize; len];
        let mut deepest = 0;
        for (i, n) in self.nodes.iter().enumerate() {
            if n.left == 0 {
                continue;
            }
            let (l, r) = (n.left as usize, n.right as usize);
            if l <= i || r <= i || l >= len || r >= len || n.feature as usize >= width {
                return None;
            }
            let d = depth[i] + 1;
            depth[l] = depth[l].max(d);
            depth[r] = depth[r].max(d);
            deepest = deepest.max(d);
        }
        (len > 0).then_some(deepest)
    }

    /// Adds this tree's score of rows `start..start + acc.len()` of `x` to
    /// `acc`, for a tree [`checked_depth`](Self::checked_depth) passed:
    /// eight rows walk side by side for exactly `depth` steps (a row at its
    /// leaf stays there), so the walks overlap instead of each waiting on
    /// its own comparisons. The same leaves as [`score`](Self::score).
    fn add_scores(&self, x: &FeatureMatrix, start: usize, acc: &mut [f64], depth: usize) {
        const LANES: usize = GbmTree::LANES;
        let nodes = &self.nodes;
        let mut lanes = acc.chunks_exact_mut(LANES);
        let mut first = start;
        for group in lanes.by_ref() {
            let rows: [&[f64]; LANES] = std::array::from_fn(|l| x.row(first + l));
            let mut at = [0usize; LANES];
            for _ in 0..depth {
                let mut moving = false;
                for (i, row) in at.iter_mut().zip(&rows) {
                    let n = &nodes[*i];
                    let next = if row[n.feature as usize] > n.threshold {
                        n.right
                    } else {
                        n.left
                    };
                    moving |= n.left != 0;
                    *i = if n.left == 0 { *i } else { next as usize };
                }
                // All eight at their leaves: the rest of the depth is moot.
                if !moving {
                    break;
                }
            }
            for (a, i) in group.iter_mut().zip(at) {
                *a += nodes[i].value;
            }
            first += LANES;
        }
        for (k, a) in lanes.into_remainder().iter_mut().enumerate() {
            *a += self.score(x.row(first + k));
        }
    }

    /// The leaf score of the row that `goes_right` describes (e.g. by its
    /// bins, in training); 0 for a malformed tree.
    pub fn score_by(&self, goes_right: impl FnMut(&GbmNode) -> bool) -> f64 {
        walk(&self.nodes, goes_right).map_or(0.0, |leaf| leaf.value)
    }
}

/// Histogram gradient-boosted trees for log loss.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gbm {
    /// Starting log-odds (of the weighted training prior).
    pub base_score: f64,
    pub trees: Vec<GbmTree>,
    /// Upper bin edges per feature (`x <= edges[b]` is bin `b` or lower);
    /// kept to trace what the splits were chosen on.
    pub bin_edges: Vec<Vec<f64>>,
}

impl Gbm {
    /// Gain importance: the summed gain of the splits on each of the
    /// `n_features` features (LightGBM's `importance_type='gain'`). A split
    /// on a feature beyond `n_features` counts for none.
    pub fn gain_importance(&self, n_features: usize) -> Vec<f64> {
        let mut gain = vec![0.0; n_features];
        for node in self.trees.iter().flat_map(|t| &t.nodes) {
            if let (Some(_), Some(g)) = (node.children(), gain.get_mut(node.feature as usize)) {
                *g += node.gain;
            }
        }
        gain
    }

    /// Log-odds for one row.
    pub fn raw_score(&self, row: &[f64]) -> f64 {
        let mut sum = 0.0;
        for tree in &self.trees {
            sum += tree.score(row);
        }
        self.base_score + sum
    }
}

/// A fitted classifier.
#[derive(Debug, Serialize, Deserialize)]
pub enum Classifier {
    /// Always predicts the training prior: the baseline any model must beat.
    Prior {
        probability: f64,
    },
    Logistic(Logistic),
    NaiveBayes(NaiveBayes),
    /// One CART tree (grown by smartcore in `train`). Its leaf probability
    /// is one-hot on the leaf's majority class, so this ranks coarsely (two
    /// values).
    Tree {
        tree: CartTree,
    },
    /// Random forest: CART trees, each grown on a bootstrap sample and a
    /// random subset of the features. The probability is the share of trees
    /// voting positive (Breiman's forest vote), because smartcore's own
    /// forest exposes neither its trees nor probabilities.
    Forest {
        trees: Vec<BaggedTree>,
    },
    Gbm(Gbm),
}

impl Classifier {
    /// The per-feature gain importance of a model whose splits record their
    /// gain (boosting); `None` for every other classifier (smartcore's CART
    /// trees keep no impurity decrease, and the linear models split
    /// nothing).
    pub fn gain_importance(&self, n_features: usize) -> Option<Vec<f64>> {
        match self {
            Classifier::Gbm(m) => Some(m.gain_importance(n_features)),
            _ => None,
        }
    }

    /// Uncalibrated probability of revenge spending for each row of `x`.
    pub fn predict_proba(&self, x: &FeatureMatrix, n_features: usize) -> Result<Vec<f64>, ModelError> {
        if x.cols != n_features {
            return Err(ModelError::Width {
                expected: n_features,
                got: x.cols,
            });
        }
        let rows = 0..x.rows;
        match self {
            Classifier::Prior { probability } => Ok(vec![*probability; x.rows]),
            Classifier::Logistic(m) => Ok(rows
                .map(|r| {
                    let z = x
                        .row(r)
                        .iter()
                        .zip(&m.mean)
                        .zip(&m.scale)
                        .zip(&m.coefficients)
                        .map(|(((v, mu), s), w)| w * (v - mu) / s)
                        .sum::<f64>();
                    sigmoid(m.intercept + z)
                })
                .collect()),
            Classifier::NaiveBayes(m) => Ok(rows
                .map(|r| {
                    let row = x.row(r);
                    let log_joint = |c: usize| {
                        m.priors[c].max(f64::MIN_POSITIVE).ln()
                            + row
                                .iter()
                                .zip(&m.means[c])
                                .zip(&m.variances[c])
                                .map(|((v, mu), var)| {
                                    -0.5 * ((2.0 * std::f64::consts::PI * var).ln() + (v - mu).powi(2) / var)
                                })
                                .sum::<f64>()
                    };
                    // P(1 | x) = σ(log P(1, x) − log P(0, x)): no underflow.
                    sigmoid(log_joint(1) - log_joint(0))
                })
                .collect()),
            Classifier::Tree { tree } => rows
                .map(|r| {
                    let row = x.row(r);
                    tree.positive_proba(|f| value(row, f))
                        .ok_or(ModelError::Tree { tree: 0 })
                })
                .collect(),
            Classifier::Forest { trees } => {
                let mut sum = vec![0f64; x.rows];
                // Tree by tree, as the sums were always formed: the same
                // floating-point order, so the same bits.
                for (t, bagged) in trees.iter().enumerate() {
                    for (r, s) in sum.iter_mut().enumerate() {
                        *s += bagged
                            .positive_proba(x.row(r))
                            .ok_or(ModelError::Tree { tree: t })?;
                    }
                }
                let n = trees.len().max(1) as f64;
                Ok(sum.into_iter().map(|v| v / n).collect())
            }
            Classifier::Gbm(m) => {
                // Tree by tree over blocks of rows: a tree's nodes stay in
                // cache for the whole block (row by row, hundreds of trees
                // are megabytes). Each row's tree scores are added in tree
                // order, as `raw_score` adds them: the same bits.
                const BLOCK: usize = 256;
                // The lockstep walk needs eight rows; for fewer (a single
                // prediction) checking every tree's depth would cost more
                // than the walks it enables, so they walk one by one.
                let depths: Vec<Option<usize>> = if x.rows >= GbmTree::LANES {
                    m.trees.iter().map(|t| t.checked_depth(x.cols)).collect()
                } else {
                    vec![None; m.trees.len()]
                };
                let mut out = Vec::with_capacity(x.rows);
                let mut acc = [0f64; BLOCK];
                for start in (0..x.rows).step_by(BLOCK) {
                    let acc = &mut acc[..BLOCK.min(x.rows - start)];
                    acc.fill(0.0);
                    for (tree, depth) in m.trees.iter().zip(&depths) {
                        match depth {
                            Some(depth) => tree.add_scores(x, start, acc, *depth),
                            None => {
                                for (k, a) in acc.iter_mut().enumerate() {
                                    *a += tree.score(x.row(start + k));
                                }
                            }
                        }
                    }
                    out.extend(acc.iter().map(|a| sigmoid(m.base_score + a)));
                }
                Ok(out)
            }
        }
    }
}

/// Reliability of the test-split probabilities before and after calibration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reliability {
    pub before: Vec<ReliabilityBin>,
    pub after: Vec<ReliabilityBin>,
    pub ece_before: f64,
    pub ece_after: f64,
}

/// The payload of a model file: the fitted model and everything needed to
/// use and trace it.
#[derive(Debug, Serialize, Deserialize)]
pub struct ModelArtifact {
    /// `<algorithm>-<first 12 hex digits of the lineage hash>`.
    pub model_version: String,
    pub algorithm: String,
    /// The chosen configuration's hyper-parameters, as compact JSON text
    /// (`ModelSpec::params_json`): text, so that editing the Rust types of
    /// the search spaces cannot change how a stored model decodes.
    pub hyperparameters: String,
    /// The ordered feature schema the model expects, stored by column name
    /// (not by the enum's position, which a new feature could shift).
    #[serde(with = "feature_names")]
    pub features: Vec<Feature>,
    /// The rule the labels and the history features were built with.
    pub rule: TargetRule,
    pub classifier: Classifier,
    /// Maps the classifier's probability to a calibrated one.
    pub calibrator: Calibrator,
    /// Decision threshold on the calibrated probability (`>=` flags
    /// revenge spending).
    pub threshold: f64,
    /// How the threshold was chosen (`max_f1`, `cost`, `params`).
    pub threshold_source: String,
    /// Share of positives in the training split.
    pub training_prior: f64,
    /// The `train` params section that produced the model, as the compact
    /// JSON text `train` wrote (fields in declaration order). Stored as
    /// text, not as the Rust struct, so a params change never changes the
    /// file format.
    pub train_params: String,
    /// SHA-256 of exactly the bytes of `train_params`; checked on read.
    pub params_hash: String,
    /// SHA-256 of the training table file.
    pub data_hash: String,
    /// Calibrated metrics on the test split, where the threshold was chosen.
    pub test_metrics: BinaryMetrics,
    /// Reliability on the test split, before and after calibration.
    pub reliability: Reliability,
    /// Version of the `revspend-core` that wrote it.
    pub written_by: String,
    /// [`crate::pseudonym::Pseudonymiser::key_fingerprint`] of the key the
    /// training data's customers were pseudonymised with (from the feature
    /// list): the server refuses to serve the model with another key.
    pub key_fingerprint: String,
}

impl ModelArtifact {
    /// Calibrated probabilities for rows already in the model's feature order.
    pub fn predict_proba(&self, x: &FeatureMatrix) -> Result<Vec<f64>, ModelError> {
        let raw = self.predict_uncalibrated(x)?;
        Ok(raw.into_iter().map(|p| self.calibrator.apply(p)).collect())
    }

    /// The classifier's own probabilities, before calibration.
    pub fn predict_uncalibrated(&self, x: &FeatureMatrix) -> Result<Vec<f64>, ModelError> {
        self.classifier.predict_proba(x, self.features.len())
    }
}

/// Serde for the feature schema by column name: [`Feature::name`] out,
/// [`Feature::from_name`] in, an unknown name an error naming it.
mod feature_names {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::features::Feature;

    pub fn serialize<S: Serializer>(features: &[Feature], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(features.iter().map(|f| f.name()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Feature>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|n| Feature::from_name(n).ok_or_else(|| D::Error::custom(format!("unknown feature `{n}`"))))
            .collect()
    }
}

/// Tree nodes for the tests of this crate (the model here, the file format
/// in `artifact`).
#[cfg(test)]
pub(crate) mod test_nodes {
    use super::{CartNode, GbmNode};

    pub fn cart_split(feature: u32, threshold: f64, left: u32, right: u32) -> CartNode {
        CartNode {
            feature,
            threshold,
            left,
            right,
            positive: 0.0,
        }
    }

    pub fn cart_leaf(positive: f64) -> CartNode {
        CartNode {
            positive,
            ..cart_split(0, 0.0, 0, 0)
        }
    }

    pub fn gbm_split(feature: u32, threshold: f64, bin: u8, left: u32, right: u32) -> GbmNode {
        GbmNode {
            feature,
            threshold,
            bin,
            left,
            right,
            value: 0.0,
            gain: 0.0,
        }
    }

    pub fn gbm_leaf(value: f64) -> GbmNode {
        GbmNode {
            value,
            ..gbm_split(0, 0.0, 0, 0, 0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_nodes::{cart_leaf, cart_split, gbm_leaf, gbm_split};
    use super::*;

    /// Issue 13: the block-wise batch prediction of a boosted model gives
    /// each row the bits of its own walk, across block edges.
    #[test]
    fn boosted_batch_probabilities_are_the_row_by_row_ones() {
        let mut trees: Vec<GbmTree> = (0..7)
            .map(|t| GbmTree {
                nodes: vec![
                    gbm_split(t % 2, 0.1 * f64::from(t), 0, 1, 2),
                    gbm_leaf(-0.3 + 0.01 * f64::from(t)),
                    gbm_split(1 - t % 2, 0.5, 0, 3, 4),
                    gbm_leaf(0.7 / f64::from(t + 1)),
                    gbm_split(0, 0.8, 0, 5, 6),
                    gbm_leaf(0.11),
                    gbm_leaf(-0.05 * f64::from(t)),
                ],
            })
            .collect();
        // Trees the side-by-side walk must not take: a child before its
        // parent (a cycle), and a feature the rows do not have (read as NaN).
        trees.push(GbmTree {
            nodes: vec![
                gbm_split(0, 0.5, 0, 1, 2),
                gbm_split(1, 0.5, 0, 0, 2),
                gbm_leaf(0.2),
            ],
        });
        trees.push(GbmTree {
            nodes: vec![gbm_split(5, 0.5, 0, 1, 2), gbm_leaf(-0.4), gbm_leaf(0.4)],
        });
        let model = Gbm {
            base_score: -1.25,
            trees,
            bin_edges: vec![],
        };
        // Blocks of 256 rows, groups of 8 and a remainder; a few NaN.
        let n = 605;
        let values: Vec<f64> = (0..2 * n)
            .map(|i| {
                if i % 97 == 0 {
                    f64::NAN
                } else {
                    ((i * 37) % 101) as f64 / 101.0
                }
            })
            .collect();
        let x = FeatureMatrix::new(n, 2, values);
        let batch = Classifier::Gbm(model.clone())
            .predict_proba(&x, 2)
            .expect("predict");
        assert_eq!(batch.len(), n);
        for (r, p) in batch.iter().enumerate() {
            assert_eq!(
                p.to_bits(),
                sigmoid(model.raw_score(x.row(r))).to_bits(),
                "row {r}"
            );
        }
    }

    /// Issue 14: gain importance is the sum of the split gains per
    /// feature, across trees; leaves (whose `feature` is 0) add nothing.
    #[test]
    fn gain_importance_sums_the_split_gains_per_feature() {
        let split = |feature, gain| GbmNode {
            gain,
            ..gbm_split(feature, 0.5, 0, 1, 2)
        };
        let leaf = |value| GbmNode {
            gain: 99.0,
            ..gbm_leaf(value)
        };
        let mut deep = split(1, 4.0);
        deep.left = 3;
        deep.right = 4;
        let model = Gbm {
            base_score: 0.0,
            trees: vec![
                GbmTree {
                    nodes: vec![split(2, 10.0), leaf(-0.1), leaf(0.1)],
                },
                GbmTree {
                    nodes: vec![split(2, 2.5), leaf(0.2), deep, leaf(-0.3), leaf(0.4)],
                },
            ],
            bin_edges: vec![],
        };
        assert_eq!(model.gain_importance(4), vec![0.0, 4.0, 12.5, 0.0]);
        let c = Classifier::Gbm(model);
        assert_eq!(c.gain_importance(3), Some(vec![0.0, 4.0, 12.5]));
        let tree = CartTree {
            nodes: vec![cart_split(0, 0.5, 1, 2), cart_leaf(0.0), cart_leaf(1.0)],
        };
        assert_eq!(Classifier::Tree { tree }.gain_importance(3), None);
        assert_eq!(Classifier::Prior { probability: 0.1 }.gain_importance(3), None);
    }

    #[test]
    fn sigmoid_is_stable_and_symmetric() {
        assert_eq!(sigmoid(0.0), 0.5);
        assert!((sigmoid(3.0) + sigmoid(-3.0) - 1.0).abs() < 1e-15);
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert_eq!(sigmoid(1000.0), 1.0);
    }

    #[test]
    fn gbm_routes_raw_values_by_bin_edges() {
        let tree = GbmTree {
            nodes: vec![gbm_split(0, 1.5, 1, 1, 2), gbm_leaf(-1.0), gbm_leaf(2.0)],
        };
        assert_eq!(tree.score(&[1.5]), -1.0);
        assert_eq!(tree.score(&[1.6]), 2.0);
        assert_eq!(tree.score(&[f64::NAN]), -1.0);
        let mut cycle = tree.clone();
        cycle.nodes[0].left = 0;
        cycle.nodes[0].right = 0;
        cycle.nodes[1].left = 2;
        cycle.nodes[1].right = 1;
        cycle.nodes[2].left = 1;
        cycle.nodes[2].right = 1;
        let looping = GbmTree {
            nodes: vec![cycle.nodes[1].clone(), cycle.nodes[2].clone()],
        };
        assert_eq!(looping.score(&[0.0]), 0.0, "a cycle ends instead of hanging");
    }

    #[test]
    fn cart_sends_ties_left_and_nan_right() {
        let tree = CartTree {
            nodes: vec![cart_split(1, 2.0, 1, 2), cart_leaf(0.0), cart_leaf(1.0)],
        };
        let c = Classifier::Tree { tree };
        let x = FeatureMatrix::new(4, 2, vec![9.0, 2.0, 9.0, 2.5, 9.0, f64::NAN, 9.0, -1.0]);
        assert_eq!(c.predict_proba(&x, 2).expect("predict"), vec![0.0, 1.0, 1.0, 0.0]);
        // A split without a value (NaN) sends everything right.
        let no_value = CartTree {
            nodes: vec![cart_split(0, f64::NAN, 1, 2), cart_leaf(0.0), cart_leaf(1.0)],
        };
        assert_eq!(no_value.positive_proba(|_| 0.0), Some(1.0));
    }

    #[test]
    fn forest_trees_read_their_own_columns_and_vote() {
        // Both trees split on their column 0: model feature 1, then 0.
        let tree = CartTree {
            nodes: vec![cart_split(0, 0.5, 1, 2), cart_leaf(0.0), cart_leaf(1.0)],
        };
        let c = Classifier::Forest {
            trees: vec![
                BaggedTree {
                    columns: vec![1],
                    tree: tree.clone(),
                },
                BaggedTree {
                    columns: vec![0, 1],
                    tree,
                },
            ],
        };
        let x = FeatureMatrix::new(3, 2, vec![0.0, 1.0, 1.0, 1.0, 0.0, 0.0]);
        assert_eq!(c.predict_proba(&x, 2).expect("predict"), vec![0.5, 1.0, 0.0]);
    }

    #[test]
    fn a_malformed_cart_tree_is_an_error_not_a_hang() {
        let cycle = CartTree {
            nodes: vec![cart_split(0, 0.5, 1, 1), cart_split(0, 0.5, 1, 1)],
        };
        assert_eq!(cycle.positive_proba(|_| 0.0), None);
        let out_of_range = CartTree {
            nodes: vec![cart_split(0, 0.5, 7, 8)],
        };
        let c = Classifier::Forest {
            trees: vec![BaggedTree {
                columns: vec![0],
                tree: out_of_range,
            }],
        };
        let err = c.predict_proba(&FeatureMatrix::new(1, 1, vec![0.0]), 1);
        assert!(matches!(err, Err(ModelError::Tree { tree: 0 })), "{err:?}");
    }

    #[test]
    fn naive_bayes_probability_follows_the_likelihoods() {
        let m = NaiveBayes {
            priors: [0.5, 0.5],
            means: [vec![0.0], vec![2.0]],
            variances: [vec![1.0], vec![1.0]],
        };
        let c = Classifier::NaiveBayes(m);
        let x = FeatureMatrix::new(3, 1, vec![1.0, -1.0, 3.0]);
        let p = c.predict_proba(&x, 1).expect("predict");
        assert!((p[0] - 0.5).abs() < 1e-12);
        // log-likelihood ratio at x: 2x − 2.
        assert!((p[1] - sigmoid(-4.0)).abs() < 1e-12);
        assert!((p[2] - sigmoid(4.0)).abs() < 1e-12);
    }
}
