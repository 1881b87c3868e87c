//! `params.yaml`: one section per stage, parsed strictly
//! (`deny_unknown_fields`) and validated once by [`Check::check`], whose
//! [`Checked`] result is the only form the stages accept.

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

/// A params section that passed [`Check::check`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Checked<T>(T);

impl<T> Deref for Checked<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Validation of a params section, done once at the edge.
pub trait Check: Sized {
    fn validate(&self) -> Result<(), ParamsError>;

    fn check(self) -> Result<Checked<Self>, ParamsError> {
        self.validate()?;
        Ok(Checked(self))
    }
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
    fn validate(&self) -> Result<(), ParamsError> {
        in_range("generate.customers", self.customers, 1, 10_000_000)?;
        in_range("generate.rows", self.rows, self.customers, 1_000_000_000)?;
        in_range("generate.days", self.days, 28, 3650)?;
        in_range("generate.files", self.files, 1, self.days)?;
        Ok(())
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

impl Check for BuildFeaturesParams {
    fn validate(&self) -> Result<(), ParamsError> {
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
        for (i, name) in self.features.iter().enumerate() {
            let field = format!("build_features.features[{i}]");
            let Some(f) = Feature::from_name(name) else {
                let known: Vec<_> = Feature::ALL.iter().map(|f| f.name()).collect();
                return Err(invalid(
                    &field,
                    format!("unknown feature {name:?}; known: {}", known.join(", ")),
                ));
            };
            if self.features[..i].contains(name) {
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
        Ok(())
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

impl Checked<BuildFeaturesParams> {
    /// The target rule, with vital groups normalised like the data.
    pub fn rule(&self) -> TargetRule {
        TargetRule {
            threshold_pct: self.target.threshold_pct,
            vital_groups: self
                .target
                .vital_groups
                .iter()
                .map(|g| normalise_group(g))
                .collect(),
        }
    }

    /// The model's features, in order.
    pub fn feature_set(&self) -> Vec<Feature> {
        self.features
            .iter()
            .filter_map(|n| Feature::from_name(n))
            .collect()
    }
}

/// `train`: the bagged decision-tree forest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainParams {
    /// RNG seed for bootstraps and feature subsets.
    pub seed: u64,
    /// Trees in the forest, 1..=2000 (default 60).
    pub n_trees: u32,
    /// Maximum tree depth, 1..=64 (default 10).
    pub max_depth: u16,
    /// Minimum samples in a leaf, >= 1 (default 5).
    pub min_samples_leaf: usize,
    /// Minimum samples to split a node, >= 2 (default 10).
    pub min_samples_split: usize,
    /// Share of the features each tree sees, (0, 1] (default 0.7).
    pub feature_fraction: f64,
    /// Bootstrap size as a share of the training rows, (0, 1] (default 1.0).
    pub sample_fraction: f64,
    /// Fixed decision threshold in (0, 1), or `null` to pick the threshold
    /// with the best F1 on the test split (default null).
    pub decision_threshold: Option<f64>,
}

impl Check for TrainParams {
    fn validate(&self) -> Result<(), ParamsError> {
        in_range("train.n_trees", self.n_trees, 1, 2000)?;
        in_range("train.max_depth", self.max_depth, 1, 64)?;
        in_range("train.min_samples_leaf", self.min_samples_leaf, 1, usize::MAX)?;
        in_range("train.min_samples_split", self.min_samples_split, 2, usize::MAX)?;
        fraction("train.feature_fraction", self.feature_fraction)?;
        fraction("train.sample_fraction", self.sample_fraction)?;
        if let Some(t) = self.decision_threshold
            && !(t > 0.0 && t < 1.0)
        {
            return Err(invalid(
                "train.decision_threshold",
                format!("{t} is outside (0, 1)"),
            ));
        }
        Ok(())
    }
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
    fn validate(&self) -> Result<(), ParamsError> {
        in_range("evaluate.curve_points", self.curve_points, 10, 10_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../../../params.yaml");

    fn shipped() -> Params {
        serde_norway::from_str(SHIPPED).expect("params.yaml parses")
    }

    #[test]
    fn shipped_params_pass_their_checks() {
        let p = shipped();
        p.generate.check().expect("generate");
        let bf = p.build_features.check().expect("build_features");
        assert!(bf.feature_set().iter().all(|f| !f.is_label_input()));
        p.train.check().expect("train");
        p.evaluate.check().expect("evaluate");
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let text = SHIPPED.replace("n_trees:", "n_treez:");
        let err = serde_norway::from_str::<Params>(&text).expect_err("typo");
        assert!(err.to_string().contains("n_treez"), "{err}");
    }

    #[test]
    fn out_of_range_params_are_rejected() {
        let mut t = shipped().train;
        t.feature_fraction = 0.0;
        let err = t.clone().check().expect_err("fraction 0");
        assert!(err.to_string().contains("train.feature_fraction"), "{err}");
        t.feature_fraction = 0.5;
        t.decision_threshold = Some(1.0);
        assert!(t.check().is_err());

        let mut b = shipped().build_features;
        b.split.train += 0.1;
        assert!(b.clone().check().expect_err("sum").to_string().contains("sum"));
        b.split.train -= 0.1;
        b.features.push("no_such_feature".into());
        assert!(
            b.clone()
                .check()
                .expect_err("unknown")
                .to_string()
                .contains("no_such_feature")
        );
    }

    #[test]
    fn leaky_features_need_explicit_permission() {
        let mut b = shipped().build_features;
        b.features.push("limite_disp".into());
        let err = b.clone().check().expect_err("leaky");
        assert!(err.to_string().contains("leakage"), "{err}");
        b.allow_leaky_features = true;
        b.check().expect("allowed for comparison");
    }
}
