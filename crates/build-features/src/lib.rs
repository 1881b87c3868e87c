//! `build-features`: raw CSV files → staged and feature layers → master
//! table, splits, online snapshot.
//!
//! Reads every file matching `build_features.raw_glob` and keeps two
//! parquet layers partitioned by year and month ([`layers`]):
//!
//! - the **staged layer**: each raw file decoded (cp1252, or UTF-8 when the
//!   file is; gzip decompressed), parsed against the data contract and the
//!   quality suite's value ranges ([`ingest`]; rows that fail go to
//!   quarantine with file, line and reason, a file that cannot be read at
//!   all is rejected as a whole), customer ids pseudonymised, in the
//!   quarantine too. A file is staged
//!   once, by content hash: the same file again changes nothing and a new
//!   daily file is parsed on its own.
//! - the **feature layer**: the target and every candidate feature computed
//!   point-in-time with `revspend_core::features::compute`, rebuilt only
//!   from the first month whose staged rows changed.
//!
//! From the layers it then checks data quality over every staged row,
//! splits customers into train/test/holdout/calibration (grouped and
//! stratified), checks leakage and selects features on the train split,
//! and writes:
//!
//! - the master table (customer pseudonym, date, lineage, split, every
//!   candidate feature, target), stored as one parquet file per split: each
//!   row of the training period is in exactly one file, so the splits are
//!   not written twice. The period ends at `build_features.split.until`,
//!   moved later by a retrain request ([`period`]); rows after it are live
//!   traffic for the monitor, in the layers and the snapshot but in no
//!   split, so the checks, the profile and training never see them;
//! - the ordered feature list the model uses (JSON), written last: it
//!   records the SHA-256 of every other output of the run, and the
//!   readers refuse a file it does not list (outputs of two runs);
//! - the online snapshot (each customer's history after the last purchase);
//! - the quality, leakage and selection reports, the train profile, the
//!   quarantine CSV and a JSON report (rows in = out + quarantined).
//!
//! [`Mode::Backfill`] re-stages a date range from its raw files and rebuilds
//! the feature layer from there.
//!
//! A run starts by checking that the layer directories are the layers'
//! (marker, naming scheme: [`layers::check_layer_dir`]) and by removing the
//! temporary files an interrupted run left in its output directories.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use chrono::NaiveDate;
use revspend_core::artifact::{self, FeatureList, RetrainRequest, run_output};
use revspend_core::features::OnlineSnapshot;
use revspend_core::params::BuildFeaturesConfig;
use revspend_core::pseudonym::Pseudonymiser;

mod checks;
mod clock;
mod feature_layer;
pub mod ingest;
pub mod layers;
pub mod leakage;
mod master;
mod outputs;
pub mod period;
pub mod quality;
mod report;
pub mod selection;
mod split;
mod staging;
pub mod stats;

pub use checks::PROFILE_BINS;
use checks::{check_and_select, check_quality};
use clock::Clock;
use feature_layer::{FeatureLayer, update_features};
use master::{MasterWritten, master_file_schema, write_master};
pub use outputs::Outputs;
pub use report::{Duplicate, FileReport, LayerReport, Report, SplitReport};
use report::{ensure_some_file_read, file_reports, quarantine_reasons, ratio, split_reports};
pub use split::SPLITS;
use split::{Assigned, MonthTrainRows, assign_split_rows};
pub use staging::raw_files;
use staging::{load_staged_rows, raw_nulls, read_quarantine, update_staged};

/// What a run does besides bringing the layers up to date with the raw files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Stage new or changed raw files and rebuild what depends on them.
    Update,
    /// Also re-stage every month overlapping `from..=to` from its raw files
    /// and rebuild the feature layer from the first of those months on.
    Backfill { from: NaiveDate, to: NaiveDate },
}

