//! `monitor`: compares the newest data windows and the server's prediction
//! log with the training reference, and acts on what it finds.
//!
//! Reads the train split's profile (`data/profile/train.json`), the feature
//! layer one month partition at a time, the test split (scored by the
//! production model: the reference of prediction drift and of the
//! performance bands), the registry (what is in production, what was
//! before, the challengers the alarms name), the prediction log, the stage
//! run log and the registry's experiment log (compute cost), and the alarm
//! file (`config/alarms.yaml`). Writes `reports/monitor.json`, plots and
//! their data, an HTML page and a Prometheus text file; with `--act`, moves
//! registry aliases and writes the retrain request (`config/retrain.json`).
//!
//! The phases, in [`run`]: the reference → the windows (scan and assemble)
//! → the prediction log → compute cost → alarms → actions → reports.
//!
//! The statistics live in their own modules: [`drift`] (per-feature tests
//! on binned counts) over [`window`] (a window streamed into the reference
//! bins), [`performance`] (CBPE estimates, realised metrics, bands),
//! [`value`] (business value), [`alarms`] (the alarm file and its
//! evaluation) and [`actions`] (what the alarms do through the registry).

pub mod actions;
pub mod alarms;
pub mod drift;
pub mod performance;
pub mod value;
pub mod window;

mod assemble;
mod cost;
mod data_drift;
mod page;
mod plots;
mod predlog;
mod report;
mod scan;
mod scores;
mod windows;

use std::path::PathBuf;

use anyhow::{Context, Result};
use chrono::NaiveDate;
use revspend_core::artifact::{self, FeatureList, run_output};
use revspend_core::params::{Checked, MonitorParams};
use revspend_core::profile::Profile;
use revspend_core::registry::Registry;

pub use assemble::{OtherModel, WindowReport};
pub use report::MonitorReport;

use crate::actions::{ActionContext, Mode};
use crate::alarms::{AlarmFile, Rule};
use crate::assemble::ProductionReference;
use crate::scan::Scorer;
use crate::scores::ScoreBins;
use crate::value::ValueRates;

/// What the stage reads.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub profile: PathBuf,
    pub features_dir: PathBuf,
    pub test: PathBuf,
    pub feature_list: PathBuf,
    /// build-features' report: the training period's end.
    pub build_report: PathBuf,
    /// evaluate's promotion decision (the last gate verdict, shown with
    /// what is in production).
    pub promotion: PathBuf,
    pub registry: PathBuf,
    /// The alias monitored (`production`).
    pub alias: String,
    pub alarms: PathBuf,
    pub retrain_request: PathBuf,
    /// The server's prediction log directory (absent: no serving section).
    pub prediction_log: Option<PathBuf>,
    /// The stage run log `scripts/stage` appends to (absent: no stage costs
    /// besides train's experiment log).
    pub stage_runs: Option<PathBuf>,
    /// A scrape of the server's `/metrics` (absent: no serving cost).
    pub serve_metrics: Option<PathBuf>,
    /// Days monitored, overriding params (`--from`, `--to`).
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
}

/// What the stage writes.
#[derive(Debug, Clone)]
pub struct Outputs {
    pub report: PathBuf,
    pub plots_dir: PathBuf,
    pub prometheus: PathBuf,
    pub page: PathBuf,
}

/// Whether the alarms' actions are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    pub act: bool,
}

/// Test-split chunks are scored into this many score bins (deciles).
const SCORE_BINS: usize = 10;

