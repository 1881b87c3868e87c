//! `monitor`: drift, performance, cost and value of the production model
//! on the newest data windows and the prediction log; alarms and actions.

use std::path::PathBuf;

use anyhow::{Context, Result};
use chrono::NaiveDate;
use clap::Parser;
use monitor::{Inputs, Options, Outputs};
use revspend_core::params::{Check, Params};

/// Monitor the production model (reads the `monitor` params). Dry-run by
/// default: the alarms' actions are reported, not taken, unless `--act`.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[arg(long, default_value = "params.yaml")]
    params: PathBuf,
    /// The train split's profile: the drift reference.
    #[arg(long, default_value = "data/profile/train.json")]
    profile: PathBuf,
    #[arg(long, default_value = "data/features")]
    features_dir: PathBuf,
    /// The test split, scored by production: the reference of prediction
    /// drift and of the performance bands.
    #[arg(long, default_value = "data/splits/test.parquet")]
    test: PathBuf,
    #[arg(long, default_value = "data/features.json")]
    feature_list: PathBuf,
    /// build-features' report (the training period's end).
    #[arg(long, default_value = "reports/build_features.json")]
    build_report: PathBuf,
    /// evaluate's promotion decision.
    #[arg(long, default_value = "reports/promotion.json")]
    promotion: PathBuf,
    #[arg(long, default_value = "models/registry")]
    registry: PathBuf,
    /// The registry alias monitored, rolled back and promoted.
    #[arg(long, default_value = "production")]
    alias: String,
    #[arg(long, default_value = "config/alarms.yaml")]
    alarms: PathBuf,
    /// Where a `retrain` action writes its request (build-features reads it).
    #[arg(long, default_value = "config/retrain.json")]
    retrain_request: PathBuf,
    /// The server's prediction log (`none`: no serving section).
    #[arg(long, default_value = "logs/predictions")]
    prediction_log: PathBuf,
    /// The stage run log `scripts/stage` appends to (`none`: none).
    #[arg(long, default_value = "logs/stage-runs.jsonl")]
    stage_runs: PathBuf,
    /// A saved scrape of the server's /metrics, for serving cost.
    #[arg(long)]
    serve_metrics: Option<PathBuf>,
    /// First and last day monitored (yyyy-mm-dd), overriding params.
    #[arg(long)]
    from: Option<NaiveDate>,
    #[arg(long)]
    to: Option<NaiveDate>,
    /// Take the alarms' actions (rollback, promote, retrain request).
    #[arg(long)]
    act: bool,
    #[arg(long, default_value = "reports/monitor.json")]
    report: PathBuf,
    #[arg(long, default_value = "reports/monitor")]
    plots_dir: PathBuf,
    #[arg(long, default_value = "reports/monitor.prom")]
    prometheus: PathBuf,
    #[arg(long, default_value = "reports/monitor.html")]
    page: PathBuf,
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    if let Err(e) = run(Args::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<()> {
    let params = Params::load(&args.params)?
        .monitor
        .with_context(|| format!("{} has no `monitor` section", args.params.display()))?
        .check()
        .context("checking monitor params")?;
    let optional = |p: PathBuf| (p.as_os_str() != "none").then_some(p);
    let inputs = Inputs {
        profile: args.profile,
        features_dir: args.features_dir,
        test: args.test,
        feature_list: args.feature_list,
        build_report: args.build_report,
        promotion: args.promotion,
        registry: args.registry,
        alias: args.alias,
        alarms: args.alarms,
        retrain_request: args.retrain_request,
        prediction_log: optional(args.prediction_log),
        stage_runs: optional(args.stage_runs),
        serve_metrics: args.serve_metrics,
        from: args.from,
        to: args.to,
    };
    let outputs = Outputs {
        report: args.report,
        plots_dir: args.plots_dir,
        prometheus: args.prometheus,
        page: args.page,
    };
    let r = monitor::run(&params, &inputs, &outputs, Options { act: args.act })?;
    for w in &r.windows {
        log::info!(
            "window {} ({} rows): drifted {} of {} features{}",
            w.window,
            w.rows,
            w.drifted_features.len(),
            w.features.iter().filter(|f| f.test.is_some()).count(),
            if w.drifted_features.is_empty() {
                String::new()
            } else {
                format!(" ({})", w.drifted_features.join(", "))
            }
        );
    }
    for f in &r.alarms.findings {
        log::warn!("alarm {}: {}", f.alarm, f.message);
    }
    Ok(())
}
