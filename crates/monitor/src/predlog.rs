//! The serving section: the server's prediction log cut into windows by
//! prediction time and grouped by variant and model version: traffic,
//! decision rate, prediction drift against production's test-split scores,
//! the CBPE estimate, value, and the realised metrics of the predictions
//! whose outcome came back through `/feedback`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDate, Utc};
use revspend_core::artifact::prediction_log::{self, ReadStats, Record};
use revspend_core::params::MonitorParams;
use serde::Serialize;

use crate::alarms::WindowMetrics;
use crate::performance::{self, Reference, WindowPerformance};
use crate::scores::{PredictionDrift, ScoreBins};
use crate::value::{self, ValueRates, WindowValue};
use crate::windows::window_of;

/// The serving section of the report.
#[derive(Debug, Clone, Serialize)]
pub struct ServingReport {
    pub files: usize,
    pub records: u64,
    /// Lines that were not a record, and the first few of them.
    pub bad_lines: u64,
    pub bad_examples: Vec<String>,
    pub windows: Vec<ServingWindow>,
}

/// One window of the log.
#[derive(Debug, Clone, Serialize)]
pub struct ServingWindow {
    pub window: String,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    pub groups: Vec<ServingGroup>,
    /// `serving.<variant>.<metric>` for the alarms.
    pub metrics: BTreeMap<String, f64>,
}

/// One variant and model version in a window.
#[derive(Debug, Clone, Serialize)]
pub struct ServingGroup {
    pub variant: String,
    pub model_version: String,
    pub predictions: usize,
    pub cold_starts: usize,
    pub mean_latency_us: f64,
    /// Against production's reference; `None` for another model version.
    pub prediction: Option<PredictionDrift>,
    pub performance: WindowPerformance,
    pub value: WindowValue,
    /// Predictions whose outcome came back, and what they realise.
    pub with_outcome: usize,
    pub realised: Option<performance::Realised>,
    pub mean_reward: Option<f64>,
}

impl ServingWindow {
    pub fn alarm_view(&self) -> WindowMetrics {
        WindowMetrics {
            window: format!("serving {}", self.window),
            first_day: self.first_day,
            last_day: self.last_day,
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Default)]
struct Group {
    threshold: f64,
    probabilities: Vec<f64>,
    ids: HashMap<String, usize>,
    cold_starts: usize,
    latency_us: u64,
    outcomes: Vec<Option<bool>>,
    rewards: Vec<f64>,
}

/// Reads the whole log (closed files and the one being written).
pub fn summarise(
    dir: &Path,
    params: &MonitorParams,
    reference_scores: &ScoreBins,
    reference: &Reference,
    production_version: &str,
    rates: &ValueRates,
) -> Result<ServingReport> {
    type Key = (crate::windows::WindowKey, String, String);
    let mut groups: BTreeMap<Key, Group> = BTreeMap::new();
    let mut where_is: HashMap<String, Key> = HashMap::new();
    let mut feedback = Vec::new();
    let mut bad_time = 0u64;
    let window = prediction_log::Window {
        include_open: true,
        ..Default::default()
    };
    let stats: ReadStats = prediction_log::read_records(dir, window, |record| match record {
        Record::Prediction(p) => {
            let Ok(time) = DateTime::parse_from_rfc3339(&p.time) else {
                bad_time += 1;
                return;
            };
            let day = time.with_timezone(&Utc).date_naive();
            let key = (
                window_of(params.period, day),
                p.variant.clone(),
                p.model_version.clone(),
            );
            let g = groups.entry(key.clone()).or_default();
            g.threshold = p.threshold;
            g.ids.insert(p.prediction_id.clone(), g.probabilities.len());
            g.probabilities.push(p.probability);
            g.cold_starts += usize::from(p.cold_start);
            g.latency_us += p.latency_us;
            g.outcomes.push(None);
            where_is.insert(p.prediction_id, key);
        }
        Record::Feedback(f) => feedback.push(f),
        Record::Shadow(_) => {}
    })
    .with_context(|| format!("reading the prediction log {}", dir.display()))?;
    let mut rewards: HashMap<Key, Vec<f64>> = HashMap::new();
    for f in feedback {
        let Some(key) = where_is.get(&f.prediction_id) else {
            continue;
        };
        if let Some(g) = groups.get_mut(key)
            && let Some(&i) = g.ids.get(&f.prediction_id)
        {
            g.outcomes[i] = f.outcome;
            rewards.entry(key.clone()).or_default().push(f.reward);
        }
    }
    for (key, r) in rewards {
        if let Some(g) = groups.get_mut(&key) {
            g.rewards = r;
        }
    }
    let mut windows: BTreeMap<crate::windows::WindowKey, ServingWindow> = BTreeMap::new();
    for ((wkey, variant, model_version), g) in groups {
        let production = model_version == production_version && g.threshold == reference.threshold;
        let prediction = if production {
            Some(reference_scores.drift(
                &g.probabilities,
                g.threshold,
                params.drift.psi_warn,
                params.drift.psi_alarm,
            )?)
        } else {
            None
        };
        let perf = performance::assess(
            &g.probabilities,
            None,
            g.threshold,
            production.then_some(reference),
        )?;
        let value = WindowValue::of(rates, &perf);
        let (p, y): (Vec<f64>, Vec<bool>) = g
            .outcomes
            .iter()
            .zip(&g.probabilities)
            .filter_map(|(o, p)| o.map(|y| (*p, y)))
            .unzip();
        let realised = (!y.is_empty())
            .then(|| performance::realise(&p, &y, g.threshold))
            .transpose()?;
        let n = g.probabilities.len();
        let group = ServingGroup {
            variant: variant.clone(),
            model_version,
            predictions: n,
            cold_starts: g.cold_starts,
            mean_latency_us: g.latency_us as f64 / n.max(1) as f64,
            prediction,
            performance: perf,
            value,
            with_outcome: y.len(),
            realised,
            mean_reward: (!g.rewards.is_empty())
                .then(|| g.rewards.iter().sum::<f64>() / g.rewards.len() as f64),
        };
        let w = windows.entry(wkey.clone()).or_insert_with(|| ServingWindow {
            window: wkey.key.clone(),
            first_day: wkey.start,
            last_day: wkey.end,
            groups: Vec::new(),
            metrics: BTreeMap::new(),
        });
        let prefix = format!("serving.{variant}");
        w.metrics.insert(format!("{prefix}.predictions"), n as f64);
        if let Some(p) = &group.prediction {
            w.metrics.insert(format!("{prefix}.prediction.psi"), p.psi);
            w.metrics.insert(format!("{prefix}.prediction.js"), p.js);
        }
        for (name, v) in performance::metric_pairs(&group.performance) {
            w.metrics.insert(format!("{prefix}.{name}"), v);
        }
        for (name, v) in value::metric_pairs(&group.value) {
            w.metrics.insert(format!("{prefix}.{name}"), v);
        }
        if let Some(r) = group.mean_reward {
            w.metrics.insert(format!("{prefix}.mean_reward"), r);
        }
        w.groups.push(group);
    }
    let mut bad_examples = stats.bad_examples;
    if bad_time > 0 {
        bad_examples.push(format!("{bad_time} predictions with a time that is not RFC 3339"));
    }
    for w in windows.values_mut() {
        w.metrics.retain(|_, v| v.is_finite());
    }
    Ok(ServingReport {
        files: stats.files,
        records: stats.records,
        bad_lines: stats.bad_lines + bad_time,
        bad_examples,
        windows: windows.into_values().collect(),
    })
}