/// Runs the monitor.
pub fn run(
    params: &Checked<MonitorParams>,
    inputs: &Inputs,
    outputs: &Outputs,
    options: Options,
) -> Result<MonitorReport> {
    // The reference: profile, production (and the models it is compared
    // with), the test split scored.
    let list = FeatureList::read(&inputs.feature_list).context("reading the feature list")?;
    let profile_sha = artifact::file_sha256(&inputs.profile)?;
    list.verify_output(
        &inputs.feature_list,
        run_output::PROFILE,
        &inputs.profile,
        &profile_sha,
    )?;
    let profile: Profile = artifact::read_json(&inputs.profile).context("reading the reference profile")?;
    let alarm_file = AlarmFile::read(&inputs.alarms)?;
    let gate = report::GateSummary::read(&inputs.promotion)?;
    let registry = Registry::new(&inputs.registry);
    let production = registry.load(&inputs.alias).with_context(|| {
        format!(
            "loading `{}` from the registry {}",
            inputs.alias,
            inputs.registry.display()
        )
    })?;
    let mut others: Vec<(OtherModel, revspend_core::registry::LoadedVersion)> = Vec::new();
    let index = registry.index()?;
    let history = index.alias_history(&inputs.alias);
    if let Some(previous) = history.len().checked_sub(2).and_then(|i| history.get(i)) {
        let loaded = registry.load(previous)?;
        others.push((other("previous", &loaded), loaded));
    }
    for alarm in &alarm_file.alarms {
        if let Rule::Challenger { challenger, .. } = &alarm.rule {
            let role = format!("challenger.{challenger}");
            if others.iter().any(|(o, _)| o.role == role) {
                continue;
            }
            let loaded = registry
                .load(challenger)
                .with_context(|| format!("loading challenger `{challenger}` (alarm `{}`)", alarm.name))?;
            others.push((other(&role, &loaded), loaded));
        }
    }
    let model = &production.model;
    let features: Vec<String> = model.features.iter().map(|f| f.name().to_owned()).collect();
    let (test, test_sha) = revspend_table::read_labelled_hashed(&inputs.test, &model.features)
        .with_context(|| format!("reading the test split {}", inputs.test.display()))?;
    list.verify_output(
        &inputs.feature_list,
        &run_output::split("test"),
        &inputs.test,
        &test_sha,
    )?;
    let reference_note = (list.run_outputs.get(&run_output::split("train"))
        != Some(&production.entry.data_hash))
    .then(|| {
        format!(
            "{} ({}) was trained on another build-features run than the reference: the test split may hold \
                 customers it was trained on, so its reference performance may be optimistic",
            production.entry.version, production.entry.model_version
        )
    });
    let test_scores = model.predict_proba(&test.x).context("scoring the test split")?;
    let score_bins = ScoreBins::from_reference(&test_scores, model.threshold, SCORE_BINS)
        .context("the test split is empty")?;
    let chunking = performance::Chunking::Count(params.performance.reference_chunks);
    let performance_reference = performance::fit_reference(
        &test_scores,
        &test.y,
        model.threshold,
        chunking,
        performance::DEFAULT_STD_MULTIPLIER,
    )
    .context("the performance reference (test split chunks)")?;
    let test_positive_rate = test.y.iter().filter(|&&y| y).count() as f64 / test.y.len().max(1) as f64;
    let test_rows = test.y.len();
    drop(test);
    let reference = ProductionReference {
        profile: &profile,
        scores: &score_bins,
        performance: &performance_reference,
        threshold: model.threshold,
        test_pr_auc: model.test_metrics.pr_auc,
        test_positive_rate,
    };
    let v = &params.value;
    let rates = ValueRates::new(v.true_positive, v.false_positive, v.false_negative)?;

    // The windows.
    let layer = revspend_table::layer::open_feature_layer(&inputs.features_dir)?;
    let (training_end, data_last_day) = training_period(&inputs.build_report)?;
    let selection = windows::select(
        inputs.from.or(params.from),
        inputs.to.or(params.to),
        params.last,
        training_end,
        data_last_day,
    );
    let mut scorers = vec![Scorer {
        label: format!("{} ({})", production.entry.version, inputs.alias),
        model,
    }];
    scorers.extend(others.iter().map(|(o, l)| Scorer {
        label: format!("{} ({})", o.version, o.role),
        model: &l.model,
    }));
    let started = std::time::Instant::now();
    let scanned = scan::scan(
        &layer,
        params.period,
        &selection,
        &model.features,
        &profile,
        &scorers,
    )?;
    let other_models: Vec<OtherModel> = others.iter().map(|(o, _)| o.clone()).collect();
    let windows = scanned
        .windows
        .iter()
        .map(|w| assemble::window_report(params, &reference, &rates, &features, &other_models, w))
        .collect::<Result<Vec<_>>>()?;
    if windows.is_empty() {
        log::warn!(
            "no feature-layer rows in the monitored days ({})",
            selection.reason
        );
    }
    let scan_seconds = started.elapsed().as_secs_f64();

    // The prediction log.
    let serving = match &inputs.prediction_log {
        Some(dir) if dir.exists() => Some(predlog::summarise(
            dir,
            params,
            &score_bins,
            &performance_reference,
            &production.entry.model_version,
            &rates,
        )?),
        _ => None,
    };

    // Compute cost.
    let cost = cost::collect(
        &params.cost,
        &registry,
        inputs.stage_runs.as_deref(),
        inputs.serve_metrics.as_deref(),
    )?;

    // Alarms and actions.
    let views: Vec<_> = windows.iter().map(WindowReport::alarm_view).collect();
    let mut evaluation = alarms::evaluate(&alarm_file, &views);
    if let Some(s) = &serving {
        let serving_views: Vec<_> = s.windows.iter().map(predlog::ServingWindow::alarm_view).collect();
        let more = alarms::evaluate(&alarm_file, &serving_views);
        evaluation.findings.extend(more.findings);
    }
    let mut ctx = ActionContext::new(&registry, &inputs.retrain_request);
    ctx.alias = inputs.alias.clone();
    ctx.mode = if options.act { Mode::Act } else { Mode::DryRun };
    let actions = actions::run(&alarm_file, &evaluation.findings, &ctx)?;

    let report = MonitorReport {
        version: report::REPORT_VERSION,
        alias: inputs.alias.clone(),
        production: other("production", &production),
        gate,
        others: other_models,
        reference: report::ReferenceSummary {
            profile_rows: profile.rows,
            test_rows,
            test_positive_rate,
            test_pr_auc: model.test_metrics.pr_auc,
            threshold: model.threshold,
            note: reference_note,
        },
        period: params.period,
        selection,
        training_end,
        partitions_read: scanned.partitions,
        rows_read: scanned.rows_read,
        value_currency: params.value.currency.clone(),
        windows,
        serving,
        cost,
        alarms: evaluation,
        actions,
    };
    log::info!("scanned {} rows in {scan_seconds:.2} s", report.rows_read);
    report::write(&report, outputs)?;
    Ok(report)
}

