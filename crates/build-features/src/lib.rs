//! `build-features`: raw CSV files → staged and feature layers → master
//! table, splits, online snapshot.
//!
//! Reads every file matching `build_features.raw_glob` and keeps two
//! parquet layers partitioned by year and month ([`layers`]):
//!
//! - the **staged layer**: each raw file decoded from cp1252, parsed against
//!   the data contract ([`ingest`]; rows that fail go to quarantine with
//!   file, line and reason), customer ids pseudonymised. A file is staged
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
//!   row is in exactly one file, so the splits are not written twice;
//! - the ordered feature list the model uses (JSON);
//! - the online snapshot (each customer's history after the last purchase);
//! - the quality, leakage and selection reports, the train profile, the
//!   quarantine CSV and a JSON report (rows in = out + quarantined).
//!
//! [`Mode::Backfill`] re-stages a date range from its raw files and rebuilds
//! the feature layer from there.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, bail};
use chrono::NaiveDate;
use polars::prelude::*;
use revspend_core::artifact::{self, FeatureList, SPLIT_COLUMN};
use revspend_core::features::OnlineSnapshot;
use revspend_core::params::{BuildFeaturesParams, Checked};
use revspend_core::pseudonym::Pseudonymiser;

mod checks;
mod clock;
mod feature_layer;
pub mod ingest;
pub mod layers;
pub mod leakage;
mod master;
mod outputs;
pub mod quality;
mod report;
pub mod selection;
mod split;
mod staging;
pub mod stats;
#[cfg(feature = "testing")]
pub mod testing;

pub use checks::PROFILE_BINS;
use checks::check_and_select;
use clock::Clock;
use feature_layer::{FeatureLayer, lineage_order, update_features};
use master::{MasterWritten, SPLIT_POSITION, write_master};
pub use outputs::Outputs;
use report::ratio;
pub use report::{Duplicate, FileReport, LayerReport, Report, SplitReport};
pub use split::SPLITS;
use split::{Assigned, MonthTrainRows, assign_split_rows};
pub use staging::raw_files;
use staging::{raw_nulls, read_quarantine, update_staged};

/// What a run does besides bringing the layers up to date with the raw files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Stage new or changed raw files and rebuild what depends on them.
    Update,
    /// Also re-stage every month overlapping `from..=to` from its raw files
    /// and rebuild the feature layer from the first of those months on.
    Backfill { from: NaiveDate, to: NaiveDate },
}

