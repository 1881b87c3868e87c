//! `build-features`: raw CSV files → master table, splits, feature list,
//! online snapshot, quarantine and report.

use std::path::PathBuf;

use anyhow::{Context, Result};
use build_features::Outputs;
use clap::Parser;
use revspend_core::params::{Check, Params};
use revspend_core::pseudonym::Pseudonymiser;

/// Parse raw bank files and build the master table (reads `build_features`
/// params; the pseudonymisation key comes from REVSPEND_PSEUDONYM_KEY).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[arg(long, default_value = "params.yaml")]
    params: PathBuf,
    /// Data-quality suite (YAML expectations the parsed rows must meet).
    #[arg(long, default_value = "config/quality.yaml")]
    quality_suite: PathBuf,
    #[arg(long, default_value = "data/master/master.parquet")]
    master: PathBuf,
    /// Directory for train/test/holdout/calibration parquet files.
    #[arg(long, default_value = "data/splits")]
    splits_dir: PathBuf,
    #[arg(long, default_value = "data/features.json")]
    feature_list: PathBuf,
    #[arg(long, default_value = "data/online/snapshot.bin")]
    snapshot: PathBuf,
    #[arg(long, default_value = "data/quarantine.csv")]
    quarantine: PathBuf,
    #[arg(long, default_value = "reports/build_features.json")]
    report: PathBuf,
    #[arg(long, default_value = "reports/leakage.json")]
    leakage_report: PathBuf,
    #[arg(long, default_value = "reports/feature_selection.json")]
    selection_report: PathBuf,
    /// Reference distribution profile of the train split (JSON).
    #[arg(long, default_value = "data/profile/train.json")]
    profile: PathBuf,
    #[arg(long, default_value = "reports/quality.json")]
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
    let params = Params::load(&args.params)?
        .build_features
        .check()
        .context("checking build_features params")?;
    let outputs = Outputs {
        master: args.master,
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
    let started = std::time::Instant::now();
    let report = build_features::run(&params, &suite, &outputs, &Pseudonymiser::from_env())?;
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
