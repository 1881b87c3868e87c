//! `train`: model selection, the search spaces, imbalance, threshold and
//! calibration choices, and the concrete configurations ([`ModelSpec`]).

use serde::{Deserialize, Serialize};

use super::{Check, Checked, ParamsError, in_range, invalid};

/// `train`: model selection, search, imbalance handling, threshold and
/// calibration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainParams {
    /// RNG seed for the CV sample, folds, random search, bootstraps and the
    /// boosting validation slice.
    pub seed: u64,
    /// Budget: most trees any ensemble may hold (forest trees, boosting
    /// rounds); caps the search spaces, 1..=5000 (default 1000). Lower it for
    /// a quick run.
    pub n_trees: u32,
    /// Budget: deepest tree any candidate may grow; caps the search spaces,
    /// 1..=64 (default 16).
    pub max_depth: u16,
    pub cv: CvParams,
    pub halving: HalvingParams,
    /// `balanced` weights each class by `n / (2 · n_class)` (boosting:
    /// sample weights; logistic, tree, forest: a class-balanced bootstrap),
    /// `none` fits on the data as it is (default `balanced`).
    pub class_weight: ClassWeight,
    pub threshold: ThresholdParams,
    /// `auto` keeps whichever of Platt and isotonic scores the lower Brier
    /// on the test split; `platt`, `isotonic` or `none` force one
    /// (default `auto`).
    pub calibration: CalibrationChoice,
    /// Candidate algorithms, in order (default all six).
    pub algorithms: Vec<Algorithm>,
    pub search: SearchSpaces,
}

/// `train.cv`: grouped, stratified K-fold at every rung of the search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CvParams {
    /// Folds, 2..=20 (default 3).
    pub folds: usize,
    /// Selection metric: `pr_auc` (default), `roc_auc` (maximised),
    /// `brier`, `log_loss` (minimised).
    pub metric: SelectionMetric,
}

/// `train.halving`: successive halving over the candidates (as
/// scikit-learn's `HalvingRandomSearchCV`, the resource being rows of whole
/// customers). Every candidate is scored on the first rung's customers; the
/// best `1/factor` go on to `factor` times the rows, until the finalists are
/// scored on the last rung: `final_share` of the train split's rows, at most
/// `final_max_rows`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HalvingParams {
    /// Share of the candidates kept and growth of the rows per rung,
    /// 2..=10 (default 3).
    pub factor: usize,
    /// Fewest rows a rung is scored on, >= 100 (default 3,000): caps the
    /// number of rungs on small data.
    pub min_rows: usize,
    /// Share of the train split's rows (whole customers) the last rung
    /// scores the finalists on, (0, 1] (default 1).
    pub final_share: f64,
    /// At most this many rows at the last rung, >= `min_rows`, or `null`
    /// for no cap (default 200,000).
    pub final_max_rows: Option<usize>,
    /// A candidate whose mean score is more than this many of the rung
    /// leader's fold standard deviations worse than the leader's stops at
    /// that rung whatever its rank, > 0 (default 3).
    pub drop_below_std: f64,
}

/// How trials are ranked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SelectionMetric {
    PrAuc,
    RocAuc,
    Brier,
    LogLoss,
}