/// Runs the stage on `threads` threads; `suite` is the data-quality suite
/// the staged rows must meet.
pub fn run(
    params: &Checked<BuildFeaturesParams>,
    suite: &quality::Suite,
    out: &Outputs,
    pseudo: &Pseudonymiser,
    mode: Mode,
    threads: usize,
) -> Result<Report> {
    let mut clock = Clock::new();
    let rule = params.rule();
    let files = raw_files(&params.raw_glob)?;
    let (manifest, fresh, mut layer_report) = update_staged(&files, out, pseudo, mode, threads)?;
    clock.lap("staged layer");

    // Every staged row: what this run parsed, the rest read back.
    let parsed: BTreeSet<String> = fresh.iter().map(|(name, _)| name.clone()).collect();
    let mut fresh = fresh.into_iter().map(|(_, rows)| rows);
    // The first file parsed becomes the table itself (no copy).
    let mut all = fresh.next().unwrap_or_default();
    let total: u64 = manifest.files.values().map(|f| f.rows_out).sum();
    all.reserve(usize::try_from(total).unwrap_or(0).saturating_sub(all.len()));
    for f in fresh {
        all.append(&f);
    }
    for f in manifest.files.values() {
        if parsed.contains(&f.name) {
            continue;
        }
        for (month, p) in &f.partitions {
            let part = layers::read_staged(&out.staged_dir.join(&p.path)).with_context(|| {
                format!(
                    "reading the staged rows of {} for {month}; `build-features backfill --from {month}-01 \
                     --to {month}-01` rebuilds them from the raw file",
                    f.name
                )
            })?;
            all.append(&part);
        }
    }
    clock.lap("staged rows loaded");

    // Every expectation runs over the whole staged layer, in file/line
    // order, and is reported before an error fails the stage. The suite runs
    // on its own thread while the feature layer is brought up to date: both
    // only read the staged rows, and the layers are a deterministic function
    // of the raw files whatever the suite finds (it gates the master table).
    let headers: Vec<quality::FileHeader> = manifest
        .files
        .values()
        .map(|f| quality::FileHeader {
            file: f.name.clone(),
            columns: f.header.clone(),
        })
        .collect();
    let check_quality = || -> Result<quality::QualityReport> {
        let started = std::time::Instant::now();
        let by_lineage = lineage_order(&all);
        let staged_df = layers::quality_frame(&all, &by_lineage)?;
        log::debug!(
            "quality: staged table built in {:.3} s",
            started.elapsed().as_secs_f64()
        );
        let report = quality::run_suite(suite, &staged_df, &headers).context("running the quality suite");
        log::debug!(
            "quality: suite done after {:.3} s",
            started.elapsed().as_secs_f64()
        );
        report
    };
    let (quality, months) = std::thread::scope(|s| {
        let checking = s.spawn(check_quality);
        // The feature layer, rebuilt from the first month whose inputs changed.
        let months = update_features(
            &all,
            &manifest,
            &rule,
            out,
            pseudo,
            mode,
            threads,
            &mut layer_report,
        );
        let quality = checking.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        (quality, months)
    });
    let quality = quality?;
    artifact::write_json(&out.quality_report, &quality)?;
    quality.ensure_success()?;
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
        positives,
        codes,
        train_rows,
        y_train,
    } = assign_split_rows(
        &mut frames,
        &final_history,
        &ever_positive,
        &params.split,
        threads,
    )?;
    let train = MonthTrainRows::new(&frames, &train_rows)?;
    clock.lap("splits assigned");

    // The master table, one parquet file per split, is written on one
    // thread while the train split is checked for leakage, selected from and
    // profiled on the other. The files are put in place only once those
    // checks pass: a failed check leaves the previous outputs.
    // The month tables' columns with the split after the lineage columns.
    let mut schema = frames[0].schema().as_ref().clone();
    schema.insert_at_index(SPLIT_POSITION, SPLIT_COLUMN.into(), DataType::String)?;
    let mut writers = Vec::with_capacity(SPLITS.len());
    for name in SPLITS {
        let path = out.splits_dir.join(format!("{name}.parquet"));
        writers.push(
            artifact::TableWriter::create(&path, &schema).with_context(|| format!("writing split {name}"))?,
        );
    }
    let (written, checked) = std::thread::scope(|s| {
        let writing = s.spawn(|| {
            let started = std::time::Instant::now();
            let written = write_master(&frames, &codes, &mut writers, threads);
            log::debug!("master table written in {:.3} s", started.elapsed().as_secs_f64());
            written
        });
        let started = std::time::Instant::now();
        let checked = check_and_select(params, &rule, out, &train, y_train, threads);
        log::debug!(
            "leakage, selection and profile done in {:.3} s",
            started.elapsed().as_secs_f64()
        );
        // Once the checks pass, the online snapshot and the quarantine are
        // written while the master table still is.
        let checked = checked.and_then(|feature_set| {
            artifact::write_snapshot(
                &out.snapshot,
                &OnlineSnapshot {
                    as_of: date_max,
                    rule: rule.clone(),
                    customers: final_history,
                },
            )?;
            let quarantine = read_quarantine(&manifest, &out.staged_dir)?;
            artifact::write_quarantine(&out.quarantine, &quarantine)?;
            log::debug!(
                "snapshot and quarantine written after {:.3} s",
                started.elapsed().as_secs_f64()
            );
            Ok((feature_set, quarantine))
        });
        let written = writing.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        (written, checked)
    });
    let (feature_set, quarantine) = checked?;
    let MasterWritten {
        rows: split_rows,
        nulls: master_nulls,
    } = written?;
    for (name, w) in SPLITS.iter().zip(writers) {
        w.finish().with_context(|| format!("writing split {name}"))?;
    }
    let splits: BTreeMap<String, SplitReport> = SPLITS
        .iter()
        .zip(split_rows)
        .map(|(name, (rows, positives))| {
            let report = SplitReport {
                customers: split_of.values().filter(|s| *s == name).count() as u64,
                rows,
                positives,
                target_rate: ratio(positives, rows),
            };
            ((*name).to_owned(), report)
        })
        .collect();
    clock.lap("checks, selection, profile, snapshot and master table");

    artifact::write_json(
        &out.feature_list,
        &FeatureList {
            features: feature_set.iter().map(|f| f.name().to_owned()).collect(),
            rule: rule.clone(),
        },
    )?;
    clock.lap("feature list");

    let mut quarantine_reasons = BTreeMap::new();
    for q in &quarantine {
        *quarantine_reasons.entry(q.field.clone()).or_insert(0) += 1;
    }
    let file_reports: Vec<FileReport> = manifest
        .files
        .values()
        .map(|f| FileReport {
            path: files
                .iter()
                .find(|p| ingest::file_name(p) == f.name)
                .map_or_else(|| f.name.clone(), |p| p.display().to_string()),
            sha256: f.sha256.clone(),
            rows_in: f.rows_in,
            rows_out: f.rows_out,
            rows_quarantined: f.rows_quarantined,
        })
        .collect();
    let rows_in: u64 = file_reports.iter().map(|f| f.rows_in).sum();
    if rows_in != rows_out + quarantine.len() as u64 {
        bail!(
            "row accounting broken: {rows_in} rows read, {rows_out} kept + {} quarantined",
            quarantine.len()
        );
    }
    let report = Report {
        rows_in,
        rows_out,
        rows_quarantined: quarantine.len() as u64,
        customers: split_of.len() as u64,
        positives,
        target_rate: ratio(positives, rows_out),
        date_min,
        date_max,
        files: file_reports,
        quarantine_reasons,
        raw_nulls,
        master_nulls,
        splits,
        features: feature_set.iter().map(|f| f.name().to_owned()).collect(),
        pseudonym_key: if pseudo.is_development_key() {
            "development default"
        } else {
            "from environment"
        },
        layers: layer_report,
    };
    artifact::write_json(&out.report, &report)?;
    clock.lap("report");
    Ok(report)
}

/// Runs `jobs` on up to `threads` threads; results come back in job order.
/// The first error (in job order) is returned after every job has run.
pub(crate) fn parallel<T: Send, F: FnOnce() -> Result<T> + Send>(
    threads: usize,
    jobs: Vec<F>,
) -> Result<Vec<T>> {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let n = jobs.len();
    let queue: Vec<Mutex<Option<F>>> = jobs.into_iter().map(|j| Mutex::new(Some(j))).collect();
    let results: Vec<Mutex<Option<Result<T>>>> = (0..n).map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, n.max(1)) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let job = queue[i].lock().unwrap_or_else(|e| e.into_inner()).take();
                    if let Some(job) = job {
                        *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(job());
                    }
                }
            });
        }
    });
    results
        .into_iter()
        .map(|r| {
            r.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .unwrap_or_else(|| bail!("a worker thread stopped before its job ran"))
        })
        .collect()
}
