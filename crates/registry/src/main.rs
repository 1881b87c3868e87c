//! `registry`: list, show, promote and roll back model versions; print the
//! experiment log.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};
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
    };
    print!("{out}");
    Ok(())
}
