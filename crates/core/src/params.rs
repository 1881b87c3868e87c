//! `params.yaml`: one section per stage, parsed strictly
//! (`deny_unknown_fields`) into a raw struct, then turned once by
//! [`Check::check`] into the checked form the stages accept: parse, don't
//! validate. Where a raw field is text that stands for something (the
//! feature names, the vital groups), the checked form holds the parsed value
//! ([`BuildFeaturesConfig`]: typed features, the target rule), so nothing
//! downstream parses a string again; sections whose fields are already
//! typed come back wrapped in [`Checked`], which only `check` can make.

use std::ops::Deref;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::contract::normalise_group;
use crate::features::Feature;
use crate::target::TargetRule;

/// Why params could not be used.
#[derive(Debug, Error)]
pub enum ParamsError {
    #[error("cannot read params file {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("params file {path} is not valid")]
    Yaml {
        path: PathBuf,
        #[source]
        source: serde_norway::Error,
    },
    #[error("param `{field}`: {reason}")]
    Invalid { field: String, reason: String },
}

fn invalid(field: &str, reason: impl Into<String>) -> ParamsError {
    ParamsError::Invalid {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

/// The whole `params.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub generate: GenerateParams,
    pub build_features: BuildFeaturesParams,
    pub train: TrainParams,
    pub evaluate: EvaluateParams,
}

impl Params {
    /// Reads and strictly parses a params file (no section is checked yet).
    pub fn load(path: &Path) -> Result<Params, ParamsError> {
        let text = std::fs::read_to_string(path).map_err(|source| ParamsError::Io {
            path: path.to_owned(),
            source,
        })?;
        serde_norway::from_str(&text).map_err(|source| ParamsError::Yaml {
            path: path.to_owned(),
            source,
        })
    }
}

/// A params section whose fields are already typed and that passed
/// [`Check::check`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Checked<T>(T);

impl<T> Deref for Checked<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Turns a raw params section into its checked form, once, at the edge.
pub trait Check: Sized {
    /// What the stage works with.
    type Checked;

    fn check(self) -> Result<Self::Checked, ParamsError>;
}

fn in_range<T: PartialOrd + std::fmt::Display>(
    field: &str,
    value: T,
    min: T,
    max: T,
) -> Result<(), ParamsError> {
    if value < min || value > max {
        return Err(invalid(field, format!("{value} is outside [{min}, {max}]")));
    }
    Ok(())
}

fn fraction(field: &str, value: f64) -> Result<(), ParamsError> {
    if !(value > 0.0 && value <= 1.0) {
        return Err(invalid(field, format!("{value} is outside (0, 1]")));
    }
    Ok(())
}

/// `generate`: the synthetic raw data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateParams {
    /// RNG seed; same seed, same bytes.
    pub seed: u64,
    /// Number of customers, 1..=10,000,000 (default 2,000).
    pub customers: u64,
    /// Number of purchase rows, at least `customers` (default 60,000).
    pub rows: u64,
    /// First day of data, `yyyy-mm-dd` (default 2020-01-01).
    pub start_date: NaiveDate,
    /// Days of data, 28..=3650 (default 180).
    pub days: u32,
    /// Files the rows are written to, each a run of consecutive days,
    /// 1..=days (default 6).
    pub files: u32,
}

impl Check for GenerateParams {
    type Checked = Checked<GenerateParams>;

    fn check(self) -> Result<Checked<GenerateParams>, ParamsError> {
        in_range("generate.customers", self.customers, 1, 10_000_000)?;
        in_range("generate.rows", self.rows, self.customers, 1_000_000_000)?;
        in_range("generate.days", self.days, 28, 3650)?;
        in_range("generate.files", self.files, 1, self.days)?;
        Ok(Checked(self))
    }
}

/// `build_features`: parsing, target, features and the split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildFeaturesParams {
    /// Glob of raw CSV files, relative to the working directory
    /// (default `data/raw/*.csv`).
    pub raw_glob: String,
    pub target: TargetParams,
    /// The model's features, in order; names from [`Feature::name`].
    pub features: Vec<String>,
    /// Allow same-row label inputs (`limite_disp`, `limite_total`,
    /// `available_pct`) in `features`; off by default, for comparison only.
    pub allow_leaky_features: bool,
    pub leakage: LeakageParams,
    pub selection: SelectionParams,
    pub split: SplitParams,
}

/// `build_features.leakage`: when a candidate feature is flagged as leaky.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeakageParams {
    /// A feature whose single-feature ROC-AUC against the target on the train
    /// split (taken as max(AUC, 1 − AUC)) exceeds this is flagged, (0.5, 1]
    /// (default 0.95).
    pub max_single_feature_auc: f64,
}

/// `build_features.selection`: which of the requested features are dropped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectionParams {
    /// Drop a feature whose most frequent value covers more than this share
    /// of the train split, (0, 1] (default 0.995; 1 drops only constants).
    pub quasi_constant_share: f64,
    /// Of two features with |Pearson correlation| above this on the train
    /// split, drop the later one, (0, 1] (default 0.95).
    pub max_abs_correlation: f64,
}

