//! `build-features`: raw CSV files → staged and feature layers → master
//! table, splits, feature list, online snapshot, quarantine and reports.
//!
//! `build-features [FLAGS]` brings everything up to date with the raw
//! folder; `build-features backfill --from DATE --to DATE [FLAGS]` also
//! rebuilds that date range from its raw files.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use build_features::{Mode, Outputs};
use chrono::NaiveDate;
use clap::{Parser, Subcommand};
use revspend_core::params::{Check, Params};
use revspend_core::pseudonym::Pseudonymiser;

/// Parse raw bank files and build the master table (reads `build_features`
/// params; the pseudonymisation key comes from REVSPEND_PSEUDONYM_KEY, and
/// without it the stage stops unless `build_features.allow_development_key`
/// opts into the public development key).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    paths: Paths,
    /// Worker threads (default: available cores). Outputs do not depend on it.
    #[arg(long, global = true)]
    threads: Option<usize>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Re-stage every month overlapping FROM..=TO from the raw files and
    /// rebuild the feature layer from the first of those months on.
    Backfill {
        /// First day (YYYY-MM-DD); whole months are rebuilt.
        #[arg(long)]
        from: NaiveDate,
        /// Last day (YYYY-MM-DD).
        #[arg(long)]
        to: NaiveDate,
    },
}

/// Every input and output path.
#[derive(Debug, clap::Args)]
struct Paths {
    #[arg(long, global = true, default_value = "params.yaml")]
    params: PathBuf,
    /// Data-quality suite (YAML expectations the parsed rows must meet).
    #[arg(long, global = true, default_value = "config/quality.yaml")]
    quality_suite: PathBuf,
    /// The monitor's retrain request (JSON, e.g. `config/retrain.json`,
    /// which `dvc.yaml` passes; when given it must exist, with
    /// `"request": null` for none): a request moves the training period's
    /// end (`build_features.split.until`) later, never earlier, and not
    /// when it is null. Without the flag, no request.
    #[arg(long, global = true)]
    retrain_request: Option<PathBuf>,
    /// The staged layer (parquet by year/month; kept between runs).
    #[arg(long, global = true, default_value_os_t = Outputs::default().staged_dir)]
    staged_dir: PathBuf,
    /// The feature layer (parquet by year/month; kept between runs).
    #[arg(long, global = true, default_value_os_t = Outputs::default().features_dir)]
    features_dir: PathBuf,
    /// The master table, one parquet file per split:
    /// train/test/holdout/calibration.parquet.
    #[arg(long, global = true, default_value_os_t = Outputs::default().splits_dir)]
    splits_dir: PathBuf,
    #[arg(long, global = true, default_value_os_t = Outputs::default().feature_list)]
    feature_list: PathBuf,
    #[arg(long, global = true, default_value_os_t = Outputs::default().snapshot)]
    snapshot: PathBuf,
    #[arg(long, global = true, default_value_os_t = Outputs::default().quarantine)]
    quarantine: PathBuf,
    #[arg(long, global = true, default_value_os_t = Outputs::default().report)]
    report: PathBuf,
    #[arg(long, global = true, default_value_os_t = Outputs::default().leakage_report)]
    leakage_report: PathBuf,
    #[arg(long, global = true, default_value_os_t = Outputs::default().selection_report)]
    selection_report: PathBuf,
    /// Reference distribution profile of the train split (JSON).
    #[arg(long, global = true, default_value_os_t = Outputs::default().profile)]
    profile: PathBuf,
    #[arg(long, global = true, default_value_os_t = Outputs::default().quality_report)]
    quality_report: PathBuf,
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    if let Err(e) = run(Args::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<()> {
    let mode = match args.command {
        None => Mode::Update,
        Some(Command::Backfill { from, to }) => {
            if from > to {
                bail!("backfill: --from {from} is after --to {to}");
            }
            Mode::Backfill { from, to }
        }
    };
    let threads = args.threads;
    let args = args.paths;
    let params = Params::load(&args.params)?
        .build_features
        .check()
        .context("checking build_features params")?;
    let outputs = Outputs {
        staged_dir: args.staged_dir,
        features_dir: args.features_dir,
        splits_dir: args.splits_dir,
        feature_list: args.feature_list,
        snapshot: args.snapshot,
        quarantine: args.quarantine,
        report: args.report,
        leakage_report: args.leakage_report,
        selection_report: args.selection_report,
        profile: args.profile,
        quality_report: args.quality_report,
    };
    let suite = build_features::quality::load_suite(&args.quality_suite)?;
    let request = match &args.retrain_request {
        None => None,
        Some(path) => revspend_core::artifact::read_retrain_request(path).with_context(|| {
            format!(
                "reading the retrain request {} (--retrain-request)",
                path.display()
            )
        })?,
    };
    // The thread count is the pool's alone: every parallel step of the
    // stage runs on it (polars keeps its own pool for its own work).
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())))
        .thread_name(|i| format!("build-features-{i}"))
        .build()
        .context("starting the worker threads")?;
    let pseudo = Pseudonymiser::from_env(
        params.allow_development_key,
        &format!(
            "`build_features.allow_development_key: true` in {}",
            args.params.display()
        ),
    )?;
    let started = std::time::Instant::now();
    let report =
        pool.install(|| build_features::run(&params, &suite, &outputs, &pseudo, mode, request.as_ref()))?;
    log::info!(
        "{} rows in, {} out, {} quarantined; {} customers; target rate {:.2}% ({:.2?})",
        report.rows_in,
        report.rows_out,
        report.rows_quarantined,
        report.customers,
        100.0 * report.target_rate,
        started.elapsed()
    );
    Ok(())
}
