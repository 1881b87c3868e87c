//! `registry`: list, show, promote and roll back model versions; print the
//! experiment log and the online experiment report.

use std::path::PathBuf;

use anyhow::Result;
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use registry::experiment_report;
use revspend_core::registry::{PRODUCTION, Registry};

/// The model registry (`models/registry`) written by `train`.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Registry directory.
    #[arg(
        long,
        env = "REVSPEND_REGISTRY",
        default_value = "models/registry",
        global = true
    )]
    registry: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Every version, oldest first, with its aliases and test metrics.
    List,
    /// One version (by id or alias) as JSON.
    Show { name: String },
    /// Point an alias (default `production`) at a version or at what
    /// another alias points to. The version's file is checked first (present,
    /// valid, the SHA-256 and model version registered); if it fails, the
    /// alias is left unchanged.
    Promote {
        name: String,
        #[arg(long, default_value = PRODUCTION)]
        alias: String,
    },
    /// Point an alias (default `production`) back at its previous version,
    /// checked like `promote`.
    Rollback {
        #[arg(long, default_value = PRODUCTION)]
        alias: String,
    },
    /// The alias change log: `who` is the claimed name (REVSPEND_USER),
    /// `os_user` the account that ran the command.
    Log,
    /// The experiment log as a table, oldest first.
    Experiments,
    /// How an online experiment is going, per variant, from the server's
    /// prediction log: traffic, realised precision and recall, mean reward
    /// with a 95% interval, shadow agreement, Welch's t-test against the
    /// control, allocation over time and (with --bandit-state) the bandit.
    ExperimentReport {
        /// The prediction log directory (`serve --prediction-log`).
        #[arg(long)]
        log: PathBuf,
        /// Experiment id (default: the most recent prediction's).
        #[arg(long)]
        experiment: Option<String>,
        /// Records at or after this time (RFC 3339, or YYYY-MM-DD for
        /// 00:00 UTC).
        #[arg(long, value_parser = parse_time)]
        from: Option<DateTime<Utc>>,
        /// Records before this time (RFC 3339, or YYYY-MM-DD for 00:00 UTC:
        /// that day is excluded).
        #[arg(long, value_parser = parse_time)]
        until: Option<DateTime<Utc>>,
        /// The bandit's state file, for the bandit section.
        #[arg(long)]
        bandit_state: Option<PathBuf>,
        /// Also write the report as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, experiment_report::ReportError> {
    experiment_report::parse_time(text)
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<()> {
    let reg = Registry::new(&args.registry);
    let out = match args.command {
        Command::List => registry::list(&reg)?,
        Command::Show { name } => registry::show(&reg, &name)?,
        Command::Promote { name, alias } => registry::promote(&reg, &name, &alias)?,
        Command::Rollback { alias } => registry::rollback(&reg, &alias)?,
        Command::Log => registry::alias_log(&reg)?,
        Command::Experiments => registry::experiments(&reg)?,
        Command::ExperimentReport {
            log,
            experiment,
            from,
            until,
            bandit_state,
            json,
        } => {
            let opts = experiment_report::Options {
                log_dir: log,
                experiment,
                from,
                until,
                bandit_state,
            };
            let (text, warnings) = experiment_report::command(&opts, json.as_deref())?;
            for w in warnings {
                eprintln!("warning: {w}");
            }
            text
        }
    };
    print!("{out}");
    Ok(())
}