/// `build_features.target`: the revenge-spending rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetParams {
    /// Available-limit share under which a purchase counts, in percent,
    /// (0, 100] (default 20).
    pub threshold_pct: f64,
    /// Vital merchant groups (default SERVICO, SUPERMERCADOS, FARMACIAS,
    /// HOSP E CLINICA, TRANS FINANC); normalised like the data.
    pub vital_groups: Vec<String>,
}

/// `build_features.split`: customer-grouped, stratified split fractions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitParams {
    pub seed: u64,
    /// Fractions of customers; each in (0, 1), summing to 1.
    pub train: f64,
    pub test: f64,
    pub holdout: f64,
    pub calibration: f64,
}

/// `build_features` after [`Check::check`]: the glob checked, the target
/// rule built (vital groups normalised like the data), the feature names
/// parsed into features. Everything else as in [`BuildFeaturesParams`].
#[derive(Debug, Clone, PartialEq)]
pub struct BuildFeaturesConfig {
    pub raw_glob: String,
    pub rule: TargetRule,
    /// The model's features, in the order params lists them.
    pub features: Vec<Feature>,
    pub allow_leaky_features: bool,
    pub leakage: LeakageParams,
    pub selection: SelectionParams,
    pub split: SplitParams,
}

impl Check for BuildFeaturesParams {
    type Checked = BuildFeaturesConfig;

    fn check(self) -> Result<BuildFeaturesConfig, ParamsError> {
        if self.raw_glob.trim().is_empty() {
            return Err(invalid("build_features.raw_glob", "must not be empty"));
        }
        glob_pattern_ok(&self.raw_glob)?;
        let t = &self.target;
        if !(t.threshold_pct > 0.0 && t.threshold_pct <= 100.0) {
            return Err(invalid(
                "build_features.target.threshold_pct",
                format!("{} is outside (0, 100]", t.threshold_pct),
            ));
        }
        if t.vital_groups.is_empty() {
            return Err(invalid("build_features.target.vital_groups", "must not be empty"));
        }
        if self.features.is_empty() {
            return Err(invalid(
                "build_features.features",
                "must name at least one feature",
            ));
        }
        let mut features = Vec::with_capacity(self.features.len());
        for (i, name) in self.features.iter().enumerate() {
            let field = format!("build_features.features[{i}]");
            let Some(f) = Feature::from_name(name) else {
                let known: Vec<_> = Feature::ALL.iter().map(|f| f.name()).collect();
                return Err(invalid(
                    &field,
                    format!("unknown feature {name:?}; known: {}", known.join(", ")),
                ));
            };
            if features.contains(&f) {
                return Err(invalid(&field, format!("{name:?} is listed twice")));
            }
            if f.is_label_input() && !self.allow_leaky_features {
                return Err(invalid(
                    &field,
                    format!(
                        "{name:?} is an input of the target rule (leakage); \
                         set build_features.allow_leaky_features: true to use it for comparison"
                    ),
                ));
            }
            features.push(f);
        }
        let auc = self.leakage.max_single_feature_auc;
        if !(auc > 0.5 && auc <= 1.0) {
            return Err(invalid(
                "build_features.leakage.max_single_feature_auc",
                format!("{auc} is outside (0.5, 1]"),
            ));
        }
        fraction(
            "build_features.selection.quasi_constant_share",
            self.selection.quasi_constant_share,
        )?;
        fraction(
            "build_features.selection.max_abs_correlation",
            self.selection.max_abs_correlation,
        )?;
        let s = &self.split;
        for (name, v) in [
            ("train", s.train),
            ("test", s.test),
            ("holdout", s.holdout),
            ("calibration", s.calibration),
        ] {
            if !(v > 0.0 && v < 1.0) {
                return Err(invalid(
                    &format!("build_features.split.{name}"),
                    format!("{v} is outside (0, 1)"),
                ));
            }
        }
        let sum = s.train + s.test + s.holdout + s.calibration;
        if (sum - 1.0).abs() > 1e-9 {
            return Err(invalid(
                "build_features.split",
                format!("fractions sum to {sum}, not 1"),
            ));
        }
        let rule = TargetRule {
            threshold_pct: self.target.threshold_pct,
            vital_groups: self
                .target
                .vital_groups
                .iter()
                .map(|g| normalise_group(g))
                .collect(),
        };
        Ok(BuildFeaturesConfig {
            raw_glob: self.raw_glob,
            rule,
            features,
            allow_leaky_features: self.allow_leaky_features,
            leakage: self.leakage,
            selection: self.selection,
            split: self.split,
        })
    }
}

