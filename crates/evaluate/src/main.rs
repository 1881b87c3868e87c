//! `evaluate`: scores the holdout split; writes metrics, curve data and plots.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Parser;
use evaluate::{Inputs, Outputs};
use revspend_core::params::{Check, Params};

/// Evaluate the model on the holdout split (reads the `evaluate` params).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[arg(long, default_value = "params.yaml")]
    params: PathBuf,
    #[arg(long, default_value_os_t = Inputs::under(Path::new("")).model)]
    model: PathBuf,
    #[arg(long, default_value_os_t = Inputs::under(Path::new("")).holdout)]
    holdout: PathBuf,
    /// The train split the model was trained on (the learning curve refits
    /// on it; its SHA-256 must be the model's data hash).
    #[arg(long, default_value_os_t = Inputs::under(Path::new("")).train)]
    train: PathBuf,
    /// The feature list of the build-features run the holdout comes from
    /// (it records each split's SHA-256).
    #[arg(long, default_value_os_t = Inputs::under(Path::new("")).feature_list)]
    feature_list: PathBuf,
    /// The model registry: its `production` model is the champion; `none`
    /// for no registry.
    #[arg(long, default_value = "models/registry")]
    registry: PathBuf,
    #[arg(long, default_value_os_t = Outputs::under(Path::new("")).metrics)]
    metrics: PathBuf,
    #[arg(long, default_value_os_t = Outputs::under(Path::new("")).promotion)]
    promotion: PathBuf,
    #[arg(long, default_value_os_t = Outputs::under(Path::new("")).competition)]
    competition: PathBuf,
    #[arg(long, default_value_os_t = Outputs::under(Path::new("")).plots_dir)]
    plots_dir: PathBuf,
    /// The self-contained HTML page of the whole evaluation.
    #[arg(long, default_value_os_t = Outputs::under(Path::new("")).page)]
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
        .evaluate
        .check()
        .context("checking evaluate params")?;
    let inputs = Inputs {
        model: args.model,
        holdout: args.holdout,
        train: args.train,
        feature_list: args.feature_list,
        registry: (args.registry.as_os_str() != "none").then_some(args.registry),
    };
    let outputs = Outputs {
        metrics: args.metrics,
        promotion: args.promotion,
        competition: args.competition,
        plots_dir: args.plots_dir,
        page: args.page,
    };
    let r = evaluate::run(&params, &inputs, &outputs)?;
    log::info!(
        "holdout ({} rows, prevalence {:.2}%): PR-AUC {:.4} (prior {:.4}), ROC-AUC {:.4}, Brier {:.5} (prior {:.5}), ECE {:.4} ({} calibration; before {:.4}), F1 {:.4}",
        r.rows,
        100.0 * r.prevalence,
        r.model.pr_auc,
        r.baseline_prior.pr_auc,
        r.model.roc_auc,
        r.model.brier,
        r.baseline_prior.brier,
        r.model.ece,
        r.calibration,
        r.model_uncalibrated.ece,
        r.model.f1
    );
    Ok(())
}
