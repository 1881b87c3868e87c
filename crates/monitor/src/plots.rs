//! Plot data over the windows, for DVC's plots and the page: drift per
//! feature by window, estimated against realised performance, value; and
//! the charts drawn from the report ([`CHARTS`], PNG).

use std::path::Path;

use anyhow::{Context, Result};
use revspend_core::artifact;
use serde::Serialize;

use crate::performance::Metric;

mod canvas;
pub(crate) mod charts;

use crate::report::MonitorReport;
pub(crate) use canvas::{short, thousands};

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

/// The charts written into the plots directory, in the page's reading
/// order, each with its caption.
pub const CHARTS: [(&str, &str); 5] = [
    (charts::DRIFT_HEATMAP, "Feature drift by window"),
    (charts::PREDICTION_DRIFT, "Prediction drift of the newest window"),
    (
        charts::PERFORMANCE,
        "Performance by window, estimated against realised",
    ),
    (charts::VALUE, "Value per 1,000 purchases by window"),
    (charts::COST, "Compute cost of the stages' last runs"),
];

/// Writes `drift.json`, `performance.json` and `value.json`, and the
/// [`CHARTS`], into `dir`.
pub fn write(report: &MonitorReport, dir: &Path) -> Result<()> {
    write_data(report, dir)?;
    let json = serde_json::to_value(report).context("the report as JSON, for its charts")?;
    write_charts(&json, dir)
}

/// Draws one chart from the report's JSON form into a file.
type Chart = fn(&Path, &serde_json::Value) -> Result<()>;

/// Draws every chart of [`CHARTS`] from the report's JSON form (what
/// `reports/monitor.json` holds); a chart with nothing to show is a
/// placeholder saying why, so every file exists after every run.
pub fn write_charts(report: &serde_json::Value, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    canvas::register_font()?;
    let draw: [(&str, Chart); 5] = [
        (charts::DRIFT_HEATMAP, charts::drift_heatmap),
        (charts::PREDICTION_DRIFT, charts::prediction_drift),
        (charts::PERFORMANCE, charts::performance),
        (charts::VALUE, charts::value),
        (charts::COST, charts::cost),
    ];
    for (name, chart) in draw {
        chart(&dir.join(name), report)?;
    }
    Ok(())
}

fn write_data(report: &MonitorReport, dir: &Path) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_empty_report_still_writes_every_chart() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let empty = json!({"windows": [], "cost": {"stages": []}, "reference": {}});
        write_charts(&empty, dir.path()).expect("the charts of an empty report");
        for (name, _) in CHARTS {
            let bytes = std::fs::read(dir.path().join(name)).expect("every chart is written");
            assert_eq!(&bytes[1..4], b"PNG", "{name}");
            let height = u32::from_be_bytes(bytes[20..24].try_into().expect("four bytes"));
            assert_eq!(height, 200, "{name} is the placeholder");
        }
    }

    #[test]
    fn one_window_draws_every_chart() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let window = json!({
            "window": "2020-06", "rows": 9365, "tested": true,
            "features": [
                {"feature": "valor", "test": "wasserstein_norm", "score": 0.3, "threshold": 0.1,
                 "drifted": true, "psi": 0.31, "psi_level": "alarm", "override_reason": null},
                {"feature": "month", "test": null, "score": null, "threshold": null,
                 "drifted": false, "psi": 0.02, "psi_level": "stable", "override_reason": null},
            ],
            "prediction": {"psi": 0.013, "psi_level": "stable", "js": 0.04, "mean_score": 0.14,
                "reference_mean_score": 0.12, "decision_rate": 0.139, "reference_decision_rate": 0.113,
                "bins": [{"from": null, "reference_share": 0.5, "window_share": 0.45},
                         {"from": 0.3, "reference_share": 0.5, "window_share": 0.55}]},
            "performance": {
                "estimated": {"pr_auc": 0.96, "f1": 0.90},
                "realised": {"pr_auc": 0.97, "f1": 0.80},
                "bands": {"pr_auc": {"lower": 0.88, "upper": 1.0}, "f1": {"lower": 0.81, "upper": 0.94}}},
            "value": {"rates": {"true_positive": 120.0, "false_positive": 8.0, "false_negative": 60.0},
                "estimated": {"per_1000": 14238.8, "baseline_per_1000": -8486.8},
                "realised": {"per_1000": 14646.9, "baseline_per_1000": -8290.4}},
        });
        let report = json!({
            "windows": [window],
            "reference": {"test_pr_auc": 0.95},
            "cost": {"stages": [{"stage": "train", "last": {"wall_seconds": 2.3, "cpu_seconds": null, "peak_rss_mb": 62.8}}]},
        });
        write_charts(&report, dir.path()).expect("the charts of one window");
        for (name, _) in CHARTS {
            let bytes = std::fs::read(dir.path().join(name)).expect("every chart is written");
            // A drawn chart, not the 200-pixel-high placeholder (the PNG
            // header's height, big-endian at bytes 20..24).
            let height = u32::from_be_bytes(bytes[20..24].try_into().expect("four bytes"));
            assert!(height > 200, "{name} is a placeholder");
        }
    }
}
