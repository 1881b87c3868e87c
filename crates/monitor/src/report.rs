//! `reports/monitor.json`, the Prometheus text file, and (through
//! [`crate::plots`] and [`crate::page`]) the plots and the page.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::{Context, Result};
use chrono::NaiveDate;
use revspend_core::artifact;
use revspend_core::params::Period;
use serde::Serialize;

use crate::Outputs;
use crate::actions::ActionReport;
use crate::alarms::Evaluation;
use crate::assemble::{OtherModel, WindowReport};
use crate::cost::CostReport;
use crate::predlog::ServingReport;
use crate::windows::Selection;

/// Version of `reports/monitor.json`'s layout.
pub const REPORT_VERSION: u32 = 1;

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct MonitorReport {
    pub version: u32,
    pub alias: String,
    pub production: OtherModel,
    /// The promotion gate's last verdict (evaluate's promotion report).
    pub gate: GateSummary,
    /// The models scored besides production (its previous version, the
    /// challengers the alarms name).
    pub others: Vec<OtherModel>,
    pub reference: ReferenceSummary,
    pub period: Period,
    pub selection: Selection,
    pub training_end: Option<NaiveDate>,
    pub partitions_read: usize,
    pub rows_read: u64,
    /// The currency of every value figure (`monitor.value.currency`).
    pub value_currency: String,
    pub windows: Vec<WindowReport>,
    pub serving: Option<ServingReport>,
    pub cost: CostReport,
    pub alarms: Evaluation,
    pub actions: ActionReport,
}

/// What the windows are compared with.
#[derive(Debug, Clone, Serialize)]
pub struct ReferenceSummary {
    pub profile_rows: u64,
    pub test_rows: usize,
    pub test_positive_rate: f64,
    /// Production's PR-AUC on the test split, recorded at training.
    pub test_pr_auc: f64,
    pub threshold: f64,
    pub note: Option<String>,
}

/// The promotion gate's last verdict, as evaluate recorded it.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct GateSummary {
    pub candidate_version: Option<String>,
    pub candidate_model_version: Option<String>,
    pub decision: String,
    pub reason: String,
    pub mode: String,
    pub promoted: bool,
}

impl GateSummary {
    /// Reads the fields it needs from evaluate's promotion report.
    pub fn read(path: &std::path::Path) -> Result<GateSummary> {
        artifact::read_json(path)
            .with_context(|| format!("reading the promotion decision {}", path.display()))
    }
}

/// Writes every output.
pub fn write(report: &MonitorReport, outputs: &Outputs) -> Result<()> {
    artifact::write_json(&outputs.report, report)
        .with_context(|| format!("writing {}", outputs.report.display()))?;
    artifact::write_atomic(&outputs.prometheus, prometheus(report).as_bytes())
        .with_context(|| format!("writing {}", outputs.prometheus.display()))?;
    crate::plots::write(report, &outputs.plots_dir)?;
    crate::page::write(report, &outputs.plots_dir, &outputs.page)?;
    Ok(())
}

/// The newest window's figures, the alarms that fired and the cost, in the
/// Prometheus text format for node_exporter's textfile collector. A metric
/// named `<kind>.<feature>` becomes `revspend_monitor_<kind>{feature="…"}`.
pub fn prometheus(report: &MonitorReport) -> String {
    let mut families: BTreeMap<String, Vec<(String, f64)>> = BTreeMap::new();
    if let Some(w) = report.windows.last() {
        let window = escape(&w.window);
        for (name, value) in &w.metrics {
            let (family, labels) = match name.split_once('.') {
                Some((kind @ ("psi" | "drift" | "drift_score"), feature))
                    if feature != "share" && feature != "dataset" =>
                {
                    (
                        kind.to_owned(),
                        format!("window=\"{window}\",feature=\"{}\"", escape(feature)),
                    )
                }
                _ => (name.replace(['.', '-'], "_"), format!("window=\"{window}\"")),
            };
            families
                .entry(format!("revspend_monitor_{family}"))
                .or_default()
                .push((labels, *value));
        }
        families
            .entry("revspend_monitor_window_rows".into())
            .or_default()
            .push((format!("window=\"{window}\""), w.rows as f64));
    }
    for f in &report.alarms.findings {
        families
            .entry("revspend_monitor_alarm_firing".into())
            .or_default()
            .push((
                format!(
                    "alarm=\"{}\",window=\"{}\",metric=\"{}\",severity=\"{}\",action=\"{}\"",
                    escape(&f.alarm),
                    escape(&f.window),
                    escape(&f.metric),
                    f.severity.name(),
                    f.action.name()
                ),
                1.0,
            ));
    }
    for s in &report.cost.stages {
        if let Some(last) = &s.last {
            let stage = escape(&s.stage);
            for (name, value) in [
                ("stage_wall_seconds", Some(last.wall_seconds)),
                ("stage_cpu_seconds", last.cpu_seconds),
                ("stage_peak_rss_megabytes", last.peak_rss_mb),
                ("stage_cost", last.cost),
            ] {
                if let Some(v) = value {
                    families
                        .entry(format!("revspend_monitor_{name}"))
                        .or_default()
                        .push((format!("stage=\"{stage}\""), v));
                }
            }
        }
    }
    let mut out = String::new();
    for (family, samples) in families {
        let _ = writeln!(out, "# TYPE {family} gauge");
        for (labels, value) in samples {
            let _ = writeln!(out, "{family}{{{labels}}} {value}");
        }
    }
    out
}

fn escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
