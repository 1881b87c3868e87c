//! `monitor`: which data windows are compared with the training reference,
//! the drift tests and their per-feature overrides, performance estimation,
//! and the prices that turn predictions and compute into money.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::{Check, Checked, ParamsError, fraction, in_range, invalid};
use crate::features::Feature;

/// `monitor`: the windows, drift, performance, value and cost settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorParams {
    /// How the feature layer is cut into windows: `month` (default), `week`
    /// (ISO weeks, Monday first) or `day`.
    pub period: Period,
    /// First and last day monitored, inclusive (`null`: open). With `from`
    /// null the windows are those after the training period's end (the last
    /// day of the train split), or, when the training period is the whole
    /// layer, the last `last` windows.
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    /// Windows monitored when no window lies after the training period,
    /// 1..=1,000 (default 6).
    pub last: usize,
    /// A window with fewer rows is reported, not tested: its statistics are
    /// noise (default 500, at least 1).
    pub min_rows: u64,
    pub drift: DriftParams,
    pub performance: PerformanceParams,
    pub value: ValueParams,
    pub cost: CostParams,
}

/// A window's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Month,
    Week,
    Day,
}

/// `monitor.drift`: per-feature tests (Evidently's default choice) and PSI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriftParams {
    /// The dataset drifts when this share of the monitored features drift,
    /// (0, 1] (default 0.5, Evidently's).
    pub share: f64,
    /// PSI levels: `warn` from which a shift is worth a look (default 0.1),
    /// `alarm` from which it is significant (default 0.25); 0 < warn < alarm.
    pub psi_warn: f64,
    pub psi_alarm: f64,
    /// Per-feature overrides of the default test, keyed by feature name.
    #[serde(default)]
    pub features: BTreeMap<String, FeatureDrift>,
}

/// One feature's drift settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureDrift {
    /// The test instead of the default choice; `none` leaves the feature
    /// out of the drift tests and the dataset share (its PSI is still
    /// reported).
    #[serde(default)]
    pub test: Option<TestChoice>,
    /// The test's threshold instead of its default: a p-value for `ks` and
    /// `chi_squared`, a distance for `wasserstein` and `jensen_shannon`.
    #[serde(default)]
    pub threshold: Option<f64>,
    /// Why the default does not fit (shown in the report); required.
    pub reason: String,
}

/// A drift test chosen in params.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TestChoice {
    Ks,
    Wasserstein,
    ChiSquared,
    JensenShannon,
    None,
}

/// `monitor.performance`: the reference the estimates are banded by.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerformanceParams {
    /// The test split is cut into this many chunks; the alert band of each
    /// metric is its mean ± 3 standard deviations over them, 2..=1,000
    /// (default 10).
    pub reference_chunks: usize,
}

/// `monitor.value`: what a decision is worth, in `currency`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValueParams {
    pub currency: String,
    /// Value of a revenge purchase correctly flagged (an intervention that
    /// avoids a default), >= 0.
    pub true_positive: f64,
    /// Cost of a false alarm (a good customer bothered), >= 0.
    pub false_positive: f64,
    /// Cost of a missed revenge purchase, >= 0.
    pub false_negative: f64,
}

/// `monitor.cost`: compute prices, in `currency`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostParams {
    pub currency: String,
    /// Price of one CPU-hour, >= 0.
    pub cpu_hour: f64,
    /// Price of one GB of memory held for an hour, >= 0.
    pub gb_hour: f64,
}

impl Check for MonitorParams {
    type Checked = Checked<MonitorParams>;

