//! `build_features`: the raw section and the checked [`BuildFeaturesConfig`]
//! (features parsed, target rule built, the training period's end parsed).

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::{Check, ParamsError, fraction, invalid};
use crate::contract::normalise_group;
use crate::features::Feature;
use crate::target::TargetRule;

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
    /// Pseudonymise with the public development key when
    /// `REVSPEND_PSEUDONYM_KEY` is unset (default `true` in the shipped
    /// params, which run on generated data; set `false` for real data so a
    /// missing key fails the stage instead). A key in the environment is
    /// always used when set.
    pub allow_development_key: bool,
    pub leakage: LeakageParams,
    pub selection: SelectionParams,
    pub split: SplitParams,
}

/// `build_features.leakage`: how the leakage check tells a leak from a
/// feature that is merely very predictive.
///
/// A leak is a matter of lineage: a feature that reads the current row's
/// label inputs (the definitions in core say which) fails the stage. A
/// feature of clean lineage whose single-feature score passes
/// `max_single_feature_auc` is a warning a person looks at and, when it is
/// legitimate, acknowledges here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeakageParams {
    /// A feature whose single-feature ROC-AUC against the target on the train
    /// split (taken as max(AUC, 1 − AUC)) exceeds this is suspicious (a
    /// warning, not a failure), (0.5, 1] (default 0.95).
    pub max_single_feature_auc: f64,
    /// Suspicious features a person has looked at and kept, each with the
    /// reason (default none). Silences the warning; cannot silence a leak
    /// by lineage (a label input).
    #[serde(default)]
    pub acknowledged: Vec<Acknowledgement>,
}

/// One reviewed feature in `build_features.leakage.acknowledged`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acknowledgement {
    /// A candidate feature's name.
    pub feature: String,
    /// Why it is legitimate, for whoever reads the report next (not empty).
    pub reason: String,
}

impl LeakageParams {
    /// The reason `feature` was acknowledged with, if it was.
    pub fn acknowledged(&self, feature: Feature) -> Option<&str> {
        self.acknowledged
            .iter()
            .find(|a| a.feature == feature.name())
            .map(|a| a.reason.as_str())
    }
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

/// `build_features.split`: customer-grouped, stratified split fractions,
/// and where the training period ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitParams {
    pub seed: u64,
    /// Fractions of customers; each in (0, 1), summing to 1.
    pub train: f64,
    pub test: f64,
    pub holdout: f64,
    pub calibration: f64,
    /// The training period's last day, `"yyyy-mm-dd"` (quoted: DVC does
    /// not accept YAML dates), or null (default): every row is in it.
    /// Rows dated after it are live traffic for the monitor: they stay in
    /// the staged and feature layers and in the online snapshot, but are in
    /// no split, so the checks, the profile, training and evaluation never
    /// see them. Customers are assigned to splits as without it (the same
    /// customer stays in the same split as the period grows). A retrain
    /// request (`build-features --retrain-request`) can move the end later,
    /// never earlier; with null it changes nothing. Checked into
    /// [`BuildFeaturesConfig::until`].
    #[serde(default)]
    pub until: Option<String>,
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
    pub allow_development_key: bool,
    pub leakage: LeakageParams,
    pub selection: SelectionParams,
    pub split: SplitParams,
    /// `split.until` parsed: the training period's last day as params set
    /// it (`None`: every row). Read this, not the string in `split`.
    pub until: Option<NaiveDate>,
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
        for (i, ack) in self.leakage.acknowledged.iter().enumerate() {
            let field = format!("build_features.leakage.acknowledged[{i}]");
            let Some(f) = Feature::from_name(&ack.feature) else {
                return Err(invalid(
                    &format!("{field}.feature"),
                    format!("unknown feature {:?}", ack.feature),
                ));
            };
            if f.is_label_input() {
                return Err(invalid(
                    &format!("{field}.feature"),
                    format!(
                        "{:?} reads the current row's label inputs: that is a leak by lineage, which an \
                         acknowledgement cannot silence (build_features.allow_leaky_features is for comparison runs)",
                        ack.feature
                    ),
                ));
            }
            if ack.reason.trim().is_empty() {
                return Err(invalid(
                    &format!("{field}.reason"),
                    "must say why the feature is legitimate",
                ));
            }
            if self.leakage.acknowledged[..i]
                .iter()
                .any(|a| a.feature == ack.feature)
            {
                return Err(invalid(
                    &format!("{field}.feature"),
                    format!("{:?} is acknowledged twice", ack.feature),
                ));
            }
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
        let until = match &s.until {
            None => None,
            Some(text) => Some(text.trim().parse::<NaiveDate>().map_err(|e| {
                invalid(
                    "build_features.split.until",
                    format!("{text:?} is not a date (yyyy-mm-dd, quoted, or null): {e}"),
                )
            })?),
        };
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
            allow_development_key: self.allow_development_key,
            leakage: self.leakage,
            selection: self.selection,
            split: self.split,
            until,
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