fn glob_pattern_ok(pattern: &str) -> Result<(), ParamsError> {
    // Unbalanced brackets are the one mistake a glob crate rejects late.
    if pattern.matches('[').count() != pattern.matches(']').count() {
        return Err(invalid(
            "build_features.raw_glob",
            format!("{pattern:?} has unbalanced brackets"),
        ));
    }
    Ok(())
}

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

/// `train.cv`: grouped, stratified K-fold on a sample of the train split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CvParams {
    /// Folds, 2..=20 (default 4).
    pub folds: usize,
    /// Rows of the train split the search runs on (a stratified sample of
    /// whole customers), >= 100 (default 20,000); the whole split when it is
    /// smaller.
    pub sample_rows: usize,
    /// Selection metric: `pr_auc` (default), `roc_auc` (maximised),
    /// `brier`, `log_loss` (minimised).
    pub metric: SelectionMetric,
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
    pub validation_fraction: f64,
    pub patience: u32,
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
        in_range("train.cv.sample_rows", self.cv.sample_rows, 100, usize::MAX)?;
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

/// `evaluate`: report settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluateParams {
    /// Points kept on the ROC and PR curves written for plotting,
    /// 10..=10,000 (default 200).
    pub curve_points: usize,
}

impl Check for EvaluateParams {
    type Checked = Checked<EvaluateParams>;

    fn check(self) -> Result<Checked<EvaluateParams>, ParamsError> {
        in_range("evaluate.curve_points", self.curve_points, 10, 10_000)?;
        Ok(Checked(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The live params.yaml: only checked to be valid, never a fixture.
    const SHIPPED: &str = include_str!("../../../params.yaml");
    /// The tests' own params, a fixed copy.
    const FIXTURE: &str = include_str!("../tests/fixtures/params.yaml");

    fn fixture() -> Params {
        serde_norway::from_str(FIXTURE).expect("fixture params parse")
    }

    #[test]
    fn shipped_params_pass_their_checks() {
        let p: Params = serde_norway::from_str(SHIPPED).expect("params.yaml parses");
        p.generate.check().expect("generate");
        let bf = p.build_features.check().expect("build_features");
        assert!(bf.features.iter().all(|f| !f.is_label_input()));
        p.train.check().expect("train");
        p.evaluate.check().expect("evaluate");
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let text = FIXTURE.replace("n_trees:", "n_treez:");
        let err = serde_norway::from_str::<Params>(&text).expect_err("typo");
        assert!(err.to_string().contains("n_treez"), "{err}");
    }

    #[test]
    fn out_of_range_params_are_rejected() {
        let mut t = fixture().train;
        t.search.forest.feature_fraction = vec![0.5, 0.0];
        let err = t.clone().check().expect_err("fraction 0");
        assert!(
            err.to_string().contains("train.search.forest.feature_fraction"),
            "{err}"
        );
        t.search.forest.feature_fraction = vec![0.5];
        t.threshold.fixed = Some(1.0);
        assert!(t.clone().check().is_err());
        t.threshold.fixed = None;
        t.search.gbm.max_leaves = vec![];
        let err = t.clone().check().expect_err("empty list");
        assert!(err.to_string().contains("at least one value"), "{err}");
        t.search.gbm.max_leaves = vec![31];
        t.algorithms.push(Algorithm::Gbm);
        assert!(
            t.clone()
                .check()
                .expect_err("twice")
                .to_string()
                .contains("twice")
        );
        t.algorithms.pop();
        t.cv.folds = 1;
        assert!(
            t.check()
                .expect_err("folds")
                .to_string()
                .contains("train.cv.folds")
        );

        let mut b = fixture().build_features;
        b.split.train += 0.1;
        assert!(b.clone().check().expect_err("sum").to_string().contains("sum"));
        b.split.train -= 0.1;
        b.features.push("no_such_feature".into());
        let err = b.clone().check().expect_err("unknown").to_string();
        assert!(err.contains("no_such_feature"), "{err}");
        assert!(err.contains("known: idade, sexo_m"), "{err}");
    }

    /// Issue 11: the checked section holds parsed values, in params order.
    #[test]
    fn build_features_check_parses_the_features_and_the_rule() {
        let mut b = fixture().build_features;
        b.features = vec!["valor".into(), "idade".into()];
        b.target.vital_groups = vec!["servi\u{e7}o".into(), " SUPERMERCADOS ".into()];
        let c = b.check().expect("valid");
        assert_eq!(c.features, vec![Feature::Valor, Feature::Idade]);
        assert_eq!(c.rule.vital_groups, vec!["SERVICO", "SUPERMERCADOS"]);
        assert_eq!(c.rule.threshold_pct, 20.0);
    }

    #[test]
    fn leaky_features_need_explicit_permission() {
        let mut b = fixture().build_features;
        b.features.push("limite_disp".into());
        let err = b.clone().check().expect_err("leaky");
        assert!(err.to_string().contains("leakage"), "{err}");
        b.allow_leaky_features = true;
        b.check().expect("allowed for comparison");
    }
}