    fn check(self) -> Result<Checked<MonitorParams>, ParamsError> {
        if let (Some(from), Some(to)) = (self.from, self.to)
            && from > to
        {
            return Err(invalid(
                "monitor.to",
                format!("{to} is before monitor.from {from}"),
            ));
        }
        in_range("monitor.last", self.last, 1, 1_000)?;
        in_range("monitor.min_rows", self.min_rows, 1, u64::MAX)?;
        let d = &self.drift;
        fraction("monitor.drift.share", d.share)?;
        if !(d.psi_warn > 0.0 && d.psi_warn < d.psi_alarm && d.psi_alarm.is_finite()) {
            return Err(invalid(
                "monitor.drift.psi_warn",
                format!(
                    "psi_warn {} and psi_alarm {} must satisfy 0 < psi_warn < psi_alarm",
                    d.psi_warn, d.psi_alarm
                ),
            ));
        }
        for (name, f) in &d.features {
            let field = |k: &str| format!("monitor.drift.features.{name}.{k}");
            if Feature::from_name(name).is_none() {
                return Err(invalid(
                    &format!("monitor.drift.features.{name}"),
                    "is not a feature this build computes",
                ));
            }
            if f.reason.trim().is_empty() {
                return Err(invalid(
                    &field("reason"),
                    "is empty: say why the default does not fit",
                ));
            }
            if let Some(t) = f.threshold {
                let p_value = matches!(f.test, Some(TestChoice::Ks | TestChoice::ChiSquared));
                let ok = if p_value {
                    t > 0.0 && t < 1.0
                } else {
                    t > 0.0 && t.is_finite()
                };
                if !ok {
                    return Err(invalid(
                        &field("threshold"),
                        format!("{t} is not a valid threshold (a p-value in (0, 1), or a positive distance)"),
                    ));
                }
                if f.test == Some(TestChoice::None) {
                    return Err(invalid(&field("threshold"), "is set for test: none"));
                }
            }
        }
        in_range(
            "monitor.performance.reference_chunks",
            self.performance.reference_chunks,
            2,
            1_000,
        )?;
        let v = &self.value;
        for (k, x) in [
            ("true_positive", v.true_positive),
            ("false_positive", v.false_positive),
            ("false_negative", v.false_negative),
        ] {
            if !(x >= 0.0 && x.is_finite()) {
                return Err(invalid(
                    &format!("monitor.value.{k}"),
                    format!("{x} is not a number >= 0"),
                ));
            }
        }
        for (k, x) in [("cpu_hour", self.cost.cpu_hour), ("gb_hour", self.cost.gb_hour)] {
            if !(x >= 0.0 && x.is_finite()) {
                return Err(invalid(
                    &format!("monitor.cost.{k}"),
                    format!("{x} is not a number >= 0"),
                ));
            }
        }
        for (k, c) in [("value", &v.currency), ("cost", &self.cost.currency)] {
            if c.trim().is_empty() {
                return Err(invalid(&format!("monitor.{k}.currency"), "is empty"));
            }
        }
        Ok(Checked(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::Params;

    const SHIPPED: &str = include_str!("../../../../params.yaml");

    fn shipped() -> MonitorParams {
        let p: Params = serde_norway::from_str(SHIPPED).expect("params.yaml parses");
        p.monitor.expect("params.yaml has a monitor section")
    }

    #[test]
    fn shipped_monitor_params_pass_their_checks() {
        shipped().check().expect("monitor params");
    }

    #[test]
    fn check_names_the_offending_key() {
        let refused = |m: MonitorParams, field: &str| {
            let err = m.check().expect_err(field).to_string();
            assert!(err.contains(field), "{err} should name {field}");
        };
        let mut m = shipped();
        m.drift.share = 0.0;
        refused(m, "monitor.drift.share");
        let mut m = shipped();
        m.drift.psi_warn = 0.3;
        refused(m, "monitor.drift.psi_warn");
        let mut m = shipped();
        m.drift.features.insert(
            "velocity".into(),
            FeatureDrift {
                test: Some(TestChoice::None),
                threshold: None,
                reason: "x".into(),
            },
        );
        refused(m, "monitor.drift.features.velocity");
        let mut m = shipped();
        m.drift.features.insert(
            "valor".into(),
            FeatureDrift {
                test: Some(TestChoice::Ks),
                threshold: Some(1.5),
                reason: "x".into(),
            },
        );
        refused(m, "monitor.drift.features.valor.threshold");
        let mut m = shipped();
        m.drift.features.insert(
            "valor".into(),
            FeatureDrift {
                test: None,
                threshold: None,
                reason: " ".into(),
            },
        );
        refused(m, "monitor.drift.features.valor.reason");
        let mut m = shipped();
        m.value.false_positive = -1.0;
        refused(m, "monitor.value.false_positive");
        let mut m = shipped();
        m.cost.cpu_hour = f64::NAN;
        refused(m, "monitor.cost.cpu_hour");
        let mut m = shipped();
        m.from = NaiveDate::from_ymd_opt(2020, 5, 1);
        m.to = NaiveDate::from_ymd_opt(2020, 4, 1);
        refused(m, "monitor.to");
        let mut m = shipped();
        m.performance.reference_chunks = 1;
        refused(m, "monitor.performance.reference_chunks");
    }
}
