//! One window's figures from what the scan accumulated: per-feature and
//! dataset drift, prediction drift, the label rate, performance estimated
//! and realised, business value, the other models' realised metrics, and
//! the flat metric table the alarms read.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use revspend_core::params::MonitorParams;
use revspend_core::profile::Profile;
use serde::Serialize;

use crate::alarms::WindowMetrics;
use crate::data_drift::{FeatureDrift, feature_drift};
use crate::drift::{DatasetDrift, dataset_drift_of};
use crate::performance::{self, Metric, Reference, WindowPerformance};
use crate::scan::WindowRows;
use crate::scores::{PredictionDrift, ScoreBins};
use crate::value::{self, ValueRates, WindowValue};

/// A model the windows are scored with besides production.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OtherModel {
    /// `previous` (the version production held before) or
    /// `challenger.<alias>`.
    pub role: String,
    pub version: String,
    pub model_version: String,
    /// Its own decision threshold (its precision, recall and F1 are at it).
    pub threshold: f64,
}

/// Production's reference: the test split, scored.
pub struct ProductionReference<'a> {
    pub profile: &'a Profile,
    pub scores: &'a ScoreBins,
    pub performance: &'a Reference,
    pub threshold: f64,
    /// Production's PR-AUC on the test split, recorded at training.
    pub test_pr_auc: f64,
    pub test_positive_rate: f64,
}

/// Everything reported for one window.
#[derive(Debug, Clone, Serialize)]
pub struct WindowReport {
    pub window: String,
    pub first_day: chrono::NaiveDate,
    pub last_day: chrono::NaiveDate,
    pub rows: usize,
    /// Whether the window had `min_rows` rows: fewer are reported, not tested.
    pub tested: bool,
    pub label_rate: Option<f64>,
    pub reference_label_rate: f64,
    pub features: Vec<FeatureDrift>,
    pub dataset: Option<DatasetDrift>,
    /// Features whose test says drift, by name.
    pub drifted_features: Vec<String>,
    pub prediction: Option<PredictionDrift>,
    pub performance: WindowPerformance,
    pub value: WindowValue,
    /// The other models' realised metrics on the same rows.
    pub others: Vec<OtherOnWindow>,
    /// The flat table the alarms read (also in the Prometheus file).
    pub metrics: BTreeMap<String, f64>,
}

/// Another model on the window.
#[derive(Debug, Clone, Serialize)]
pub struct OtherOnWindow {
    pub role: String,
    pub version: String,
    pub realised: Option<crate::performance::Realised>,
}

/// Assembles one window's report.
pub fn window_report(
    params: &MonitorParams,
    reference: &ProductionReference<'_>,
    rates: &ValueRates,
    features: &[String],
    others: &[OtherModel],
    rows: &WindowRows,
) -> Result<WindowReport> {
    let n = rows.rows();
    let tested = n as u64 >= params.min_rows;
    let production = &rows.scores[0];
    let labels = Some(rows.labels.as_slice());
    let mut metrics: BTreeMap<String, f64> = BTreeMap::new();
    let mut drifts = Vec::new();
    let mut dataset = None;
    let mut prediction = None;
    if tested {
        for (name, window) in features.iter().zip(&rows.features) {
            let profile = reference
                .profile
                .numeric
                .get(name)
                .with_context(|| format!("the reference profile has no column `{name}`"))?;
            let d = feature_drift(&params.drift, name, profile, reference.profile.rows, window)
                .with_context(|| format!("drift of `{name}` in window {}", rows.key.key))?;
            if d.test.is_some() {
                metrics.insert(format!("psi.{name}"), d.psi);
                metrics.insert(format!("drift.{name}"), f64::from(u8::from(d.drifted)));
                if let Some(s) = d.score {
                    metrics.insert(format!("drift_score.{name}"), s);
                }
            }
            drifts.push(d);
        }
        let ds = dataset_drift_of(
            drifts.iter().filter(|d| d.test.is_some()).map(|d| d.drifted),
            params.drift.share,
        )
        .context("dataset drift")?;
        metrics.insert("drift.share".into(), ds.share);
        metrics.insert("drift.dataset".into(), f64::from(u8::from(ds.drifted)));
        if let Some(max) = drifts
            .iter()
            .filter(|d| d.test.is_some())
            .map(|d| d.psi)
            .reduce(f64::max)
        {
            metrics.insert("psi_max".into(), max);
        }
        dataset = Some(ds);
        let p = reference
            .scores
            .drift(
                production,
                reference.threshold,
                params.drift.psi_warn,
                params.drift.psi_alarm,
            )
            .context("prediction drift")?;
        metrics.insert("prediction.psi".into(), p.psi);
        metrics.insert("prediction.js".into(), p.js);
        prediction = Some(p);
    }
    let perf = performance::assess(
        production,
        labels,
        reference.threshold,
        Some(reference.performance),
    )
    .with_context(|| format!("performance of window {}", rows.key.key))?;
    metrics.extend(performance::metric_pairs(&perf));
    let value = WindowValue::of(rates, &perf);
    metrics.extend(value::metric_pairs(&value));
    let label_rate = (n > 0).then(|| rows.labels.iter().filter(|&&y| y).count() as f64 / n as f64);
    if let Some(r) = label_rate {
        metrics.insert("label_rate".into(), r);
    }
    let realised_pr_auc = perf.realised.as_ref().and_then(|r| *r.scores.get(Metric::PrAuc));
    if let Some(pr) = realised_pr_auc {
        metrics.insert("realised.pr_auc_drop".into(), reference.test_pr_auc - pr);
    }
    let mut others_out = Vec::new();
    for (k, other) in others.iter().enumerate() {
        let scores = &rows.scores[k + 1];
        let realised = (n > 0)
            .then(|| performance::realise(scores, &rows.labels, other.threshold))
            .transpose()
            .with_context(|| format!("realised metrics of {} on window {}", other.role, rows.key.key))?;
        if let Some(r) = &realised {
            for m in Metric::ALL {
                if let Some(v) = r.scores.get(m) {
                    metrics.insert(format!("{}.realised.{}", other.role, m.name()), *v);
                }
            }
            if other.role == "previous"
                && let (Some(prev), Some(prod)) = (*r.scores.get(Metric::PrAuc), realised_pr_auc)
            {
                metrics.insert("rollback.pr_auc_gain".into(), prev - prod);
            }
        }
        others_out.push(OtherOnWindow {
            role: other.role.clone(),
            version: other.version.clone(),
            realised,
        });
    }
    let drifted_features = drifts
        .iter()
        .filter(|d| d.drifted)
        .map(|d| d.feature.clone())
        .collect();
    metrics.retain(|_, v| v.is_finite());
    Ok(WindowReport {
        window: rows.key.key.clone(),
        first_day: rows.first_day,
        last_day: rows.last_day,
        rows: n,
        tested,
        label_rate,
        reference_label_rate: reference.test_positive_rate,
        features: drifts,
        dataset,
        drifted_features,
        prediction,
        performance: perf,
        value,
        others: others_out,
        metrics,
    })
}

impl WindowReport {
    /// The window as the alarms see it. The window's calendar end is its
    /// last day when the window is complete; a retrain asked on it trains
    /// up to the last day that has data.
    pub fn alarm_view(&self) -> WindowMetrics {
        WindowMetrics {
            window: self.window.clone(),
            first_day: self.first_day,
            last_day: self.last_day,
            metrics: self.metrics.clone(),
        }
    }
}