impl SelectionMetric {
    pub fn name(self) -> &'static str {
        match self {
            SelectionMetric::PrAuc => "pr_auc",
            SelectionMetric::RocAuc => "roc_auc",
            SelectionMetric::Brier => "brier",
            SelectionMetric::LogLoss => "log_loss",
        }
    }

    /// Whether a larger score is better.
    pub fn maximise(self) -> bool {
        matches!(self, SelectionMetric::PrAuc | SelectionMetric::RocAuc)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassWeight {
    Balanced,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CalibrationChoice {
    Auto,
    Platt,
    Isotonic,
    None,
}

/// `train.threshold`: how the decision threshold is chosen on the test
/// split (on calibrated probabilities).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdParams {
    /// `max_f1` (default) or `cost`: the lowest `fp_cost · FP + fn_cost · FN`.
    pub objective: ThresholdObjective,
    /// Cost of flagging an ordinary purchase, > 0 (default 1).
    pub fp_cost: f64,
    /// Cost of missing revenge spending, > 0 (default 5).
    pub fn_cost: f64,
    /// A fixed threshold in (0, 1) instead of the objective (default null).
    pub fixed: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdObjective {
    MaxF1,
    Cost,
}

/// The candidate algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// Always the training prior: the baseline.
    Prior,
    Logistic,
    NaiveBayes,
    Tree,
    Forest,
    /// Histogram gradient-boosted trees.
    Gbm,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Prior => "prior",
            Algorithm::Logistic => "logistic",
            Algorithm::NaiveBayes => "naive_bayes",
            Algorithm::Tree => "tree",
            Algorithm::Forest => "forest",
            Algorithm::Gbm => "gbm",
        }
    }
}

/// Grid (every combination) or seeded random draws from the grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    Grid,
    Random,
}