/// Runs the stage; `suite` is the data-quality suite the staged rows must
/// meet; `request` is the monitor's retrain request, if its file holds one
/// (it can move the training period's end later). Parallel work runs on the
/// rayon pool the caller runs this in (`pool.install(|| run(..))`; the
/// global pool otherwise): its thread count is the only knob, and the
/// outputs do not depend on it.
pub fn run(
    params: &BuildFeaturesConfig,
    suite: &quality::Suite,
    out: &Outputs,
    pseudo: &Pseudonymiser,
    mode: Mode,
    request: Option<&RetrainRequest>,
) -> Result<Report> {
    let mut clock = Clock::new();
    let mut period = period::TrainingPeriod::resolve(params.until, request);
    if let Some(r) = period.request.as_ref().filter(|r| !r.applied) {
        log::info!(
            "retrain request (alarm {}, window {}) up to {} changes nothing: the training period {}",
            r.alarm,
            r.window,
            r.until,
            period.until.map_or_else(
                || "has no end (split.until is null)".to_owned(),
                |u| format!("already ends on {u}")
            )
        );
    }
    let rule = params.rule.clone();
    // Both layer directories are checked before anything is written: a
    // directory flag pointed at the wrong folder is refused, not cleaned.
    if out.staged_dir == out.features_dir {
        bail!(
            "--staged-dir and --features-dir are both {}: each layer needs a directory of its own",
            out.staged_dir.display()
        );
    }
    let staged_dir = layers::check_layer_dir(&out.staged_dir, layers::LayerKind::Staged)?;
    let features_dir = layers::check_layer_dir(&out.features_dir, layers::LayerKind::Features)?;
    let files = raw_files(&params.raw_glob)?;
    staged_dir.mark()?;
    features_dir.mark()?;
    out.remove_temp_files()?;
    let (mut manifest, fresh, mut layer_report) = update_staged(&files, out, pseudo, &suite.ranges, mode)?;
    ensure_some_file_read(&manifest)?;
    clock.lap("staged layer");

    let all = load_staged_rows(
        &mut manifest,
        fresh,
        &files,
        out,
        pseudo,
        &suite.ranges,
        &mut layer_report,
    )?;
    clock.lap("staged rows loaded");

    // Every expectation runs over the whole staged layer, in file/line
    // order, and is reported before an error fails the stage. The suite runs
    // alongside the feature layer (rebuilt from the first month whose inputs
    // changed): both only read the staged rows, and the layers are a
    // deterministic function of the raw files whatever the suite finds (it
    // gates the master table).
    let (quality, months) = rayon::join(
        || check_quality(suite, &all, &manifest),
        || update_features(&all, &manifest, &rule, out, pseudo, mode, &mut layer_report),
    );
    let quality = quality?;
    artifact::write_json(&out.quality_report, &quality)?;
    quality.ensure_success()?;
    // The run's commit record: every output's hash, written last into the
    // feature list (see `FeatureList`).
    let mut run_outputs = BTreeMap::new();
    run_outputs.insert(
        run_output::QUALITY_REPORT.to_owned(),
        artifact::file_sha256(&out.quality_report)?,
    );
    let months = months?;
    let raw_nulls = raw_nulls(&all);
    clock.lap("quality suite and feature layer");
    let FeatureLayer {
        mut frames,
        final_history,
        ever_positive,
    } = months;
    let rows_out = all.len() as u64;
    let date_min = all
        .day
        .iter()
        .min()
        .and_then(|d| NaiveDate::from_num_days_from_ce_opt(*d));
    let date_max = all
        .day
        .iter()
        .max()
        .and_then(|d| NaiveDate::from_num_days_from_ce_opt(*d));
    drop(all);
    if frames.is_empty() {
        bail!("no rows: every raw row was quarantined");
    }

    let Assigned {
        split_of,
        live_only,
        live_rows,
        positives,
        codes,
        train_rows,
        y_train,
    } = assign_split_rows(
        &mut frames,
        &final_history,
        &ever_positive,
        &params.split,
        period.until,
    )?;
    period.live_rows = live_rows;
    if let Some(until) = period.until
        && train_rows.iter().all(Vec::is_empty)
    {
        let from = match period.source {
            period::PeriodSource::Params => "build_features.split.until",
            period::PeriodSource::RetrainRequest => "the retrain request",
        };
        bail!(
            "no rows in the train split: the training period ends on {until} ({from}), \
             before the first purchase of every train customer"
        );
    }
    let train = MonthTrainRows::new(&frames, &train_rows)?;
    clock.lap("splits assigned");

    // The master table, one parquet file per split, is written while the
    // train split is checked for leakage, selected from and profiled. The files are put in place only once those
    // checks pass: a failed check leaves the previous outputs.
    let schema = master_file_schema();
    let mut writers = Vec::with_capacity(SPLITS.len());
    for name in SPLITS {
        let path = out.splits_dir.join(format!("{name}.parquet"));
        writers.push(
            revspend_table::TableWriter::create(&path, &schema)
                .with_context(|| format!("writing split {name}"))?,
        );
    }
    let writing = || {
        let started = std::time::Instant::now();
        let written = write_master(&frames, &codes, &mut writers);
        log::debug!("master table written in {:.3} s", started.elapsed().as_secs_f64());
        written
    };
    // The master table is the critical path: the checks get a one-thread
    // pool of their own, so they never hold the stage's threads (through
    // work stealing) while a month of the master table waits for its split
    // writes, and the OS shares the cores between the two as it did before
    // rayon. Measured at 1M and 10M rows: sharing the stage's pool made the
    // 1M run 0.1 s slower, a checks pool as large as the stage's made the
    // 10M run's master table 1.5 s slower (more threads, more fresh pages).
    let checks_pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .thread_name(|_| "checks".to_owned())
        .build()
        .context("starting the checks thread")?;
    let (written, checked) = rayon::join(writing, || {
        let started = std::time::Instant::now();
        let checked = checks_pool.install(|| check_and_select(params, &rule, out, &train, y_train));
        log::debug!(
            "leakage, selection and profile done in {:.3} s",
            started.elapsed().as_secs_f64()
        );
        // Once the checks pass, the online snapshot and the quarantine are
        // written while the master table still is.
        checked.and_then(|feature_set| {
            artifact::write_snapshot(
                &out.snapshot,
                &OnlineSnapshot {
                    as_of: date_max,
                    rule: rule.clone(),
                    customers: snapshot_keys(final_history)?,
                    key_fingerprint: pseudo.key_fingerprint(),
                    ranges: suite.ranges,
                },
            )?;
            let quarantine = read_quarantine(&manifest, &out.staged_dir)?;
            revspend_table::write_quarantine(&out.quarantine, &quarantine)?;
            // Small files, hashed here while the master table is written.
            let mut hashes = Vec::new();
            for (role, path) in [
                (run_output::SNAPSHOT, &out.snapshot),
                (run_output::QUARANTINE, &out.quarantine),
                (run_output::PROFILE, &out.profile),
                (run_output::LEAKAGE_REPORT, &out.leakage_report),
                (run_output::SELECTION_REPORT, &out.selection_report),
            ] {
                hashes.push((role.to_owned(), artifact::file_sha256(path)?));
            }
            log::debug!(
                "snapshot and quarantine written after {:.3} s",
                started.elapsed().as_secs_f64()
            );
            Ok((feature_set, quarantine, hashes))
        })
    });
    let (feature_set, quarantine, hashes) = checked?;
    run_outputs.extend(hashes);
    let MasterWritten {
        rows: split_rows,
        nulls: master_nulls,
    } = written?;
    for (name, w) in SPLITS.iter().zip(writers) {
        let sha256 = w.finish().with_context(|| format!("writing split {name}"))?;
        run_outputs.insert(run_output::split(name), sha256);
    }
    let splits = split_reports(&split_of, &live_only, split_rows);
    clock.lap("checks, selection, profile, snapshot and master table");

    let (quarantine_reasons, quarantine_out_of_range) = quarantine_reasons(&quarantine, &manifest);
    let file_reports = file_reports(&manifest, &files);
    let rows_in: u64 = file_reports.iter().map(|f| f.rows_in).sum();
    // A file rejected as a whole has one quarantine entry for all its rows.
    let rows_quarantined: u64 = quarantine_reasons.values().sum();
    if rows_in != rows_out + rows_quarantined {
        bail!("row accounting broken: {rows_in} rows read, {rows_out} kept + {rows_quarantined} quarantined");
    }
    let report = Report {
        rows_in,
        rows_out,
        rows_quarantined,
        customers: split_of.len() as u64,
        positives,
        target_rate: ratio(positives, rows_out),
        date_min,
        date_max,
        files_rejected: file_reports.iter().filter(|f| f.rejected.is_some()).count() as u64,
        files: file_reports,
        quarantine_reasons,
        quarantine_out_of_range,
        raw_nulls,
        master_nulls,
        splits,
        training_period: (!period.is_default()).then_some(period),
        features: feature_set.iter().map(|f| f.name().to_owned()).collect(),
        pseudonym_key: pseudo.key_source(),
        layers: layer_report,
    };
    artifact::write_json(&out.report, &report)?;
    run_outputs.insert(run_output::REPORT.to_owned(), artifact::file_sha256(&out.report)?);
    clock.lap("report");

    // Last: until this rename, the previous feature list describes the
    // previous run's outputs, and readers refuse any file of this run
    // beside it (and the other way round).
    artifact::write_json(
        &out.feature_list,
        &FeatureList {
            version: artifact::FEATURE_LIST_VERSION,
            features: feature_set.iter().map(|f| f.name().to_owned()).collect(),
            rule: rule.clone(),
            key_fingerprint: pseudo.key_fingerprint(),
            run_outputs,
        },
    )?;
    clock.lap("feature list");
    Ok(report)
}

/// Results of parallel jobs, in job order: the first error in job order
/// wins, whichever job failed first in time, so a failed run names the
/// same problem whatever the thread count.
pub(crate) fn in_order<T>(results: Vec<Result<T>>) -> Result<Vec<T>> {
    results.into_iter().collect()
}

/// The final histories keyed as the online snapshot keys them (the
/// pseudonyms' bytes); a pseudonym that is not 32 hex digits is a bug in
/// the pseudonymiser, not in the data.
fn snapshot_keys(
    histories: std::collections::BTreeMap<String, revspend_core::features::History>,
) -> anyhow::Result<
    std::collections::BTreeMap<revspend_core::features::PseudonymKey, revspend_core::features::History>,
> {
    histories
        .into_iter()
        .map(|(pseudonym, history)| {
            revspend_core::features::pseudonym_key(&pseudonym)
                .map(|key| (key, history))
                .ok_or_else(|| anyhow::anyhow!("pseudonym {pseudonym:?} is not 32 hex digits"))
        })
        .collect()
}
