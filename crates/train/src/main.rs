//! `train`: fits the model on the train split and writes the artifact.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use revspend_core::params::{Check, Params};
use train::{Inputs, Outputs};

/// Fit the revenge-spending model (reads the `train` params section).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[arg(long, default_value = "params.yaml")]
    params: PathBuf,
    #[arg(long, default_value = "data/splits/train.parquet")]
    train: PathBuf,
    /// Split the decision threshold is chosen on.
    #[arg(long, default_value = "data/splits/test.parquet")]
    test: PathBuf,
    #[arg(long, default_value = "data/features.json")]
    feature_list: PathBuf,
    #[arg(long, default_value = "models/model.bin")]
    model: PathBuf,
    #[arg(long, default_value = "reports/train.json")]
    report: PathBuf,
    /// Worker threads for tree fitting (default: available cores). The
    /// model does not depend on it.
    #[arg(long)]
    threads: Option<usize>,
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
        .train
        .check()
        .context("checking train params")?;
    let inputs = Inputs {
        train: args.train,
        test: args.test,
        feature_list: args.feature_list,
    };
    let outputs = Outputs {
        model: args.model,
        report: args.report,
    };
    let threads = args.threads.unwrap_or_else(train::default_threads);
    let report = train::run(&params, &inputs, &outputs, threads)?;
    log::info!(
        "model {}: test PR-AUC {:.4}, ROC-AUC {:.4}, F1 {:.4} at threshold {:.3} ({})",
        report.model_version,
        report.test_metrics.pr_auc,
        report.test_metrics.roc_auc,
        report.test_metrics.f1,
        report.threshold,
        report.threshold_source
    );
    Ok(())
}