/// `train.search`: one space per algorithm. Each list holds the values a
/// hyper-parameter may take; the first value of each list is the
/// algorithm's default configuration (used by `train fit-once`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchSpaces {
    pub logistic: LogisticSpace,
    pub naive_bayes: NaiveBayesSpace,
    pub tree: TreeSpace,
    pub forest: ForestSpace,
    pub gbm: GbmSpace,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogisticSpace {
    pub strategy: Strategy,
    /// Random draws (ignored by `grid`), >= 1.
    pub draws: usize,
    /// L2 penalty on the standardised coefficients, >= 0.
    pub alpha: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NaiveBayesSpace {
    pub strategy: Strategy,
    pub draws: usize,
    /// Share of the largest feature variance added to every variance
    /// (scikit-learn's `var_smoothing`), in (0, 1).
    pub var_smoothing: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TreeSpace {
    pub strategy: Strategy,
    pub draws: usize,
    pub max_depth: Vec<u16>,
    pub min_samples_leaf: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForestSpace {
    pub strategy: Strategy,
    pub draws: usize,
    pub n_trees: Vec<u32>,
    pub max_depth: Vec<u16>,
    pub min_samples_leaf: Vec<usize>,
    /// Share of the features each tree sees, (0, 1].
    pub feature_fraction: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GbmSpace {
    pub strategy: Strategy,
    pub draws: usize,
    /// Shrinkage, (0, 1].
    pub learning_rate: Vec<f64>,
    /// Most boosting rounds (early stopping usually ends sooner), >= 1.
    pub max_iter: Vec<u32>,
    /// Leaves per tree (leaf-wise growth), 2..=1024.
    pub max_leaves: Vec<u32>,
    /// Depth limit per tree, `null` for none but the leaf count.
    pub max_depth: Vec<Option<u16>>,
    /// Minimum rows in a leaf, >= 1.
    pub min_samples_leaf: Vec<usize>,
    /// L2 penalty on leaf values, >= 0.
    pub l2: Vec<f64>,
    /// Histogram bins per feature, 2..=255.
    pub max_bins: Vec<u16>,
    /// Share of the training rows each tree is grown on (stochastic gradient
    /// boosting; a seeded draw per round), (0, 1]; 1 grows every tree on
    /// every row (default `[1.0]`).
    #[serde(default = "all_rows")]
    pub subsample: Vec<f64>,
    /// Share of the rows (whole customers) held out for early stopping,
    /// [0, 0.5); 0 disables early stopping.
    pub validation_fraction: f64,
    /// Rounds without improvement of the validation log loss before
    /// stopping, >= 1.
    pub patience: u32,
}

/// One concrete configuration of one algorithm: a point of a search space.
/// Externally tagged so it survives bincode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelSpec {
    Prior,
    Logistic { alpha: f64 },
    NaiveBayes { var_smoothing: f64 },
    Tree { max_depth: u16, min_samples_leaf: usize },
    Forest(ForestConfig),
    Gbm(GbmConfig),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForestConfig {
    pub n_trees: u32,
    pub max_depth: u16,
    pub min_samples_leaf: usize,
    pub feature_fraction: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GbmConfig {
    pub learning_rate: f64,
    pub max_iter: u32,
    pub max_leaves: u32,
    pub max_depth: Option<u16>,
    pub min_samples_leaf: usize,
    pub l2: f64,
    pub max_bins: u16,
    /// Share of the training rows each tree is grown on, (0, 1].
    #[serde(default = "one")]
    pub subsample: f64,
    pub validation_fraction: f64,
    pub patience: u32,
}

fn one() -> f64 {
    1.0
}

fn all_rows() -> Vec<f64> {
    vec![1.0]
}

impl ModelSpec {
    pub fn algorithm(&self) -> Algorithm {
        match self {
            ModelSpec::Prior => Algorithm::Prior,
            ModelSpec::Logistic { .. } => Algorithm::Logistic,
            ModelSpec::NaiveBayes { .. } => Algorithm::NaiveBayes,
            ModelSpec::Tree { .. } => Algorithm::Tree,
            ModelSpec::Forest(_) => Algorithm::Forest,
            ModelSpec::Gbm(_) => Algorithm::Gbm,
        }
    }

    /// The hyper-parameters alone, as a JSON object (`{}` for the prior).
    pub fn params_json(&self) -> serde_json::Value {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(map)) => {
                map.into_iter().next().map_or(serde_json::json!({}), |(_, v)| v)
            }
            _ => serde_json::json!({}),
        }
    }
}

impl Check for TrainParams {
    type Checked = Checked<TrainParams>;

    fn check(self) -> Result<Checked<TrainParams>, ParamsError> {
        self.validate()?;
        Ok(Checked(self))
    }
}

impl TrainParams {
    /// The section as compact JSON text (fields in declaration order) and
    /// the SHA-256 of exactly those bytes: what a model artifact records as
    /// its training params and `params_hash`.
    pub fn json_and_hash(&self) -> (String, String) {
        // Serialising plain data with string keys cannot fail.
        let json = serde_json::to_string(self).unwrap_or_default();
        let hash = crate::artifact::sha256_hex(json.as_bytes());
        (json, hash)
    }

    fn validate(&self) -> Result<(), ParamsError> {
        in_range("train.n_trees", self.n_trees, 1, 5000)?;
        in_range("train.max_depth", self.max_depth, 1, 64)?;
        in_range("train.cv.folds", self.cv.folds, 2, 20)?;
        let h = &self.halving;
        in_range("train.halving.factor", h.factor, 2, 10)?;
        in_range("train.halving.min_rows", h.min_rows, 100, usize::MAX)?;
        if !(h.final_share > 0.0 && h.final_share <= 1.0) {
            return Err(invalid(
                "train.halving.final_share",
                format!("{} is outside (0, 1]", h.final_share),
            ));
        }
        if let Some(max) = h.final_max_rows {
            in_range("train.halving.final_max_rows", max, h.min_rows, usize::MAX)?;
        }
        if !(h.drop_below_std > 0.0 && h.drop_below_std.is_finite()) {
            return Err(invalid(
                "train.halving.drop_below_std",
                format!("{} must be a positive number", h.drop_below_std),
            ));
        }
        let t = &self.threshold;
        for (field, v) in [
            ("train.threshold.fp_cost", t.fp_cost),
            ("train.threshold.fn_cost", t.fn_cost),
        ] {
            if !(v > 0.0 && v.is_finite()) {
                return Err(invalid(field, format!("{v} must be a positive number")));
            }
        }
        if let Some(v) = t.fixed
            && !(v > 0.0 && v < 1.0)
        {
            return Err(invalid("train.threshold.fixed", format!("{v} is outside (0, 1)")));
        }
        if self.algorithms.is_empty() {
            return Err(invalid("train.algorithms", "must name at least one algorithm"));
        }
        for (i, a) in self.algorithms.iter().enumerate() {
            if self.algorithms[..i].contains(a) {
                return Err(invalid(
                    &format!("train.algorithms[{i}]"),
                    format!("{} is listed twice", a.name()),
                ));
            }
        }
        let s = &self.search;
        let draws = |field: &str, strategy: Strategy, draws: usize| {
            if strategy == Strategy::Random && draws == 0 {
                return Err(invalid(field, "random search needs at least one draw"));
            }
            Ok(())
        };
        draws(
            "train.search.logistic.draws",
            s.logistic.strategy,
            s.logistic.draws,
        )?;
        draws(
            "train.search.naive_bayes.draws",
            s.naive_bayes.strategy,
            s.naive_bayes.draws,
        )?;
        draws("train.search.tree.draws", s.tree.strategy, s.tree.draws)?;
        draws("train.search.forest.draws", s.forest.strategy, s.forest.draws)?;
        draws("train.search.gbm.draws", s.gbm.strategy, s.gbm.draws)?;
        each("train.search.logistic.alpha", &s.logistic.alpha, |v| {
            *v >= 0.0 && v.is_finite()
        })?;
        each(
            "train.search.naive_bayes.var_smoothing",
            &s.naive_bayes.var_smoothing,
            |v| *v > 0.0 && *v < 1.0,
        )?;
        each("train.search.tree.max_depth", &s.tree.max_depth, |v| {
            (1..=64).contains(v)
        })?;
        each(
            "train.search.tree.min_samples_leaf",
            &s.tree.min_samples_leaf,
            |v| *v >= 1,
        )?;
        each("train.search.forest.n_trees", &s.forest.n_trees, |v| {
            (1..=5000).contains(v)
        })?;
        each("train.search.forest.max_depth", &s.forest.max_depth, |v| {
            (1..=64).contains(v)
        })?;
        each(
            "train.search.forest.min_samples_leaf",
            &s.forest.min_samples_leaf,
            |v| *v >= 1,
        )?;
        each(
            "train.search.forest.feature_fraction",
            &s.forest.feature_fraction,
            |v| *v > 0.0 && *v <= 1.0,
        )?;
        let g = &s.gbm;
        each("train.search.gbm.learning_rate", &g.learning_rate, |v| {
            *v > 0.0 && *v <= 1.0
        })?;
        each("train.search.gbm.max_iter", &g.max_iter, |v| {
            (1..=100_000).contains(v)
        })?;
        each("train.search.gbm.max_leaves", &g.max_leaves, |v| {
            (2..=1024).contains(v)
        })?;
        each("train.search.gbm.max_depth", &g.max_depth, |v| {
            v.is_none_or(|d| (1..=64).contains(&d))
        })?;
        each("train.search.gbm.min_samples_leaf", &g.min_samples_leaf, |v| {
            *v >= 1
        })?;
        each("train.search.gbm.l2", &g.l2, |v| *v >= 0.0 && v.is_finite())?;
        each("train.search.gbm.max_bins", &g.max_bins, |v| {
            (2..=255).contains(v)
        })?;
        each("train.search.gbm.subsample", &g.subsample, |v| {
            *v > 0.0 && *v <= 1.0
        })?;
        if !(0.0..0.5).contains(&g.validation_fraction) {
            return Err(invalid(
                "train.search.gbm.validation_fraction",
                format!("{} is outside [0, 0.5)", g.validation_fraction),
            ));
        }
        in_range("train.search.gbm.patience", g.patience, 1, 10_000)?;
        Ok(())
    }
}

/// Checks that a search list is not empty and every value passes `ok`.
fn each<T: std::fmt::Debug>(field: &str, values: &[T], ok: impl Fn(&T) -> bool) -> Result<(), ParamsError> {
    if values.is_empty() {
        return Err(invalid(field, "must list at least one value"));
    }
    if let Some(bad) = values.iter().find(|v| !ok(v)) {
        return Err(invalid(field, format!("{bad:?} is out of range")));
    }
    Ok(())
}
