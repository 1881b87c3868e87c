//! `evaluate`: the holdout report, its uncertainty and the promotion gate.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Check, Checked, ParamsError, in_range, invalid};
use crate::metrics::BinaryMetrics;

/// `evaluate`: report settings, the bootstrap and the promotion gate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluateParams {
    /// Points kept on the ROC and PR curves written for plotting,
    /// 10..=10,000 (default 200).
    pub curve_points: usize,
    /// Seed of the bootstrap resampling.
    pub seed: u64,
    pub bootstrap: BootstrapParams,
    /// `auto` moves the `production` alias to the candidate when the gate
    /// passes; `manual` (default) only records the decision.
    pub promotion: Promotion,
    pub gate: GateParams,
    pub slices: SliceParams,
    pub learning_curve: LearningCurveParams,
    pub importance: ImportanceParams,
}

/// `evaluate.slices`: metrics by month, merchant group, age band, sex and
/// cold start against known customers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SliceParams {
    /// A slice's PR-AUC below this is named in the report (and fails the
    /// gate when `gate.slices_above_floor`), [0, 1] (default 0.5).
    pub pr_auc_floor: f64,
    /// Slices with fewer rows or fewer positives are reported but not held
    /// to the floor: their PR-AUC is noise (defaults 200 and 10).
    pub min_rows: usize,
    pub min_positives: usize,
    /// Per-slice floors replacing `pr_auc_floor`, keyed `dimension=slice`
    /// (e.g. `customer_history=cold_start`; dimensions are
    /// [`SLICE_DIMENSIONS`]), each in [0, 1]. PR-AUC starts at the slice's
    /// prevalence, so a rare-class slice may need its own floor.
    #[serde(default)]
    pub floors: BTreeMap<String, f64>,
}

/// The dimensions the holdout is sliced by, as slice names spell them.
pub const SLICE_DIMENSIONS: [&str; 5] = ["month", "merchant_group", "age_band", "sex", "customer_history"];

impl SliceParams {
    /// The PR-AUC floor of the slice `name` (`dimension=slice`).
    pub fn floor(&self, name: &str) -> f64 {
        self.floors.get(name).copied().unwrap_or(self.pr_auc_floor)
    }
}

/// `evaluate.learning_curve`: the candidate's configuration refitted on
/// growing shares of the train split's customers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LearningCurveParams {
    /// Shares of the train split's customers, strictly increasing in
    /// (0, 1]; empty for no curve (default 0.1, 0.25, 0.5, 0.75, 1.0).
    pub shares: Vec<f64>,
    /// Customer-grouped folds per share, 2..=10 (default 3).
    pub folds: usize,
}

/// `evaluate.importance`: permutation importance on the holdout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportanceParams {
    /// Seeded shuffles per feature, 0..=50 (0: none; default 5).
    pub repeats: usize,
}

/// `evaluate.bootstrap`: confidence intervals of the headline metrics from
/// resamples of whole customers (the unit of the split).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootstrapParams {
    /// Resamples, 0..=10,000 (0: no intervals; default 200).
    pub resamples: usize,
    /// Two-sided coverage of the percentile interval, [0.5, 0.999]
    /// (default 0.95).
    pub confidence: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Promotion {
    Auto,
    Manual,
}

/// A holdout metric the gate can check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateMetric {
    PrAuc,
    RocAuc,
    Brier,
    LogLoss,
    Ece,
    Precision,
    Recall,
    F1,
}

impl GateMetric {
    pub fn name(self) -> &'static str {
        match self {
            GateMetric::PrAuc => "pr_auc",
            GateMetric::RocAuc => "roc_auc",
            GateMetric::Brier => "brier",
            GateMetric::LogLoss => "log_loss",
            GateMetric::Ece => "ece",
            GateMetric::Precision => "precision",
            GateMetric::Recall => "recall",
            GateMetric::F1 => "f1",
        }
    }

    /// The metric's value in `m`.
    pub fn of(self, m: &BinaryMetrics) -> f64 {
        match self {
            GateMetric::PrAuc => m.pr_auc,
            GateMetric::RocAuc => m.roc_auc,
            GateMetric::Brier => m.brier,
            GateMetric::LogLoss => m.log_loss,
            GateMetric::Ece => m.ece,
            GateMetric::Precision => m.precision,
            GateMetric::Recall => m.recall,
            GateMetric::F1 => m.f1,
        }
    }
}

/// One metric's limits, with the semantics of MLflow's `MetricThreshold`
/// (`mlflow.models.MetricThreshold`): every limit given must hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricThreshold {
    /// The candidate's value must be `>=` it (greater is better) or `<=`
    /// it (otherwise).
    #[serde(default)]
    pub threshold: Option<f64>,
    /// Positive: the candidate must beat the champion by at least this
    /// much, `>= champion + change` (or `<= champion − change`).
    #[serde(default)]
    pub min_absolute_change: Option<f64>,
    /// [0, 1]: the candidate's change relative to the champion,
    /// `(candidate − champion) / champion` (or `(champion − candidate) /
    /// champion`), must be at least this; against a champion of exactly 0
    /// the candidate must simply be better (by 1e-10).
    #[serde(default)]
    pub min_relative_change: Option<f64>,
    pub greater_is_better: bool,
}

