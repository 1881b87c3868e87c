//! Compute cost: per stage, the wall and CPU seconds and peak memory of its
//! latest run (and per million rows where the rows are known), priced with
//! `monitor.cost`; and serving CPU seconds per 1,000 predictions from a
//! scrape of the server's `/metrics`.
//!
//! Sources: the stage run log that `scripts/stage` appends to (every stage
//! run through DVC or the Makefile: wall time, user + system CPU and the
//! peak resident memory of the stage's process), and train's own record in
//! the registry's experiment log (its wall time by phase, peak memory and
//! training rows), which also covers a `cargo run -p train`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use revspend_core::params::CostParams;
use revspend_core::registry::Registry;
use serde::{Deserialize, Serialize};

/// The cost section of the report.
#[derive(Debug, Clone, Serialize)]
pub struct CostReport {
    pub currency: String,
    pub cpu_hour: f64,
    pub gb_hour: f64,
    pub stages: Vec<StageCost>,
    pub serving: Option<ServingCost>,
    /// Lines of the run log that could not be read, as `line: reason`.
    pub bad_lines: Vec<String>,
}

/// One stage.
#[derive(Debug, Clone, Serialize)]
pub struct StageCost {
    pub stage: String,
    /// Runs on record.
    pub runs: usize,
    pub last: Option<RunCost>,
}

/// One run.
#[derive(Debug, Clone, Serialize)]
pub struct RunCost {
    pub time: String,
    pub wall_seconds: f64,
    pub cpu_seconds: Option<f64>,
    pub peak_rss_mb: Option<f64>,
    pub rows: Option<u64>,
    pub wall_seconds_per_million_rows: Option<f64>,
    pub cpu_seconds_per_million_rows: Option<f64>,
    /// CPU-hours and GB-hours (peak memory held for the wall time) priced.
    pub cost: Option<f64>,
}

/// Serving, from a `/metrics` scrape.
#[derive(Debug, Clone, Serialize)]
pub struct ServingCost {
    pub cpu_seconds: f64,
    pub predictions: f64,
    pub cpu_seconds_per_1000_predictions: Option<f64>,
    pub cost_per_million_predictions: Option<f64>,
}

/// One line of the stage run log.
#[derive(Debug, Clone, Deserialize)]
struct StageRun {
    stage: String,
    started: String,
    wall_seconds: f64,
    cpu_seconds: Option<f64>,
    peak_rss_mb: Option<f64>,
    exit_code: i32,
}

/// Collects the cost section.
pub fn collect(
    params: &CostParams,
    registry: &Registry,
    stage_runs: Option<&Path>,
    serve_metrics: Option<&Path>,
) -> Result<CostReport> {
    let mut runs: BTreeMap<String, Vec<RunCost>> = BTreeMap::new();
    let mut bad_lines = Vec::new();
    if let Some(path) = stage_runs.filter(|p| p.exists()) {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            match serde_json::from_str::<StageRun>(line) {
                Ok(r) if r.exit_code == 0 => runs.entry(r.stage.clone()).or_default().push(RunCost {
                    time: r.started,
                    wall_seconds: r.wall_seconds,
                    cpu_seconds: r.cpu_seconds,
                    peak_rss_mb: r.peak_rss_mb,
                    rows: None,
                    wall_seconds_per_million_rows: None,
                    cpu_seconds_per_million_rows: None,
                    cost: None,
                }),
                Ok(_) => {}
                Err(e) => bad_lines.push(format!("{}:{}: {e}", path.display(), i + 1)),
            }
        }
    }
    // train's own record holds its training rows; it stands for the stage
    // when the run log has no train run (a `cargo run -p train`).
    let experiments = registry
        .experiments()
        .context("reading the registry's experiment log")?;
    if let Some(last) = experiments.last() {
        let rows = last.get("train_rows").and_then(serde_json::Value::as_u64);
        let entry = runs.entry("train".into()).or_default();
        if let Some(run) = entry.last_mut() {
            run.rows = rows;
        } else if let Some(total) = last
            .pointer("/timings_s/total")
            .and_then(serde_json::Value::as_f64)
        {
            entry.push(RunCost {
                time: last
                    .get("time")
                    .and_then(|t| t.as_str())
                    .unwrap_or_default()
                    .to_owned(),
                wall_seconds: total,
                cpu_seconds: None,
                peak_rss_mb: last.get("peak_rss_mb").and_then(serde_json::Value::as_f64),
                rows,
                wall_seconds_per_million_rows: None,
                cpu_seconds_per_million_rows: None,
                cost: None,
            });
        }
    }
    let stages = runs
        .into_iter()
        .map(|(stage, mut list)| {
            let runs = list.len();
            let last = list.pop().map(|r| priced(params, r));
            StageCost { stage, runs, last }
        })
        .collect();
    let serving = match serve_metrics {
        Some(path) => serving_cost(params, path)?,
        None => None,
    };
    Ok(CostReport {
        currency: params.currency.clone(),
        cpu_hour: params.cpu_hour,
        gb_hour: params.gb_hour,
        stages,
        serving,
        bad_lines,
    })
}

