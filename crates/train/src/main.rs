//! `train`: selects, fits, calibrates and registers the model; `train
//! fit-once` times one fit (for benchmarks).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use revspend_core::params::{Algorithm, Check, Params};
use train::{Inputs, Outputs};

/// Select and fit the revenge-spending model (reads the `train` params section).
#[derive(Debug, Parser)]
#[command(version, args_conflicts_with_subcommands = true)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    #[arg(long, default_value = "params.yaml")]
    params: PathBuf,
    #[arg(long, default_value_os_t = Inputs::under(Path::new("")).train)]
    train: PathBuf,
    /// Split the calibrator and the decision threshold are chosen on.
    #[arg(long, default_value_os_t = Inputs::under(Path::new("")).test)]
    test: PathBuf,
    /// Split the calibrators are fitted on.
    #[arg(long, default_value_os_t = Inputs::under(Path::new("")).calibration)]
    calibration: PathBuf,
    #[arg(long, default_value_os_t = Inputs::under(Path::new("")).feature_list)]
    feature_list: PathBuf,
    #[arg(long, default_value_os_t = Outputs::under(Path::new("")).model)]
    model: PathBuf,
    #[arg(long, default_value_os_t = Outputs::under(Path::new("")).report)]
    report: PathBuf,
    /// Every search trial (fold scores, mean, std, params).
    #[arg(long, default_value_os_t = Outputs::under(Path::new("")).search)]
    search_report: PathBuf,
    /// Registry the model is registered in (with the experiment log).
    #[arg(long, default_value_os_t = default_registry())]
    registry: PathBuf,
    /// Do not register the model nor log the experiment.
    #[arg(long)]
    no_register: bool,
    /// Worker threads (default: available cores). The model does not
    /// depend on it.
    #[arg(long)]
    threads: Option<usize>,
}

fn default_registry() -> PathBuf {
    Outputs::under(Path::new("")).registry.unwrap_or_default()
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Fit one algorithm's default configuration (the first value of each
    /// search list) once on the whole train split, timed; print JSON.
    FitOnce(FitOnceArgs),
}

#[derive(Debug, clap::Args)]
struct FitOnceArgs {
    #[arg(long, value_enum, default_value = "gbm")]
    algorithm: AlgorithmArg,
    #[arg(long, default_value = "params.yaml")]
    params: PathBuf,
    #[arg(long, default_value_os_t = Inputs::under(Path::new("")).train)]
    train: PathBuf,
    #[arg(long, default_value_os_t = Inputs::under(Path::new("")).calibration)]
    calibration: PathBuf,
    #[arg(long, default_value_os_t = Inputs::holdout_under(Path::new("")))]
    holdout: PathBuf,
    #[arg(long, default_value_os_t = Inputs::under(Path::new("")).feature_list)]
    feature_list: PathBuf,
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum AlgorithmArg {
    Prior,
    Logistic,
    NaiveBayes,
    Tree,
    Forest,
    Gbm,
}

impl From<AlgorithmArg> for Algorithm {
    fn from(a: AlgorithmArg) -> Algorithm {
        match a {
            AlgorithmArg::Prior => Algorithm::Prior,
            AlgorithmArg::Logistic => Algorithm::Logistic,
            AlgorithmArg::NaiveBayes => Algorithm::NaiveBayes,
            AlgorithmArg::Tree => Algorithm::Tree,
            AlgorithmArg::Forest => Algorithm::Forest,
            AlgorithmArg::Gbm => Algorithm::Gbm,
        }
    }
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    if let Err(e) = run(Args::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<()> {
    if let Some(Command::FitOnce(a)) = args.command {
        return fit_once(a);
    }
    let params = Params::load(&args.params)?
        .train
        .check()
        .context("checking train params")?;
    let inputs = Inputs {
        train: args.train,
        test: args.test,
        calibration: args.calibration,
        feature_list: args.feature_list,
    };
    let outputs = Outputs {
        model: args.model,
        report: args.report,
        search: args.search_report,
        registry: (!args.no_register).then_some(args.registry),
    };
    let threads = args.threads.unwrap_or_else(train::default_threads);
    let result = train::run(&params, &inputs, &outputs, threads)?;
    let r = &result.report;
    log::info!(
        "model {} ({}, {} calibration): test PR-AUC {:.4}, ROC-AUC {:.4}, Brier {:.5}, ECE {:.4}, F1 {:.4} at threshold {:.3} ({})",
        r.model_version,
        r.algorithm,
        r.calibration,
        r.test_metrics.pr_auc,
        r.test_metrics.roc_auc,
        r.test_metrics.brier,
        r.test_metrics.ece,
        r.test_metrics.f1,
        r.threshold,
        r.threshold_source
    );
    let timings: Vec<String> = result
        .timings
        .iter()
        .map(|(k, v)| format!("{k} {v:.2} s"))
        .collect();
    log::info!("timings: {}", timings.join(", "));
    Ok(())
}

fn fit_once(a: FitOnceArgs) -> Result<()> {
    let params = Params::load(&a.params)?
        .train
        .check()
        .context("checking train params")?;
    let threads = a.threads.unwrap_or_else(train::default_threads);
    let out = train::fit_once(
        &params,
        a.algorithm.into(),
        &a.train,
        &a.calibration,
        &a.holdout,
        &a.feature_list,
        threads,
    )?;
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
