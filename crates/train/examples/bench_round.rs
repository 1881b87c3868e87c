//! Benchmark of one GBM boosting round: warm-up rounds, then the median (and
//! spread) of N timed rounds of the default GBM configuration (the first
//! value of each `train.search.gbm` list in the params file).
//!
//! The criterion benchmark `benches/round.rs` times the same round on the
//! same synthetic data; this example also runs on a pipeline's real split,
//! breaks the round into phases and prints a model fingerprint (warm-up,
//! median of N, no timed asserts anywhere).
//!
//! Build it with the whole workspace (`-p train` alone would resolve other
//! features and rebuild polars), then run it on the train split of a
//! `build-features` run (what `scripts/bench-train.sh` builds; `KEEP=DIR`
//! there keeps it):
//!
//!     cargo build --offline --workspace --all-targets
//!     target/debug/examples/bench_round --data DIR
//!
//! or on seeded synthetic data of the same shape (no files needed):
//!
//!     target/debug/examples/bench_round --synthetic 600000
//!
//! Boosting runs on the rows outside the early-stopping slice, so a 1M-row
//! `bench-train.sh` input (599k train rows) boosts about 540k rows × 24
//! features per round. Besides the median it prints the CPU time of all
//! threads per round (steadier than wall time when the machine is shared)
//! and where the rounds spent their time.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Parser;
use revspend_core::artifact::FeatureList;
use revspend_core::params::{Algorithm, Check, ModelSpec, Params};

#[path = "../benches/synthetic/mod.rs"]
mod synthetic;
use synthetic::synthetic;

#[derive(Debug, Parser)]
struct Args {
    /// A pipeline directory holding `data/features.json` and
    /// `data/splits/train.parquet`.
    #[arg(long, conflicts_with = "synthetic")]
    data: Option<PathBuf>,
    /// Seeded synthetic rows (24 features) instead of a pipeline directory.
    #[arg(long)]
    synthetic: Option<usize>,
    /// Params file whose default GBM configuration is timed.
    #[arg(long, default_value = "params.yaml")]
    params: PathBuf,
    /// Rounds run before timing starts.
    #[arg(long, default_value_t = 5)]
    warmup: usize,
    /// Timed rounds.
    #[arg(long, default_value_t = 30)]
    rounds: usize,
    /// Worker threads (default: the available cores).
    #[arg(long)]
    threads: Option<usize>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let params = Params::load(&args.params)?
        .train
        .check()
        .context("checking train params")?;
    let ModelSpec::Gbm(mut cfg) = train::default_spec(&params, Algorithm::Gbm) else {
        bail!("no GBM configuration in {}", args.params.display());
    };
    // Time rounds, not early stopping: every requested round runs.
    cfg.max_iter = u32::try_from(args.warmup + args.rounds).unwrap_or(u32::MAX);
    cfg.patience = u32::MAX;
    let (x, y, groups) = match (&args.data, args.synthetic) {
        (Some(dir), _) => {
            let inputs = train::Inputs::under(dir);
            let list = FeatureList::read(&inputs.feature_list)?;
            let features = list.resolve(&inputs.feature_list)?;
            let rows = revspend_table::read_labelled(&inputs.train, &features)
                .with_context(|| format!("reading {}", inputs.train.display()))?;
            let groups = train::cv::group_ids(&rows.customers);
            (rows.x, rows.y, groups)
        }
        (None, Some(n)) => synthetic(n, 7),
        (None, None) => bail!("give --data DIR or --synthetic ROWS"),
    };
    let threads = args.threads.unwrap_or_else(train::default_threads);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build()?;
    let times = pool.install(|| {
        let started = Instant::now();
        let mut booster = train::gbm::Booster::new(&x, &y, &groups, &cfg, params.class_weight, params.seed);
        let setup = started.elapsed().as_secs_f64() * 1e3;
        let mut times = Vec::with_capacity(args.rounds);
        let mut before = booster.phase_times();
        let mut cpu_before = cpu_seconds();
        for k in 0..args.warmup + args.rounds {
            let t = Instant::now();
            let more = booster.round();
            if k + 1 == args.warmup {
                before = booster.phase_times();
                cpu_before = cpu_seconds();
            }
            if k >= args.warmup {
                times.push(t.elapsed().as_secs_f64() * 1e3);
            }
            if !more {
                break;
            }
        }
        let timed = times.len().max(1) as f64;
        if let (Some(a), Some(b)) = (cpu_before, cpu_seconds()) {
            eprintln!(
                "CPU time of all threads: {:.2} ms per timed round (robust to other load, unlike wall time)",
                (b - a) * 1e3 / timed
            );
        }
        let (now, ms) = (booster.phase_times(), |d: std::time::Duration| d.as_secs_f64() * 1e3 / timed);
        eprintln!(
            "per timed round: gradients {:.2} ms, histograms {:.2}, partition {:.2}, split search {:.2}, update {:.2}",
            ms(now.gradients - before.gradients),
            ms(now.histograms - before.histograms),
            ms(now.partition - before.partition),
            ms(now.splits - before.splits),
            ms(now.update - before.update),
        );
        let (model, stats) = booster.finish();
        // A fingerprint of the model, to see whether a change altered it.
        let fingerprint = format!("{model:?}")
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
        // The early-stopping slice's loss: a change that alters the model
        // should not make it worse.
        let val_loss = stats
            .best_validation_loss
            .map_or_else(|| "none".to_owned(), |l| format!("{l:.9}"));
        eprintln!(
            "setup (binning) {setup:.1} ms; {} trees; validation loss {val_loss}; model fingerprint {fingerprint:016x}",
            model.trees.len()
        );
        times
    });
    if times.is_empty() {
        bail!("boosting stopped during the warm-up");
    }
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let q = |f: f64| sorted[((sorted.len() - 1) as f64 * f).round() as usize];
    println!(
        "{} rows x {} features, {threads} threads, {:?}: round median {:.2} ms (p10 {:.2}, p90 {:.2}, n {})",
        x.rows,
        x.cols,
        cfg,
        q(0.5),
        q(0.1),
        q(0.9),
        sorted.len()
    );
    Ok(())
}

/// User + system CPU time of the whole process so far (Linux), from
/// `/proc/self/stat`, in seconds; clock-tick resolution, so only sums over
/// many rounds are meaningful.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses); utime and
    // stime are fields 14 and 15 of the whole line.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // USER_HZ is 100 on Linux.
    Some((utime + stime) / 100.0)
}
