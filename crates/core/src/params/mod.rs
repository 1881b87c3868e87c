//! `params.yaml`: one section per stage, parsed strictly
//! (`deny_unknown_fields`) into a raw struct, then turned once by
//! [`Check::check`] into the checked form the stages accept: parse, don't
//! validate. Where a raw field is text that stands for something (the
//! feature names, the vital groups), the checked form holds the parsed value
//! ([`BuildFeaturesConfig`]: typed features, the target rule), so nothing
//! downstream parses a string again; sections whose fields are already
//! typed come back wrapped in [`Checked`], which only `check` can make.
//!
//! This module holds the whole file and the checked wrapper; each section
//! has a file of its own.

use std::ops::Deref;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

mod build_features;
mod evaluate;
mod generate;
mod monitor;
mod train;

pub use build_features::{
    Acknowledgement, BuildFeaturesConfig, BuildFeaturesParams, LeakageParams, SelectionParams, SplitParams,
    TargetParams,
};
pub use evaluate::{
    BootstrapParams, EvaluateParams, GateMetric, GateParams, ImportanceParams, LearningCurveParams,
    MetricThreshold, Promotion, SLICE_DIMENSIONS, SliceParams,
};
pub use generate::{GenerateParams, LimitShock, MAX_SCENARIOS, MerchantMix, NewCustomers, Scenario};
pub use monitor::{
    CostParams, DriftParams, FeatureDrift, MonitorParams, PerformanceParams, Period, TestChoice, ValueParams,
};
pub use train::{
    Algorithm, CalibrationChoice, ClassWeight, CvParams, ForestConfig, ForestSpace, GbmConfig, GbmSpace,
    HalvingParams, LogisticSpace, ModelSpec, NaiveBayesSpace, SearchSpaces, SelectionMetric, Strategy,
    ThresholdObjective, ThresholdParams, TrainParams, TreeSpace,
};

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

