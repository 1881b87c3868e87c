//! Fitted model types and their probability output. Fitting lives in `train`;
//! this is what the artifact carries and what `evaluate` and `serve` call.

use serde::{Deserialize, Serialize};
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::tree::decision_tree_classifier::DecisionTreeClassifier;
use thiserror::Error;

use crate::features::Feature;
use crate::metrics::BinaryMetrics;
use crate::params::TrainParams;
use crate::target::TargetRule;

/// A smartcore CART tree over `f64` features with 0/1 labels.
pub type Tree = DecisionTreeClassifier<f64, u32, DenseMatrix<f64>, Vec<u32>>;

/// Why a prediction failed.
#[derive(Debug, Error)]
pub enum ModelError {
    #[error("feature matrix has {got} columns, the model expects {expected}")]
    Width { expected: usize, got: usize },
    #[error("tree {tree} failed to predict: {message}")]
    Tree { tree: usize, message: String },
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

    /// The rows `rows` restricted to the columns `cols`, as a smartcore matrix.
    pub fn gather(&self, rows: &[usize], cols: &[usize]) -> DenseMatrix<f64> {
        let mut values = Vec::with_capacity(rows.len() * cols.len());
        for &r in rows {
            let row = self.row(r);
            values.extend(cols.iter().map(|&c| row[c]));
        }
        DenseMatrix::new(rows.len(), cols.len(), values, false)
            .unwrap_or_else(|_| unreachable!("shape matches the values gathered"))
    }
}

/// One bagged tree and the feature columns (indices into the model's
/// feature order) it was grown on.
#[derive(Debug, Serialize, Deserialize)]
pub struct BaggedTree {
    pub columns: Vec<usize>,
    pub tree: Tree,
}

/// A fitted classifier.
#[derive(Debug, Serialize, Deserialize)]
pub enum Classifier {
    /// Random forest: smartcore CART trees, each grown on a stratified
    /// bootstrap sample and a random subset of the features. The probability
    /// is the share of trees voting positive (Breiman's forest vote), because
    /// smartcore's own forest exposes neither its trees nor probabilities.
    Forest { trees: Vec<BaggedTree> },
    /// Always predicts the training prior: the baseline any model must beat.
    Prior { probability: f64 },
}

impl Classifier {
    /// Probability of revenge spending for each row of `x`.
    pub fn predict_proba(&self, x: &FeatureMatrix, n_features: usize) -> Result<Vec<f64>, ModelError> {
        if x.cols != n_features {
            return Err(ModelError::Width {
                expected: n_features,
                got: x.cols,
            });
        }
        match self {
            Classifier::Prior { probability } => Ok(vec![*probability; x.rows]),
            Classifier::Forest { trees } => {
                let all_rows: Vec<usize> = (0..x.rows).collect();
                let mut votes = vec![0u32; x.rows];
                for (t, bagged) in trees.iter().enumerate() {
                    let sub = x.gather(&all_rows, &bagged.columns);
                    let predicted = bagged.tree.predict(&sub).map_err(|e| ModelError::Tree {
                        tree: t,
                        message: e.to_string(),
                    })?;
                    for (v, p) in votes.iter_mut().zip(predicted) {
                        *v += p;
                    }
                }
                let n = trees.len().max(1) as f64;
                Ok(votes.into_iter().map(|v| f64::from(v) / n).collect())
            }
        }
    }
}

/// The payload of a model file: the fitted model and everything needed to
/// use and trace it.
#[derive(Debug, Serialize, Deserialize)]
pub struct ModelArtifact {
    /// `<algorithm>-<first 12 hex digits of the lineage hash>`.
    pub model_version: String,
    pub algorithm: String,
    /// The ordered feature schema the model expects.
    pub features: Vec<Feature>,
    /// The rule the labels and the history features were built with.
    pub rule: TargetRule,
    pub classifier: Classifier,
    /// Decision threshold on the probability (`>=` flags revenge spending).
    pub threshold: f64,
    /// Share of positives in the training split.
    pub training_prior: f64,
    pub train_params: TrainParams,
    /// SHA-256 of the canonical JSON of `train_params`.
    pub params_hash: String,
    /// SHA-256 of the training table file.
    pub data_hash: String,
    /// Metrics on the test split, where the threshold was chosen.
    pub test_metrics: BinaryMetrics,
    /// Version of the `revspend-core` that wrote it.
    pub written_by: String,
}

impl ModelArtifact {
    /// Probabilities for rows already in the model's feature order.
    pub fn predict_proba(&self, x: &FeatureMatrix) -> Result<Vec<f64>, ModelError> {
        self.classifier.predict_proba(x, self.features.len())
    }
}
