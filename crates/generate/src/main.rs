//! `generate`: writes seeded raw CSV files in the data-contract format.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use revspend_core::params::{Check, GenerateParams};

/// Write synthetic raw bank files (cp1252, `;`, Brazilian amounts).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Params file; only its `generate` section is read, so a file holding
    /// that section alone (config/scenarios/*.yaml) will do.
    #[arg(long, default_value = "params.yaml")]
    params: PathBuf,
    /// Directory the CSV files are written to (its old *.csv are replaced).
    #[arg(long, default_value = generate::RAW_DIR)]
    out_dir: PathBuf,
    /// Override `generate.rows` (e.g. for benchmarks).
    #[arg(long)]
    rows: Option<u64>,
    /// Override `generate.customers`.
    #[arg(long)]
    customers: Option<u64>,
    /// Override `generate.files` (the rows are cut into this many daily files).
    #[arg(long)]
    files: Option<u32>,
    /// Override `generate.days`.
    #[arg(long)]
    days: Option<u32>,
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    if let Err(e) = run(Args::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<()> {
    let mut p = GenerateParams::load(&args.params)?;
    if let Some(rows) = args.rows {
        p.rows = rows;
    }
    if let Some(customers) = args.customers {
        p.customers = customers;
    }
    if let Some(files) = args.files {
        p.files = files;
    }
    if let Some(days) = args.days {
        p.days = days;
    }
    let p = p.check().context("checking generate params")?;
    let started = std::time::Instant::now();
    let summary = generate::run(&p, &args.out_dir)?;
    log::info!(
        "wrote {} rows for {} customers into {} files in {} in {:.2?}",
        summary.rows,
        summary.customers,
        summary.files.len(),
        args.out_dir.display(),
        started.elapsed()
    );
    Ok(())
}