/// `evaluate.gate`: what a candidate must pass to be promoted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateParams {
    /// Per metric, MLflow `MetricThreshold` limits on the holdout metrics of
    /// the calibrated candidate (the change limits against the `production`
    /// model on the same rows; with no champion they are skipped).
    pub thresholds: BTreeMap<GateMetric, MetricThreshold>,
    /// Hard limit: the candidate's holdout ECE at most this, (0, 1]
    /// (`null`: none).
    #[serde(default)]
    pub max_ece: Option<f64>,
    /// Hard limit: the candidate's PR-AUC above the training-prior
    /// baseline's (default true).
    pub beat_prior: bool,
    /// Hard limit: ROC-AUC on the cold-start slice (customers with no
    /// earlier purchase) at least this, [0.5, 1] (`null`: none; default
    /// 0.6). A model that ignores new customers scores 0.5 there.
    #[serde(default)]
    pub cold_start_min_roc_auc: Option<f64>,
    /// Hard limit: no slice held to the floor has a PR-AUC below
    /// `slices.pr_auc_floor` (default true).
    pub slices_above_floor: bool,
}

impl Check for EvaluateParams {
    type Checked = Checked<EvaluateParams>;

    fn check(self) -> Result<Checked<EvaluateParams>, ParamsError> {
        in_range("evaluate.curve_points", self.curve_points, 10, 10_000)?;
        in_range(
            "evaluate.bootstrap.resamples",
            self.bootstrap.resamples,
            0,
            10_000,
        )?;
        let c = self.bootstrap.confidence;
        if !(0.5..=0.999).contains(&c) {
            return Err(invalid(
                "evaluate.bootstrap.confidence",
                format!("{c} is outside [0.5, 0.999]"),
            ));
        }
        for (metric, t) in &self.gate.thresholds {
            let field = |k: &str| format!("evaluate.gate.thresholds.{}.{k}", metric.name());
            if t.threshold.is_none() && t.min_absolute_change.is_none() && t.min_relative_change.is_none() {
                return Err(invalid(
                    &format!("evaluate.gate.thresholds.{}", metric.name()),
                    "sets none of threshold, min_absolute_change, min_relative_change",
                ));
            }
            if let Some(v) = t.threshold
                && !v.is_finite()
            {
                return Err(invalid(&field("threshold"), format!("{v} is not a number")));
            }
            if let Some(v) = t.min_absolute_change
                && !(v > 0.0 && v.is_finite())
            {
                return Err(invalid(
                    &field("min_absolute_change"),
                    format!("{v} must be a positive number"),
                ));
            }
            if let Some(v) = t.min_relative_change
                && !(0.0..=1.0).contains(&v)
            {
                return Err(invalid(
                    &field("min_relative_change"),
                    format!("{v} is outside [0, 1]"),
                ));
            }
        }
        if let Some(v) = self.gate.max_ece
            && !(v > 0.0 && v <= 1.0)
        {
            return Err(invalid("evaluate.gate.max_ece", format!("{v} is outside (0, 1]")));
        }
        if let Some(v) = self.gate.cold_start_min_roc_auc
            && !(0.5..=1.0).contains(&v)
        {
            return Err(invalid(
                "evaluate.gate.cold_start_min_roc_auc",
                format!("{v} is outside [0.5, 1]"),
            ));
        }
        let floor = self.slices.pr_auc_floor;
        if !(0.0..=1.0).contains(&floor) {
            return Err(invalid(
                "evaluate.slices.pr_auc_floor",
                format!("{floor} is outside [0, 1]"),
            ));
        }
        for (name, floor) in &self.slices.floors {
            let field = format!("evaluate.slices.floors.{name}");
            let dimension = name.split_once('=').map(|(d, _)| d);
            if !dimension.is_some_and(|d| SLICE_DIMENSIONS.contains(&d)) {
                return Err(invalid(
                    &field,
                    format!(
                        "is not `dimension=slice` with a dimension among {}",
                        SLICE_DIMENSIONS.join(", ")
                    ),
                ));
            }
            if !(0.0..=1.0).contains(floor) {
                return Err(invalid(&field, format!("{floor} is outside [0, 1]")));
            }
        }
        let shares = &self.learning_curve.shares;
        if let Some(bad) = shares.iter().find(|s| !(**s > 0.0 && **s <= 1.0)) {
            return Err(invalid(
                "evaluate.learning_curve.shares",
                format!("{bad} is outside (0, 1]"),
            ));
        }
        if shares.windows(2).any(|w| w[0] >= w[1]) {
            return Err(invalid(
                "evaluate.learning_curve.shares",
                format!("{shares:?} is not strictly increasing"),
            ));
        }
        in_range("evaluate.learning_curve.folds", self.learning_curve.folds, 2, 10)?;
        in_range("evaluate.importance.repeats", self.importance.repeats, 0, 50)?;
        Ok(Checked(self))
    }
}
