//! Plot data over the windows, for DVC's plots and the page: drift per
//! feature by window, estimated against realised performance, value.

use std::path::Path;

use anyhow::{Context, Result};
use revspend_core::artifact;
use serde::Serialize;

use crate::performance::Metric;
use crate::report::MonitorReport;

#[derive(Serialize)]
struct DriftPoint<'a> {
    window: &'a str,
    feature: &'a str,
    psi: f64,
    score: Option<f64>,
    threshold: Option<f64>,
    drifted: bool,
}

#[derive(Serialize)]
struct PerformancePoint<'a> {
    window: &'a str,
    metric: &'static str,
    estimated: Option<f64>,
    realised: Option<f64>,
    lower: Option<f64>,
    upper: Option<f64>,
}

#[derive(Serialize)]
struct ValuePoint<'a> {
    window: &'a str,
    estimated_per_1000: Option<f64>,
    realised_per_1000: Option<f64>,
    baseline_per_1000: Option<f64>,
}

/// Writes `drift.json`, `performance.json` and `value.json` into `dir`.
pub fn write(report: &MonitorReport, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let drift: Vec<DriftPoint<'_>> = report
        .windows
        .iter()
        .flat_map(|w| {
            w.features.iter().map(|f| DriftPoint {
                window: &w.window,
                feature: &f.feature,
                psi: f.psi,
                score: f.score,
                threshold: f.threshold,
                drifted: f.drifted,
            })
        })
        .collect();
    artifact::write_json(&dir.join("drift.json"), &drift)?;
    let performance: Vec<PerformancePoint<'_>> = report
        .windows
        .iter()
        .flat_map(|w| {
            Metric::ALL.into_iter().map(|m| {
                let band = w.performance.bands.get(m).as_ref();
                PerformancePoint {
                    window: &w.window,
                    metric: m.name(),
                    estimated: *w.performance.estimated.scores.get(m),
                    realised: w.performance.realised.as_ref().and_then(|r| *r.scores.get(m)),
                    lower: band.map(|b| b.lower),
                    upper: band.map(|b| b.upper),
                }
            })
        })
        .collect();
    artifact::write_json(&dir.join("performance.json"), &performance)?;
    let value: Vec<ValuePoint<'_>> = report
        .windows
        .iter()
        .map(|w| ValuePoint {
            window: &w.window,
            estimated_per_1000: w.value.estimated.per_1000,
            realised_per_1000: w.value.realised.as_ref().and_then(|v| v.per_1000),
            baseline_per_1000: w
                .value
                .realised
                .as_ref()
                .unwrap_or(&w.value.estimated)
                .baseline_per_1000,
        })
        .collect();
    artifact::write_json(&dir.join("value.json"), &value)?;
    Ok(())
}