pub(crate) fn invalid(field: &str, reason: impl Into<String>) -> ParamsError {
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
    /// Optional so that a params file written before the monitor existed
    /// still serves the other stages; the monitor stage requires it.
    #[serde(default)]
    pub monitor: Option<MonitorParams>,
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
pub struct Checked<T>(pub(crate) T);

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

pub(crate) fn in_range<T: PartialOrd + std::fmt::Display>(
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

pub(crate) fn fraction(field: &str, value: f64) -> Result<(), ParamsError> {
    if !(value > 0.0 && value <= 1.0) {
        return Err(invalid(field, format!("{value} is outside (0, 1]")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::features::Feature;

    /// The live params.yaml: only checked to be valid, never a fixture.
    const SHIPPED: &str = include_str!("../../../../params.yaml");
    /// The tests' own params, a fixed copy.
    const FIXTURE: &str = include_str!("../../tests/fixtures/params.yaml");

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
    fn leakage_acknowledgements_need_a_known_feature_of_clean_lineage_and_a_reason() {
        let ack = |feature: &str, reason: &str| Acknowledgement {
            feature: feature.into(),
            reason: reason.into(),
        };
        let mut bf = fixture().build_features;
        bf.leakage.acknowledged = vec![ack("prev_utilisation", "known before authorisation")];
        let checked = bf.clone().check().expect("a history feature with a reason");
        assert_eq!(
            checked
                .leakage
                .acknowledged(crate::features::Feature::PrevUtilisation),
            Some("known before authorisation")
        );
        for (acks, field) in [
            (vec![ack("prev_utilisaton", "typo")], "acknowledged[0].feature"),
            (vec![ack("available_pct", "no")], "acknowledged[0].feature"),
            (vec![ack("prev_utilisation", "  ")], "acknowledged[0].reason"),
            (
                vec![ack("prev_utilisation", "a"), ack("prev_utilisation", "b")],
                "acknowledged[1].feature",
            ),
        ] {
            bf.leakage.acknowledged = acks;
            let err = bf.clone().check().expect_err("refused");
            assert!(err.to_string().contains(field), "{field}: {err}");
        }
    }

    /// Issue 14: the evaluate section's new limits are checked at the edge,
    /// naming the field.
    #[test]
    fn evaluate_slices_learning_curve_and_cold_start_limits_are_checked() {
        let base = fixture().evaluate;
        base.clone().check().expect("fixture");
        let refused = |e: EvaluateParams, field: &str| {
            let err = e.check().expect_err(field);
            assert!(err.to_string().contains(field), "{field}: {err}");
        };
        let mut e = base.clone();
        e.slices.floors.insert("colour=red".into(), 0.1);
        refused(e, "evaluate.slices.floors.colour=red");
        let mut e = base.clone();
        e.slices.floors.insert("sex=F".into(), 1.5);
        refused(e, "evaluate.slices.floors.sex=F");
        let mut e = base.clone();
        e.learning_curve.shares = vec![0.5, 0.25];
        refused(e, "evaluate.learning_curve.shares");
        let mut e = base.clone();
        e.learning_curve.shares = vec![0.0, 0.5];
        refused(e, "evaluate.learning_curve.shares");
        let mut e = base.clone();
        e.learning_curve.folds = 1;
        refused(e, "evaluate.learning_curve.folds");
        let mut e = base.clone();
        e.gate.cold_start_min_roc_auc = Some(0.4);
        refused(e, "evaluate.gate.cold_start_min_roc_auc");
        let mut e = base.clone();
        e.importance.repeats = 51;
        refused(e, "evaluate.importance.repeats");
        let mut e = base;
        e.learning_curve.shares = Vec::new();
        e.check().expect("no learning curve is allowed");
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

    /// The training period's end: null by default (every row), a
    /// `yyyy-mm-dd` text parsed once by `check`, anything else refused
    /// with the key named.
    #[test]
    fn split_until_is_a_date_or_null() {
        let b = fixture().build_features;
        assert_eq!(b.split.until, None, "the fixture leaves it out: null");
        assert_eq!(b.clone().check().expect("null").until, None);
        let yaml = FIXTURE.replace(
            "    calibration: 0.1\n",
            "    calibration: 0.1\n    until: \"2020-05-31\"\n",
        );
        assert_ne!(yaml, FIXTURE, "split.calibration line not found in the fixture");
        let p: Params = serde_norway::from_str(&yaml).expect("a quoted date parses");
        assert_eq!(
            p.build_features.check().expect("a date").until,
            Some(NaiveDate::from_ymd_opt(2020, 5, 31).expect("date"))
        );
        for bad in ["2020-02-30", "31.05.2020", "yesterday", ""] {
            let mut b = fixture().build_features;
            b.split.until = Some(bad.into());
            let err = b.check().expect_err(bad).to_string();
            assert!(err.contains("build_features.split.until"), "{bad}: {err}");
            assert!(err.contains(&format!("{bad:?}")), "{bad}: {err}");
        }
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

    /// Issue 14: the gate's limits are checked as MLflow checks them, the
    /// error naming the metric and the field.
    #[test]
    fn evaluate_check_refuses_gate_limits_mlflow_refuses() {
        let e = fixture().evaluate;
        e.clone().check().expect("fixture valid");
        let mut bad = e.clone();
        if let Some(t) = bad.gate.thresholds.get_mut(&GateMetric::PrAuc) {
            t.min_absolute_change = Some(0.0);
        }
        let err = bad.check().expect_err("zero change").to_string();
        assert!(
            err.contains("evaluate.gate.thresholds.pr_auc.min_absolute_change"),
            "{err}"
        );
        let mut bad = e.clone();
        if let Some(t) = bad.gate.thresholds.get_mut(&GateMetric::PrAuc) {
            t.min_relative_change = Some(1.5);
        }
        assert!(
            bad.check()
                .expect_err("relative")
                .to_string()
                .contains("min_relative_change")
        );
        let mut bad = e.clone();
        bad.gate.thresholds.insert(
            GateMetric::Recall,
            MetricThreshold {
                threshold: None,
                min_absolute_change: None,
                min_relative_change: None,
                greater_is_better: true,
            },
        );
        assert!(
            bad.check()
                .expect_err("empty")
                .to_string()
                .contains("thresholds.recall")
        );
        let mut bad = e;
        bad.bootstrap.confidence = 1.0;
        assert!(
            bad.check()
                .expect_err("coverage")
                .to_string()
                .contains("confidence")
        );
        let yaml = "pr_auc: {threshold: 0.5, greater_is_better: true}\nauc: {threshold: 0.5, greater_is_better: true}\n";
        let unknown: Result<std::collections::BTreeMap<GateMetric, MetricThreshold>, _> =
            serde_norway::from_str(yaml);
        assert!(unknown.is_err(), "an unknown metric name is refused");
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