fn priced(params: &CostParams, mut run: RunCost) -> RunCost {
    if let Some(rows) = run.rows.filter(|&r| r > 0) {
        let millions = rows as f64 / 1e6;
        run.wall_seconds_per_million_rows = Some(run.wall_seconds / millions);
        run.cpu_seconds_per_million_rows = run.cpu_seconds.map(|c| c / millions);
    }
    let cpu = run.cpu_seconds.unwrap_or(run.wall_seconds);
    let gb_hours = run
        .peak_rss_mb
        .map_or(0.0, |mb| mb / 1024.0 * run.wall_seconds / 3600.0);
    run.cost = Some(cpu / 3600.0 * params.cpu_hour + gb_hours * params.gb_hour);
    run
}

/// Serving CPU per 1,000 predictions since the server started: its
/// `process_cpu_seconds_total` over the sum of `revspend_predictions_total`.
fn serving_cost(params: &CostParams, path: &Path) -> Result<Option<ServingCost>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let (mut cpu, mut predictions) = (None, 0.0);
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let metric = name.split('{').next().unwrap_or(name);
        match metric {
            "process_cpu_seconds_total" => cpu = Some(value),
            "revspend_predictions_total" => predictions += value,
            _ => {}
        }
    }
    let Some(cpu_seconds) = cpu else {
        log::warn!(
            "{}: no process_cpu_seconds_total, so no serving cost",
            path.display()
        );
        return Ok(None);
    };
    let per_1000 = (predictions > 0.0).then(|| cpu_seconds / predictions * 1000.0);
    Ok(Some(ServingCost {
        cpu_seconds,
        predictions,
        cpu_seconds_per_1000_predictions: per_1000,
        cost_per_million_predictions: per_1000.map(|c| c * 1000.0 / 3600.0 * params.cpu_hour),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> CostParams {
        CostParams {
            currency: "USD".into(),
            cpu_hour: 0.036,
            gb_hour: 0.0,
        }
    }

    #[test]
    fn serving_cost_from_a_scrape() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("metrics.txt");
        std::fs::write(
            &path,
            "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 12.5\n\
             revspend_predictions_total{variant=\"a\",model_version=\"m\",decision=\"flag\"} 1000\n\
             revspend_predictions_total{variant=\"a\",model_version=\"m\",decision=\"pass\"} 24000\n",
        )
        .expect("write");
        let s = serving_cost(&params(), &path).expect("read").expect("cost");
        assert_eq!(s.predictions, 25_000.0);
        assert!((s.cpu_seconds_per_1000_predictions.expect("per 1000") - 0.5).abs() < 1e-12);
        // 0.5 s per 1,000 is 500 s per million: 500 / 3600 · 0.036 = 0.005.
        assert!((s.cost_per_million_predictions.expect("cost") - 0.005).abs() < 1e-12);
    }

    #[test]
    fn a_run_is_priced_by_cpu_and_memory_held() {
        let run = RunCost {
            time: "t".into(),
            wall_seconds: 3600.0,
            cpu_seconds: Some(7200.0),
            peak_rss_mb: Some(2048.0),
            rows: Some(2_000_000),
            wall_seconds_per_million_rows: None,
            cpu_seconds_per_million_rows: None,
            cost: None,
        };
        let p = CostParams {
            gb_hour: 0.01,
            ..params()
        };
        let r = priced(&p, run);
        // 2 CPU-hours at 0.036 and 2 GB-hours at 0.01.
        assert!((r.cost.expect("cost") - (0.072 + 0.02)).abs() < 1e-12);
        assert_eq!(r.cpu_seconds_per_million_rows, Some(3600.0));
    }
}