fn other(role: &str, loaded: &revspend_core::registry::LoadedVersion) -> OtherModel {
    OtherModel {
        role: role.to_owned(),
        version: loaded.entry.version.clone(),
        model_version: loaded.entry.model_version.clone(),
        threshold: loaded.model.threshold,
    }
}

/// The training period's last day and the data's last purchase date, from
/// build-features' report: the period ends at `split.until` (or a retrain
/// request's date) when there is one, else at the last purchase (every row
/// was in the splits).
fn training_period(path: &std::path::Path) -> Result<(Option<NaiveDate>, Option<NaiveDate>)> {
    let report: serde_json::Value = artifact::read_json(path)
        .with_context(|| format!("reading build-features' report {}", path.display()))?;
    let date = |v: Option<&serde_json::Value>| -> Result<Option<NaiveDate>> {
        match v.and_then(serde_json::Value::as_str) {
            None => Ok(None),
            Some(text) => NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map(Some)
                .with_context(|| format!("{}: `{text}` is not a yyyy-mm-dd date", path.display())),
        }
    };
    let last = date(report.get("date_max"))?.with_context(|| format!("{}: no date_max", path.display()))?;
    let until = date(report.pointer("/training_period/until"))?;
    Ok((Some(until.map_or(last, |u| u.min(last))), Some(last)))
}
