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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use chrono::NaiveDate;
use polars::prelude::*;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use revspend_core::artifact::{self, CUSTOMER_COLUMN, FeatureList, SPLIT_COLUMN, TARGET_COLUMN};
use revspend_core::contract::{COLUMNS, Transaction};
use revspend_core::features::{self, Feature, History, OnlineSnapshot};
use revspend_core::params::BuildFeaturesConfig;
use revspend_core::pseudonym::Pseudonymiser;
use revspend_core::target::TargetRule;
use revspend_table::QuarantinedRow;
use serde::Serialize;

use crate::ingest::Staged;
use crate::layers::{FeatureManifest, FeatureMonth, FeatureRows, Month, StagedFile, StagedManifest};

pub mod ingest;
pub mod layers;
pub mod leakage;
pub mod quality;
pub mod selection;
pub mod stats;

/// Histogram bins of the reference profile.
pub const PROFILE_BINS: usize = 20;

/// The split names, in the order their fractions are laid out.
pub const SPLITS: [&str; 4] = ["train", "test", "holdout", "calibration"];

/// Where the stage writes; every path is a CLI flag.
#[derive(Debug, Clone)]
pub struct Outputs {
    /// The staged layer (kept between runs: only new files are parsed).
    pub staged_dir: PathBuf,
    /// The feature layer (kept between runs).
    pub features_dir: PathBuf,
    /// The master table: one parquet file per split (`train.parquet`, …),
    /// every row in exactly one of them.
    pub splits_dir: PathBuf,
    pub feature_list: PathBuf,
    pub snapshot: PathBuf,
    pub quarantine: PathBuf,
    pub report: PathBuf,
    pub leakage_report: PathBuf,
    pub selection_report: PathBuf,
    /// Reference distribution profile of the train split (for drift checks).
    pub profile: PathBuf,
    pub quality_report: PathBuf,
}

/// Per-file row accounting.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    pub path: String,
    pub sha256: String,
    pub rows_in: u64,
    pub rows_out: u64,
    pub rows_quarantined: u64,
}

/// Per-split counts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SplitReport {
    pub customers: u64,
    pub rows: u64,
    pub positives: u64,
    pub target_rate: f64,
}

/// The stage report (`reports/build_features.json`).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub rows_in: u64,
    pub rows_out: u64,
    pub rows_quarantined: u64,
    pub customers: u64,
    pub positives: u64,
    pub target_rate: f64,
    pub date_min: Option<NaiveDate>,
    pub date_max: Option<NaiveDate>,
    pub files: Vec<FileReport>,
    /// Quarantined rows per offending field (`row` for a wrong field count).
    pub quarantine_reasons: BTreeMap<String, u64>,
    /// Empty or missing values per raw column, over the rows kept.
    pub raw_nulls: BTreeMap<String, u64>,
    /// Null values per master-table column.
    pub master_nulls: BTreeMap<String, u64>,
    pub splits: BTreeMap<String, SplitReport>,
    pub features: Vec<String>,
    pub pseudonym_key: &'static str,
    /// What this run changed in the staged and feature layers.
    pub layers: LayerReport,
}

/// What a run does besides bringing the layers up to date with the raw files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Stage new or changed raw files and rebuild what depends on them.
    Update,
    /// Also re-stage every month overlapping `from..=to` from its raw files
    /// and rebuild the feature layer from the first of those months on.
    Backfill { from: NaiveDate, to: NaiveDate },
}

/// A raw file skipped because a file with the same content is staged.
#[derive(Debug, Clone, Serialize)]
pub struct Duplicate {
    pub file: String,
    pub same_content_as: String,
}

/// What this run changed in the layers.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LayerReport {
    /// Raw files parsed and staged by this run.
    pub files_staged: Vec<String>,
    /// Raw files already in the staged layer with the same content.
    pub files_unchanged: Vec<String>,
    /// Files staged earlier and no longer in the raw folder (their rows left).
    pub files_removed: Vec<String>,
    pub duplicates_skipped: Vec<Duplicate>,
    pub backfill: Option<String>,
    /// Feature-layer months recomputed by this run, and those reused.
    pub feature_months_rebuilt: Vec<String>,
    pub feature_months_reused: Vec<String>,
}

/// Runs the stage on `threads` threads; `suite` is the data-quality suite
/// the staged rows must meet.
pub fn run(
    params: &BuildFeaturesConfig,
    suite: &quality::Suite,
    out: &Outputs,
    pseudo: &Pseudonymiser,
    mode: Mode,
    threads: usize,
) -> Result<Report> {
    let mut clock = Clock::new();
    let rule = params.rule.clone();
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
            revspend_table::TableWriter::create(&path, &schema)
                .with_context(|| format!("writing split {name}"))?,
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
            revspend_table::write_quarantine(&out.quarantine, &quarantine)?;
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

/// What split assignment gives the rest of the stage.
struct Assigned {
    split_of: BTreeMap<String, &'static str>,
    /// Positive rows in all splits.
    positives: u64,
    /// Per month table, each row's split (an index into [`SPLITS`]).
    codes: Vec<Vec<u8>>,
    /// Per month table, the train rows' indices.
    train_rows: Vec<Vec<u32>>,
    /// The train rows' targets, month after month.
    y_train: Vec<bool>,
}

/// Assigns customers to splits: each month table row's split, and the
/// train rows.
fn assign_split_rows(
    frames: &mut [DataFrame],
    final_history: &BTreeMap<String, History>,
    ever_positive: &[bool],
    split: &revspend_core::params::SplitParams,
    threads: usize,
) -> Result<Assigned> {
    // A month's rows come grouped by customer (the order they were computed
    // in), so each customer's split is looked up once per run of rows, not
    // per row. Each month's customer runs and targets, months on parallel
    // threads.
    let jobs: Vec<_> = frames
        .iter()
        .map(|f| {
            move || -> Result<(Runs<'_>, Vec<bool>)> {
                let runs = customer_runs(f.column(CUSTOMER_COLUMN)?.str()?);
                let targets = f
                    .column(TARGET_COLUMN)?
                    .bool()?
                    .iter()
                    .map(|t| t.unwrap_or(false))
                    .collect();
                Ok((runs, targets))
            }
        })
        .collect();
    let started = std::time::Instant::now();
    let (runs, targets): (Vec<_>, Vec<Vec<bool>>) = parallel(threads, jobs)?.into_iter().unzip();
    log::debug!(
        "splits: customer runs found in {:.3} s",
        started.elapsed().as_secs_f64()
    );
    let positives = targets.iter().flatten().filter(|t| **t).count() as u64;
    // Customers are stratified by whether they ever spend in revenge, which
    // the feature walk noted (every staged row, reused months included),
    // in name order.
    if final_history.len() != ever_positive.len() {
        bail!(
            "internal: {} customers walked but {} revenge flags",
            final_history.len(),
            ever_positive.len()
        );
    }
    let customer_positive: Vec<(&str, bool)> = final_history
        .keys()
        .map(String::as_str)
        .zip(ever_positive.iter().copied())
        .collect();
    let split_of = assign_splits(&customer_positive, split)?;
    drop(customer_positive);
    log::debug!(
        "splits: customers assigned after {:.3} s",
        started.elapsed().as_secs_f64()
    );
    // Each row's split, as an index into SPLITS.
    let split_index: PlHashMap<&str, u8> = split_of
        .iter()
        .map(|(c, s)| (c.as_str(), SPLITS.iter().position(|n| n == s).unwrap_or(0) as u8))
        .collect();
    let jobs: Vec<_> = runs
        .iter()
        .zip(frames.iter())
        .map(|(runs, frame)| {
            let split_index = &split_index;
            move || -> Result<Vec<u8>> {
                let mut codes = Vec::with_capacity(frame.height());
                for (c, rows) in runs {
                    codes.extend(std::iter::repeat_n(
                        split_index.get(c).copied().unwrap_or(0),
                        rows.len(),
                    ));
                }
                Ok(codes)
            }
        })
        .collect();
    let codes: Vec<Vec<u8>> = parallel(threads, jobs)?;
    drop(runs);
    drop(split_index);
    log::debug!(
        "splits: rows coded after {:.3} s",
        started.elapsed().as_secs_f64()
    );
    // The train rows feed the leakage check, feature selection and the
    // profile, which read them in place (see `MonthTrainRows`).
    const TRAIN: u8 = 0;
    let jobs: Vec<_> = codes
        .iter()
        .zip(&targets)
        .map(|(codes, targets)| {
            move || -> Result<(Vec<u32>, Vec<bool>)> {
                let n = u32::try_from(codes.len()).context("a month of more than 2^32 rows")?;
                let rows: Vec<u32> = (0..n).filter(|&r| codes[r as usize] == TRAIN).collect();
                let y = rows.iter().map(|&r| targets[r as usize]).collect();
                Ok((rows, y))
            }
        })
        .collect();
    let (train_rows, y_train): (Vec<Vec<u32>>, Vec<Vec<bool>>) = parallel(threads, jobs)?.into_iter().unzip();
    let y_train: Vec<bool> = y_train.concat();
    drop(targets);
    for frame in frames.iter_mut() {
        // One chunk per column, for `MonthTrainRows` to read as slices
        // (a reused month read back from its file may come in several).
        frame.rechunk_mut_par();
    }
    Ok(Assigned {
        split_of,
        positives,
        codes,
        train_rows,
        y_train,
    })
}

/// The train rows of the month tables, read in place through their
/// indices.
struct MonthTrainRows<'a> {
    /// Per month, one column per `Feature::ALL` entry.
    columns: Vec<Vec<&'a [f64]>>,
    /// Per month, the train rows' indices in its table.
    rows: &'a [Vec<u32>],
    /// Train rows before each month, then the total.
    starts: Vec<usize>,
}

impl<'a> MonthTrainRows<'a> {
    fn new(frames: &'a [DataFrame], rows: &'a [Vec<u32>]) -> Result<MonthTrainRows<'a>> {
        let columns = frames
            .iter()
            .map(|frame| {
                Feature::ALL
                    .iter()
                    .map(|f| {
                        let slice = frame.column(f.name())?.f64()?.cont_slice();
                        anyhow::Context::with_context(slice, || {
                            format!("feature {} of the master table", f.name())
                        })
                    })
                    .collect::<Result<Vec<&[f64]>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        let mut starts = vec![0];
        for r in rows {
            starts.push(starts.last().copied().unwrap_or(0) + r.len());
        }
        Ok(MonthTrainRows {
            columns,
            rows,
            starts,
        })
    }
}

impl stats::TrainColumns for MonthTrainRows<'_> {
    fn rows(&self) -> usize {
        self.starts.last().copied().unwrap_or(0)
    }

    fn read(&self, f: Feature, range: std::ops::Range<usize>, out: &mut Vec<f64>) {
        // The month holding `range.start` (after any months without train rows).
        let mut m = self
            .starts
            .partition_point(|&s| s <= range.start)
            .saturating_sub(1);
        let mut at = range.start;
        while at < range.end && m < self.rows.len() {
            let lo = at - self.starts[m];
            let hi = (range.end - self.starts[m]).min(self.rows[m].len());
            let column = self.columns[m][f.index()];
            out.extend(self.rows[m][lo..hi].iter().map(|&r| column[r as usize]));
            at = self.starts[m] + hi;
            m += 1;
        }
    }
}

/// Runs of rows with the same customer: the customer and its rows.
type Runs<'a> = Vec<(&'a str, std::ops::Range<usize>)>;

/// Maximal runs of rows with the same customer, in row order.
fn customer_runs(customers: &StringChunked) -> Runs<'_> {
    let mut runs: Runs<'_> = Vec::new();
    for (i, c) in customers.iter().enumerate() {
        let c = c.unwrap_or("");
        match runs.last_mut() {
            Some((prev, rows)) if *prev == c => rows.end = i + 1,
            _ => runs.push((c, i..i + 1)),
        }
    }
    runs
}

/// What writing the master table counted.
struct MasterWritten {
    /// Rows and positives per split, in [`SPLITS`] order.
    rows: Vec<(u64, u64)>,
    /// Null values per column.
    nulls: BTreeMap<String, u64>,
}

/// Where the split column sits in the master table: after the lineage
/// columns (customer, date, source file and line).
const SPLIT_POSITION: usize = 4;

/// Writes the master table a month at a time (one row group each) into one
/// file per split (`writers` in [`SPLITS`] order), the splits on parallel
/// threads; `codes` holds each month row's split. The files are left to be
/// finished by the caller.
fn write_master(
    frames: &[DataFrame],
    codes: &[Vec<u8>],
    writers: &mut [revspend_table::TableWriter],
    threads: usize,
) -> Result<MasterWritten> {
    let mut written = MasterWritten {
        rows: vec![(0, 0); SPLITS.len()],
        nulls: BTreeMap::from([(SPLIT_COLUMN.to_owned(), 0)]),
    };
    for (frame, codes) in frames.iter().zip(codes) {
        for c in frame.columns() {
            *written.nulls.entry(c.name().to_string()).or_insert(0) += c.null_count() as u64;
        }
        // Each split's rows are taken and written on its own job, so one
        // split's copy is made while another's is encoded. The split column
        // is one value per part, added as a constant.
        let jobs: Vec<_> = SPLITS
            .iter()
            .zip(writers.iter_mut())
            .enumerate()
            .map(|(i, (name, w))| {
                move || -> Result<(u64, u64)> {
                    let mask = BooleanChunked::from_iter_values(
                        "".into(),
                        codes.iter().map(|c| usize::from(*c) == i),
                    );
                    let mut part = frame.filter(&mask)?;
                    let counts = (
                        part.height() as u64,
                        part.column(TARGET_COLUMN)?.bool()?.sum().unwrap_or(0) as u64,
                    );
                    let split = Column::new_scalar(
                        SPLIT_COLUMN.into(),
                        Scalar::new(DataType::String, AnyValue::StringOwned((*name).into())),
                        part.height(),
                    );
                    part.insert_column(SPLIT_POSITION, split)?;
                    w.write(&mut part)
                        .with_context(|| format!("writing split {name}"))?;
                    Ok(counts)
                }
            })
            .collect();
        for (total, (rows, positives)) in written.rows.iter_mut().zip(parallel(threads, jobs)?) {
            total.0 += rows;
            total.1 += positives;
        }
    }
    Ok(written)
}

/// The leakage check, feature selection and reference profile, all on the
/// train split's columns (one per `Feature::ALL` entry). Writes their
/// reports and returns the selected feature set; fails when a leaky feature
/// is in the feature set and params do not allow it.
fn check_and_select(
    params: &BuildFeaturesConfig,
    rule: &TargetRule,
    out: &Outputs,
    columns: &dyn stats::TrainColumns,
    y_train: Vec<bool>,
    threads: usize,
) -> Result<Vec<Feature>> {
    let started = std::time::Instant::now();
    let counts = stats::value_counts(columns, &y_train, threads);
    log::debug!(
        "checks: values counted in {:.3} s",
        started.elapsed().as_secs_f64()
    );
    let feature_set = params.features.clone();
    let leaks = leakage::check(
        columns,
        &counts,
        &y_train,
        &feature_set,
        rule,
        &params.leakage,
        params.allow_leaky_features,
    );
    artifact::write_json(&out.leakage_report, &leaks)?;
    if !leaks.flagged_in_feature_set.is_empty() {
        let names = leaks.flagged_in_feature_set.join(", ");
        if params.allow_leaky_features {
            log::warn!(
                "leaky features in the model's feature set, allowed by params for comparison: {names} \
                 (the target rule rebuilt from candidates scores ROC-AUC {:.4})",
                leaks.rule_reconstruction_auc
            );
        } else {
            bail!(
                "leakage check failed: {names} flagged in the feature set (see {}); remove them, or set \
                 build_features.allow_leaky_features: true to compare",
                out.leakage_report.display()
            );
        }
    }
    log::debug!(
        "checks: leakage checked after {:.3} s",
        started.elapsed().as_secs_f64()
    );
    let (feature_set, selection) =
        selection::select(columns, &counts, &feature_set, &params.selection, threads);
    log::debug!(
        "checks: features selected after {:.3} s",
        started.elapsed().as_secs_f64()
    );
    artifact::write_json(&out.selection_report, &selection)?;
    if feature_set.is_empty() {
        bail!(
            "feature selection dropped every feature (see {})",
            out.selection_report.display()
        );
    }
    for d in &selection.dropped {
        log::info!("feature {} dropped: {}", d.feature, d.reason);
    }

    // The profile from the value counts: per distinct value, not per row.
    let mut profile = revspend_core::profile::Profile {
        rows: y_train.len() as u64,
        numeric: BTreeMap::new(),
        categorical: BTreeMap::new(),
    };
    for (f, c) in Feature::ALL.iter().zip(&counts) {
        let rows: Vec<u64> = c.positives.iter().zip(&c.negatives).map(|(p, n)| p + n).collect();
        profile.numeric.insert(
            f.name().to_owned(),
            revspend_core::profile::numeric_from_counts(&c.values, &rows, PROFILE_BINS),
        );
    }
    let positives = y_train.iter().filter(|y| **y).count() as u64;
    let (values, rows): (Vec<f64>, Vec<u64>) = [(0.0, y_train.len() as u64 - positives), (1.0, positives)]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .unzip();
    profile.numeric.insert(
        TARGET_COLUMN.to_owned(),
        revspend_core::profile::numeric_from_counts(&values, &rows, PROFILE_BINS),
    );
    artifact::write_json(&out.profile, &profile).context("writing the train profile")?;
    Ok(feature_set)
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

/// Logs how long each phase took (at debug level: `RUST_LOG=debug`).
struct Clock {
    started: std::time::Instant,
    last: std::time::Instant,
    last_usage: Option<Usage>,
}

impl Clock {
    fn new() -> Clock {
        let now = std::time::Instant::now();
        Clock {
            started: now,
            last: now,
            last_usage: usage(),
        }
    }

    fn lap(&mut self, phase: &str) {
        let now = std::time::Instant::now();
        let usage = usage();
        let used = match (&usage, &self.last_usage) {
            (Some(u), Some(l)) => format!(
                ", {:.2} s CPU ({:.2} s system), {:.0} MiB of fresh pages",
                u.cpu - l.cpu,
                u.system - l.system,
                (u.minor_faults - l.minor_faults) as f64 * 4096.0 / (1 << 20) as f64
            ),
            _ => String::new(),
        };
        log::debug!(
            "{phase}: {:.3} s{used} (total {:.3} s)",
            (now - self.last).as_secs_f64(),
            (now - self.started).as_secs_f64()
        );
        self.last = now;
        self.last_usage = usage;
    }
}

/// CPU time and page faults of this process so far.
struct Usage {
    /// User + system seconds.
    cpu: f64,
    system: f64,
    /// Minor page faults: pages touched for the first time (4 KiB each),
    /// which are slow on virtual machines that hand memory out lazily.
    minor_faults: u64,
}

/// Read from `/proc/self/stat` (Linux; `None` elsewhere, and unless debug
/// logging is on). Times are in clock ticks of 1/100 s.
fn usage() -> Option<Usage> {
    if !log::log_enabled!(log::Level::Debug) {
        return None;
    }
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name: minflt is the 10th field
    // of the whole line, utime and stime the 14th and 15th.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split(' ').collect();
    let number = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    let (minor_faults, utime, stime) = (number(7)?, number(11)?, number(12)?);
    Some(Usage {
        cpu: (utime + stime) as f64 / 100.0,
        system: stime as f64 / 100.0,
        minor_faults,
    })
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// The raw files matching `pattern`, sorted by path so runs are deterministic.
/// File names must be unique: a row's lineage is (file name, line).
pub fn raw_files(pattern: &str) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = glob::glob(pattern)
        .with_context(|| format!("invalid raw_glob {pattern:?}"))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("listing files for {pattern:?}"))?;
    files.retain(|p| p.is_file());
    files.sort();
    if files.is_empty() {
        bail!("no raw files match build_features.raw_glob {pattern:?}");
    }
    let mut names: HashMap<String, &PathBuf> = HashMap::new();
    for f in &files {
        if let Some(other) = names.insert(ingest::file_name(f), f) {
            bail!(
                "two raw files are named {:?} ({} and {}): file names identify rows' lineage and must be unique",
                ingest::file_name(f),
                other.display(),
                f.display()
            );
        }
    }
    Ok(files)
}

/// Brings the staged layer up to date with the raw files: stages new and
/// changed files, drops removed ones, skips content already staged, and in
/// backfill mode re-stages the months in the range. Returns the manifest,
/// the rows parsed by this run (file name and rows, pseudonymised) and
/// what changed.
fn update_staged(
    files: &[PathBuf],
    out: &Outputs,
    pseudo: &Pseudonymiser,
    mode: Mode,
    threads: usize,
) -> Result<(StagedManifest, Vec<ParsedFile>, LayerReport)> {
    let key = pseudo.key_fingerprint();
    let original = layers::read_manifest::<StagedManifest>(&out.staged_dir)?;
    let mut manifest = match original.clone() {
        Some(m) if m.version == layers::STAGED_LAYER_VERSION && m.key_fingerprint == key => m,
        Some(_) => {
            log::warn!(
                "the staged layer in {} was written with another layout version or pseudonymisation key: \
                 restaging every raw file",
                out.staged_dir.display()
            );
            StagedManifest::empty(key)
        }
        None => StagedManifest::empty(key),
    };
    let mut report = LayerReport::default();
    let range = match mode {
        Mode::Update => None,
        Mode::Backfill { from, to } => {
            report.backfill = Some(format!("{from}..={to}"));
            Some((Month::of(from), Month::of(to)))
        }
    };
    let names: BTreeSet<String> = files.iter().map(|p| ingest::file_name(p)).collect();
    let removed: Vec<String> = manifest
        .files
        .keys()
        .filter(|n| !names.contains(*n))
        .cloned()
        .collect();
    for name in removed {
        log::info!("{name}: no longer in the raw folder; its staged rows are removed");
        manifest.files.remove(&name);
        report.files_removed.push(name);
    }

    let mut fresh = Vec::new();
    // Content already staged under a name still present wins over a copy.
    let mut staged_hashes: HashMap<String, String> = manifest
        .files
        .values()
        .map(|f| (f.sha256.clone(), f.name.clone()))
        .collect();
    // Files staged before under the same name are hashed first (on worker
    // threads) to see whether they changed; a new name is staged, and
    // hashed from the bytes it is parsed from, without reading it twice.
    let jobs: Vec<_> = files
        .iter()
        .map(|path| {
            let known = manifest.files.contains_key(&ingest::file_name(path));
            move || {
                Ok(if known {
                    Some(artifact::file_sha256(path)?)
                } else {
                    None
                })
            }
        })
        .collect();
    let hashes = parallel(threads, jobs)?;
    let mut work: Vec<Staging> = Vec::new();
    for (path, sha) in files.iter().zip(hashes) {
        let name = ingest::file_name(path);
        let existing = sha
            .as_ref()
            .and_then(|sha| manifest.files.get(&name).filter(|f| f.sha256 == *sha))
            .cloned();
        let backfilled: Vec<String> = match (&existing, range) {
            (Some(f), Some((lo, hi))) => f
                .partitions
                .keys()
                .filter(|m| Month::parse(m).is_some_and(|m| lo <= m && m <= hi))
                .cloned()
                .collect(),
            _ => Vec::new(),
        };
        if existing.is_some() && backfilled.is_empty() {
            report.files_unchanged.push(name);
            continue;
        }
        work.push(Staging {
            path: path.clone(),
            name,
            sha,
            existing,
            backfilled,
        });
    }

    // Stage the files on worker threads (whole files each, so every core
    // is busy parsing and writing; a lone file gets every thread).
    let inner = (threads / work.len().max(1)).max(1);
    // Daily files share most of their customers: each id is keyed once.
    // A file's ids are looked up, and its new ones added, under one lock
    // each (a lock per id had the two file threads contending).
    // Ids and pseudonyms are shared with the files' own tables, not copied.
    let pseudonyms = std::sync::Mutex::new(PlHashMap::<Arc<str>, Arc<str>>::new());
    let pseudonymise = |ids: &[Arc<str>]| -> Vec<Arc<str>> {
        let mut out: Vec<Option<Arc<str>>> = {
            let known = pseudonyms.lock().unwrap_or_else(|e| e.into_inner());
            ids.iter().map(|id| known.get(&**id).cloned()).collect()
        };
        let new: Vec<usize> = (0..ids.len()).filter(|&i| out[i].is_none()).collect();
        for &i in &new {
            out[i] = Some(Arc::from(pseudo.pseudonym(&ids[i])));
        }
        let mut known = pseudonyms.lock().unwrap_or_else(|e| e.into_inner());
        for &i in &new {
            if let Some(p) = &out[i] {
                known.insert(Arc::clone(&ids[i]), Arc::clone(p));
            }
        }
        out.into_iter()
            .map(|p| p.unwrap_or_else(|| Arc::from("")))
            .collect()
    };
    let jobs: Vec<_> = work
        .iter()
        .map(|w| {
            let pseudonymise = &pseudonymise;
            move || stage_file(w, out, pseudonymise, inner)
        })
        .collect();
    let staged = parallel(threads, jobs)?;
    // In name order: content already staged (before, or by a file earlier
    // in this run) under another name is a copy, left out; its partitions
    // are removed with the rest of what the manifest does not list.
    for (w, (entry, rows)) in work.into_iter().zip(staged) {
        if w.existing.is_none()
            && let Some(other) = staged_hashes.get(&entry.sha256).filter(|o| **o != w.name)
        {
            log::warn!("{}: same content as the staged file {other}; skipped", w.name);
            report.duplicates_skipped.push(Duplicate {
                file: w.name,
                same_content_as: other.clone(),
            });
            continue;
        }
        staged_hashes.insert(entry.sha256.clone(), w.name.clone());
        if w.backfilled.is_empty() {
            log::info!(
                "{}: staged {} rows in {} month partitions, {} quarantined",
                w.name,
                rows.len(),
                entry.partitions.len(),
                entry.rows_quarantined
            );
            report.files_staged.push(w.name.clone());
        } else {
            log::info!("{}: backfilled months {}", w.name, w.backfilled.join(", "));
            report.files_unchanged.push(w.name.clone());
        }
        manifest.files.insert(w.name.clone(), entry);
        fresh.push((w.name, rows));
    }
    if original.as_ref() != Some(&manifest) {
        artifact::write_json(&out.staged_dir.join(layers::MANIFEST), &manifest)?;
    }
    let mut keep = BTreeSet::new();
    for f in manifest.files.values() {
        keep.insert(f.quarantine.clone());
        keep.extend(f.partitions.values().map(|p| p.path.clone()));
    }
    layers::remove_unlisted(&out.staged_dir, &keep)?;
    Ok((manifest, fresh, report))
}

/// Raw customer ids → their pseudonyms, in order.
type Pseudonymise<'a> = dyn Fn(&[Arc<str>]) -> Vec<Arc<str>> + Sync + 'a;

/// A raw file's name and the rows this run parsed from it.
type ParsedFile = (String, Staged);

/// A raw file this run parses: new or changed, or backfilled months.
struct Staging {
    path: PathBuf,
    name: String,
    /// Its content hash when already read (a name staged before); a new
    /// name is hashed from the bytes it is parsed from.
    sha: Option<String>,
    /// Its manifest entry when the content is already staged (backfill).
    existing: Option<StagedFile>,
    /// Months (`YYYY-MM`) to re-stage; empty for a new file (all months).
    backfilled: Vec<String>,
}

/// Parses, pseudonymises (with `pseudonymise`) and writes one raw file's
/// staged partitions and quarantine; returns its manifest entry and rows.
fn stage_file(
    w: &Staging,
    out: &Outputs,
    pseudonymise: &Pseudonymise<'_>,
    threads: usize,
) -> Result<(StagedFile, Staged)> {
    thread_local! {
        /// The raw bytes of the file this thread is staging: one buffer
        /// reused file after file, rather than a fresh allocation whose
        /// every page is touched for the first time again (slow on these
        /// virtual machines).
        static RAW: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let started = std::time::Instant::now();
    let (mut rows, read, sha) = RAW.with_borrow_mut(|bytes| -> Result<_> {
        use std::io::Read;
        bytes.clear();
        std::fs::File::open(&w.path)
            .and_then(|mut f| f.read_to_end(bytes))
            .with_context(|| format!("reading {}", w.path.display()))?;
        let sha = artifact::sha256_hex(bytes);
        if w.sha.as_ref().is_some_and(|expected| *expected != sha) {
            bail!("{} changed while it was being read; rerun", w.path.display());
        }
        let read = started.elapsed();
        Ok((ingest::parse_file(&w.path, bytes, threads)?, read, sha))
    })?;
    let parsed = started.elapsed();
    // Once per distinct id.
    rows.rows.map_customers(pseudonymise);
    log::debug!(
        "{}: read and hashed in {:.3} s, parsed in {:.3} s, pseudonymised in {:.3} s",
        w.name,
        read.as_secs_f64(),
        (parsed - read).as_secs_f64(),
        (started.elapsed() - parsed).as_secs_f64()
    );
    let stem = StagedFile::stem(&w.name, &sha);
    // Rows of a day come together (files are daily exports), so a row's
    // month is worked out again only when its day changes.
    let mut by_month: BTreeMap<Month, Vec<usize>> = BTreeMap::new();
    let mut last: Option<(i32, Month)> = None;
    for (r, &day) in rows.rows.day.iter().enumerate() {
        let month = match last {
            Some((d, m)) if d == day => m,
            _ => {
                let m = Month::of(rows.rows.date(r));
                last = Some((day, m));
                m
            }
        };
        by_month.entry(month).or_default().push(r);
    }
    let mut entry = w.existing.clone().unwrap_or_else(|| StagedFile {
        name: w.name.clone(),
        sha256: sha.clone(),
        rows_in: rows.rows_in,
        rows_out: rows.rows.len() as u64,
        rows_quarantined: rows.quarantine.len() as u64,
        header: rows.header.clone(),
        partitions: BTreeMap::new(),
        quarantine: format!("quarantine/{stem}.csv"),
    });
    let text = &layers::LineageText::new(&rows.rows);
    let jobs: Vec<_> = by_month
        .iter()
        .filter(|(month, _)| w.backfilled.is_empty() || w.backfilled.contains(&month.key()))
        .map(|(month, idx)| {
            let (staged, rel) = (&rows.rows, month.dir().join(format!("{stem}.parquet")));
            let path = out.staged_dir.join(&rel);
            move || -> Result<(String, layers::Partition)> {
                let mut df = layers::staged_frame(staged, text, idx)?;
                let sha256 = revspend_table::write_table(&path, &mut df)?;
                let rel = rel.to_string_lossy().into_owned();
                Ok((
                    month.key(),
                    layers::Partition {
                        path: rel,
                        rows: idx.len() as u64,
                        sha256,
                    },
                ))
            }
        })
        .collect();
    let written =
        parallel(threads, jobs).with_context(|| format!("writing the staged partitions of {}", w.name))?;
    entry.partitions.extend(written);
    revspend_table::write_quarantine(&out.staged_dir.join(&entry.quarantine), &rows.quarantine)?;
    log::debug!(
        "{}: staged partitions written after {:.3} s",
        w.name,
        started.elapsed().as_secs_f64()
    );
    Ok((entry, rows.rows))
}

/// The feature layer's tables in month order, and every customer's
/// history after their last purchase.
struct FeatureLayer {
    frames: Vec<DataFrame>,
    final_history: BTreeMap<String, History>,
    /// Whether each customer (in `final_history` order) ever spends in
    /// revenge.
    ever_positive: Vec<bool>,
}

/// Rebuilds the feature layer from the first month whose staged inputs
/// changed (or from the backfill's first month), reusing earlier months.
#[allow(clippy::too_many_arguments)]
fn update_features(
    all: &Staged,
    staged: &StagedManifest,
    rule: &TargetRule,
    out: &Outputs,
    pseudo: &Pseudonymiser,
    mode: Mode,
    threads: usize,
    report: &mut LayerReport,
) -> Result<FeatureLayer> {
    let names: Vec<&str> = Feature::ALL.iter().map(|f| f.name()).collect();
    let fingerprint = artifact::sha256_hex(
        serde_json::to_string(&(
            layers::FEATURE_LAYER_VERSION,
            rule,
            &names,
            pseudo.key_fingerprint(),
        ))?
        .as_bytes(),
    );
    let previous = layers::read_manifest::<FeatureManifest>(&out.features_dir)?
        .filter(|m| m.version == layers::FEATURE_LAYER_VERSION && m.fingerprint == fingerprint);
    let inputs = staged.months();
    // The first month whose inputs differ from what its partition was
    // built from; history carries into later months, so they follow.
    let mut from: Option<Month> = match &previous {
        None => inputs.keys().next().and_then(|m| Month::parse(m)),
        Some(prev) => {
            let keys: BTreeSet<&String> = inputs.keys().chain(prev.months.keys()).collect();
            keys.into_iter()
                .find(|k| prev.months.get(*k).map(|m| &m.built_from) != inputs.get(*k))
                .and_then(|k| Month::parse(k))
        }
    };
    if let Mode::Backfill { from: day, .. } = mode {
        let m = Month::of(day);
        from = Some(from.map_or(m, |f| f.min(m)));
    }
    let started = std::time::Instant::now();
    let computed = compute_features(all, rule, from, threads)?;
    log::debug!("features computed in {:.3} s", started.elapsed().as_secs_f64());
    let mut manifest = FeatureManifest {
        version: layers::FEATURE_LAYER_VERSION,
        fingerprint,
        months: BTreeMap::new(),
    };
    let mut months = computed.months;
    let lineage_text = &layers::LineageText::new(all);
    let mut jobs = Vec::new();
    for (key, built_from) in &inputs {
        let Some(month) = Month::parse(key) else {
            bail!("staged manifest has a malformed month {key:?}");
        };
        let rel = month.dir().join("part.parquet");
        let path = out.features_dir.join(&rel);
        let reused = previous
            .as_ref()
            .and_then(|p| p.months.get(key))
            .filter(|_| from.is_none_or(|f| month < f))
            .cloned();
        let job: Box<dyn FnOnce() -> Result<(DataFrame, FeatureMonth)> + Send + '_> = match reused {
            Some(prev) => {
                report.feature_months_reused.push(key.clone());
                Box::new(move || {
                    let df = revspend_table::read_table(&path, &layers::feature_schema())
                        .with_context(|| format!("reading feature month {key}"))?;
                    Ok((df, prev))
                })
            }
            None => {
                report.feature_months_rebuilt.push(key.clone());
                let rows = months.remove(&month).unwrap_or_default();
                Box::new(move || {
                    let mut df = rows.into_frame(all, lineage_text)?;
                    let sha256 = revspend_table::write_table(&path, &mut df)
                        .with_context(|| format!("writing feature month {key}"))?;
                    let entry = FeatureMonth {
                        path: rel.to_string_lossy().into_owned(),
                        rows: df.height() as u64,
                        sha256,
                        built_from: built_from.clone(),
                    };
                    Ok((df, entry))
                })
            }
        };
        jobs.push(job);
    }
    let mut frames = Vec::new();
    for ((df, entry), key) in parallel(threads, jobs)?.into_iter().zip(inputs.keys()) {
        manifest.months.insert(key.clone(), entry);
        frames.push(df);
    }
    if previous.as_ref() != Some(&manifest) {
        artifact::write_json(&out.features_dir.join(layers::MANIFEST), &manifest)?;
    }
    let keep = manifest.months.values().map(|m| m.path.clone()).collect();
    layers::remove_unlisted(&out.features_dir, &keep)?;
    if !report.feature_months_rebuilt.is_empty() {
        log::info!(
            "feature layer: rebuilt {}; reused {}",
            report.feature_months_rebuilt.join(", "),
            if report.feature_months_reused.is_empty() {
                "none".to_owned()
            } else {
                report.feature_months_reused.join(", ")
            }
        );
    }
    Ok(FeatureLayer {
        frames,
        final_history: computed.final_history,
        ever_positive: computed.ever_positive,
    })
}

/// Computed features of the months from `from` on, final histories, and
/// whether each customer (in `final_history` order) ever spends in revenge.
struct Computed {
    months: BTreeMap<Month, FeatureRows>,
    final_history: BTreeMap<String, History>,
    ever_positive: Vec<bool>,
}

/// Walks every customer's purchases in point-in-time order (date, then
/// file name, then line): rows before `from` only update the history;
/// rows from `from` on get their features computed by the same
/// `revspend_core::features::compute` the server calls. Customers are
/// shared out over `threads` threads; the result does not depend on it.
fn compute_features(
    all: &Staged,
    rule: &TargetRule,
    from: Option<Month>,
    threads: usize,
) -> Result<Computed> {
    let customer_rank = ranks(&all.customers.values);
    let file_rank = ranks(&all.files.values);
    // One contiguous range of whole customers (by rank) per thread, about
    // equal in rows.
    let threads = threads.clamp(1, 64);
    let mut rows_per_rank = vec![0usize; customer_rank.len()];
    for &c in &all.customer {
        rows_per_rank[customer_rank[c as usize] as usize] += 1;
    }
    let mut cuts = vec![0u32];
    let mut seen = 0;
    for (rank, n) in rows_per_rank.iter().enumerate() {
        seen += n;
        if cuts.len() < threads && seen * threads >= all.len() * cuts.len() {
            cuts.push(rank as u32 + 1);
        }
    }
    while cuts.len() <= threads {
        cuts.push(customer_rank.len() as u32);
    }
    drop(rows_per_rank);
    // Each range's rows in point-in-time order, sorted on its own thread.
    // Sort keys sit side by side with the row: comparing through the
    // columns would chase four arrays per comparison, which at ten million
    // rows is mostly cache misses. Months are counted from the sorted keys.
    let jobs: Vec<_> = cuts
        .windows(2)
        .map(|w| {
            let (lo, hi, customer_rank, file_rank) = (w[0], w[1], &customer_rank, &file_rank);
            move || {
                let mut keyed: Vec<((u32, i32, u32, u64), usize)> = (0..all.len())
                    .filter_map(|r| {
                        let rank = customer_rank[all.customer[r] as usize];
                        (lo..hi).contains(&rank).then(|| {
                            let key = (rank, all.day[r], file_rank[all.file[r] as usize], all.line[r]);
                            (key, r)
                        })
                    })
                    .collect();
                keyed.sort_unstable_by_key(|(key, _)| *key);
                let mut months: BTreeMap<Month, usize> = BTreeMap::new();
                let mut last_day = None;
                let mut month = None;
                for ((_, day, _, _), _) in &keyed {
                    if last_day != Some(*day) {
                        last_day = Some(*day);
                        month = Some(Month::of(
                            NaiveDate::from_num_days_from_ce_opt(*day).unwrap_or(NaiveDate::MIN),
                        ));
                    }
                    if let Some(m) = month.filter(|m| from.is_some_and(|f| *m >= f)) {
                        *months.entry(m).or_default() += 1;
                    }
                }
                let order: Vec<usize> = keyed.into_iter().map(|(_, r)| r).collect();
                Ok((order, months))
            }
        })
        .collect();
    let started = std::time::Instant::now();
    let (orders, counts): (Vec<Vec<usize>>, Vec<BTreeMap<Month, usize>>) =
        parallel(threads, jobs)?.into_iter().unzip();
    log::debug!(
        "features: rows sorted in {:.3} s",
        started.elapsed().as_secs_f64()
    );
    let ranges: Vec<&[usize]> = orders.iter().map(Vec::as_slice).collect();
    let mut totals: BTreeMap<Month, usize> = BTreeMap::new();
    for c in &counts {
        for (m, n) in c {
            *totals.entry(*m).or_default() += n;
        }
    }
    let mut months: BTreeMap<Month, FeatureRows> = totals
        .into_iter()
        .map(|(m, n)| (m, FeatureRows::zeroed(n)))
        .collect();
    let mut slots: Vec<BTreeMap<Month, Slot<'_>>> = (0..ranges.len()).map(|_| BTreeMap::new()).collect();
    for (month, rows) in &mut months {
        let mut rest = Slot {
            rows: rows.rows.as_mut_slice(),
            values: rows.values.iter_mut().map(Vec::as_mut_slice).collect(),
            target: rows.target.as_mut_slice(),
            at: 0,
        };
        for (c, slot) in counts.iter().zip(&mut slots) {
            let n = c.get(month).copied().unwrap_or(0);
            slot.insert(*month, rest.split_off_front(n));
        }
    }
    let jobs: Vec<_> = ranges
        .into_iter()
        .zip(slots)
        .map(|(range, slots)| move || Ok(compute_range(all, rule, from, range, slots)))
        .collect();
    let started = std::time::Instant::now();
    let histories = parallel(threads, jobs)?;
    log::debug!(
        "features: customers walked in {:.3} s",
        started.elapsed().as_secs_f64()
    );
    // Ranges are whole customers in rank (name) order, so their flags in
    // range order follow the histories' map order.
    let mut final_history = BTreeMap::new();
    let mut ever_positive = Vec::new();
    for (h, positive) in histories {
        final_history.extend(h);
        ever_positive.extend(positive);
    }
    Ok(Computed {
        months,
        final_history,
        ever_positive,
    })
}

/// One range's stretch of a month's feature columns, filled front to back.
struct Slot<'a> {
    rows: &'a mut [usize],
    values: Vec<&'a mut [f64]>,
    target: &'a mut [bool],
    at: usize,
}

impl<'a> Slot<'a> {
    /// Splits off the first `n` rows as a slot of their own.
    fn split_off_front(&mut self, n: usize) -> Slot<'a> {
        let (rows, rest) = std::mem::take(&mut self.rows).split_at_mut(n);
        self.rows = rest;
        let (target, rest) = std::mem::take(&mut self.target).split_at_mut(n);
        self.target = rest;
        let values = self
            .values
            .iter_mut()
            .map(|col| {
                let (head, rest) = std::mem::take(col).split_at_mut(n);
                *col = rest;
                head
            })
            .collect();
        Slot {
            rows,
            values,
            target,
            at: 0,
        }
    }

    fn push(&mut self, row: usize, values: [f64; Feature::ALL.len()], target: bool) {
        let at = self.at;
        self.rows[at] = row;
        for (col, v) in self.values.iter_mut().zip(values) {
            col[at] = v;
        }
        self.target[at] = target;
        self.at += 1;
    }
}

/// Walks the customers of `order` (whole customers, in point-in-time
/// order), writing the rows from `from` on into `slots`; returns each
/// customer's history after their last purchase.
///
/// The staged rows are read in blocks: each column of a block is gathered
/// in a loop of its own, whose loads do not wait on each other, and the
/// walk then reads the block in order. Reading each row's fields where the
/// walk needs them waits on a cache miss per field (staged rows are in file
/// order, the walk is in customer order), which at ten million rows was
/// most of the walk.
fn compute_range(
    all: &Staged,
    rule: &TargetRule,
    from: Option<Month>,
    order: &[usize],
    mut slots: BTreeMap<Month, Slot<'_>>,
) -> (BTreeMap<String, History>, Vec<bool>) {
    const BLOCK: usize = 4096;
    let mut final_history = BTreeMap::new();
    let mut ever_positive = Vec::new();
    let mut positive = false;
    let mut txn = Transaction {
        id: String::new(),
        safra_abertura: None,
        cidade: String::new(),
        estado: String::new(),
        idade: None,
        sexo: None,
        limite_total: 0.0,
        limite_disp: 0.0,
        date: NaiveDate::MIN,
        valor: None,
        grupo: String::new(),
        cidade_estabelecimento: String::new(),
        pais_estabelecimento: String::new(),
    };
    let mut codes = [u32::MAX; 5];
    let mut block = Block::default();
    let mut current: Option<u32> = None;
    let mut history = History::default();
    for rows in order.chunks(BLOCK) {
        block.gather(all, rows);
        for (i, &r) in rows.iter().enumerate() {
            let customer = block.customer[i];
            if current != Some(customer) {
                if let Some(done) = current {
                    final_history.insert(all.customers.get(done).to_owned(), std::mem::take(&mut history));
                    ever_positive.push(std::mem::take(&mut positive));
                }
                current = Some(customer);
            }
            block.fill(&mut txn, &mut codes, all, i);
            let revenge = rule.is_revenge(&txn);
            positive |= revenge;
            let month = Month::of(txn.date);
            if from.is_some_and(|f| month >= f)
                && let Some(slot) = slots.get_mut(&month)
            {
                slot.push(r, features::compute(&history, &txn, rule), revenge);
            }
            history.record(&txn, rule);
        }
    }
    if let Some(done) = current {
        final_history.insert(all.customers.get(done).to_owned(), history);
        ever_positive.push(positive);
    }
    (final_history, ever_positive)
}

/// The staged columns the walk reads, for a block of rows.
#[derive(Default)]
struct Block {
    customer: Vec<u32>,
    safra_abertura: Vec<Option<u32>>,
    idade: Vec<Option<u16>>,
    sexo: Vec<Option<revspend_core::contract::Sex>>,
    limite_total: Vec<f64>,
    limite_disp: Vec<f64>,
    day: Vec<i32>,
    valor: Vec<Option<f64>>,
    text: [Vec<u32>; 5],
}

impl Block {
    fn gather(&mut self, all: &Staged, rows: &[usize]) {
        fn column<T: Copy>(dst: &mut Vec<T>, src: &[T], rows: &[usize]) {
            dst.clear();
            dst.extend(rows.iter().map(|&r| src[r]));
        }
        column(&mut self.customer, &all.customer, rows);
        column(&mut self.safra_abertura, &all.safra_abertura, rows);
        column(&mut self.idade, &all.idade, rows);
        column(&mut self.sexo, &all.sexo, rows);
        column(&mut self.limite_total, &all.limite_total, rows);
        column(&mut self.limite_disp, &all.limite_disp, rows);
        column(&mut self.day, &all.day, rows);
        column(&mut self.valor, &all.valor, rows);
        for (dst, src) in self.text.iter_mut().zip(&all.text) {
            column(dst, src, rows);
        }
    }

    /// Copies row `i` of the block into `txn`, reusing its string buffers;
    /// `codes` holds the text codes already in `txn` (a customer's city and
    /// state repeat row after row), so unchanged text is not copied again.
    fn fill(&self, txn: &mut Transaction, codes: &mut [u32; 5], all: &Staged, i: usize) {
        txn.safra_abertura = self.safra_abertura[i];
        txn.idade = self.idade[i];
        txn.sexo = self.sexo[i];
        txn.limite_total = self.limite_total[i];
        txn.limite_disp = self.limite_disp[i];
        txn.date = NaiveDate::from_num_days_from_ce_opt(self.day[i]).unwrap_or(NaiveDate::MIN);
        txn.valor = self.valor[i];
        let fields: [&mut String; 5] = [
            &mut txn.cidade,
            &mut txn.estado,
            &mut txn.grupo,
            &mut txn.cidade_estabelecimento,
            &mut txn.pais_estabelecimento,
        ];
        for (col, (field, code)) in fields.into_iter().zip(codes.iter_mut()).enumerate() {
            let c = self.text[col][i];
            if *code != c {
                *code = c;
                field.clear();
                field.push_str(all.strings.get(c));
            }
        }
    }
}

/// Row indices in lineage order (file name, then line). Rows are usually
/// in that order already (files are parsed and read back in name order),
/// which one pass checks before any sort.
fn lineage_order(all: &Staged) -> Vec<usize> {
    let file_rank = ranks(&all.files.values);
    let key = |r: usize| (file_rank[all.file[r] as usize], all.line[r]);
    if (1..all.len()).all(|r| key(r - 1) <= key(r)) {
        return (0..all.len()).collect();
    }
    let mut keyed: Vec<((u32, u64), usize)> = (0..all.len()).map(|r| (key(r), r)).collect();
    keyed.sort_unstable_by_key(|(k, _)| *k);
    keyed.into_iter().map(|(_, r)| r).collect()
}

/// The rank of each string in sorted order.
fn ranks(values: &[Arc<str>]) -> Vec<u32> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    idx.sort_unstable_by(|&a, &b| values[a].cmp(&values[b]));
    let mut rank = vec![0u32; values.len()];
    for (k, i) in idx.into_iter().enumerate() {
        rank[i] = k as u32;
    }
    rank
}

/// Every staged file's quarantined rows, in file order.
fn read_quarantine(manifest: &StagedManifest, dir: &Path) -> Result<Vec<QuarantinedRow>> {
    let mut rows = Vec::new();
    for f in manifest.files.values() {
        rows.extend(revspend_table::read_quarantine(&dir.join(&f.quarantine))?);
    }
    Ok(rows)
}

fn raw_nulls(all: &Staged) -> BTreeMap<String, u64> {
    let mut counts: BTreeMap<String, u64> = COLUMNS.iter().map(|c| (c.trim().to_owned(), 0)).collect();
    let mut set = |name: &str, n: usize| {
        counts.insert(name.to_owned(), n as u64);
    };
    set(
        "safra_abertura",
        all.safra_abertura.iter().filter(|v| v.is_none()).count(),
    );
    set("idade", all.idade.iter().filter(|v| v.is_none()).count());
    set("sexo", all.sexo.iter().filter(|v| v.is_none()).count());
    set("valor", all.valor.iter().filter(|v| v.is_none()).count());
    let empty: Vec<bool> = all.strings.values.iter().map(|v| v.is_empty()).collect();
    for (i, name) in ingest::TEXT_COLUMNS.iter().enumerate() {
        set(name, all.text[i].iter().filter(|c| empty[**c as usize]).count());
    }
    counts
}

/// Assigns each customer to a split: customers with and without any revenge
/// purchase are shuffled separately (seeded) and cut by the fractions, so
/// every split gets its share of both and no customer is in two splits.
fn assign_splits(
    customer_positive: &[(&str, bool)],
    split: &revspend_core::params::SplitParams,
) -> Result<BTreeMap<String, &'static str>> {
    // Sorted: the assignment must not depend on hash or thread order.
    if !customer_positive.is_sorted_by(|a, b| a.0 < b.0) {
        bail!("internal: customers to assign are not in name order");
    }
    let fractions = [split.train, split.test, split.holdout, split.calibration];
    let mut rng = ChaCha8Rng::seed_from_u64(split.seed);
    let mut out = Vec::with_capacity(customer_positive.len());
    for stratum in [true, false] {
        let mut members: Vec<&str> = customer_positive
            .iter()
            .filter(|(_, p)| *p == stratum)
            .map(|(c, _)| *c)
            .collect();
        members.shuffle(&mut rng);
        let n = members.len() as f64;
        let mut bounds = [0usize; 4];
        let mut cum = 0.0;
        for (b, f) in bounds.iter_mut().zip(fractions) {
            cum += f;
            *b = (cum * n).round() as usize;
        }
        for (k, c) in members.into_iter().enumerate() {
            let s = bounds.iter().position(|&b| k < b).unwrap_or(SPLITS.len() - 1);
            out.push((c.to_owned(), SPLITS[s]));
        }
    }
    // Built from sorted pairs in bulk, not inserted in shuffled order.
    out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(out.into_iter().collect())
}

/// Small end-to-end fixtures for the other stages' tests: generated raw data
/// run through this stage into a temporary directory.
#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use chrono::Datelike;
    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// The train rows read in place equal the copied train split, for
        /// any stretch of rows, across months (some without train rows).
        #[test]
        fn month_train_rows_read_like_the_copied_split(
            months in vec(vec(any::<bool>(), 0..40), 1..5),
            cut in (0usize..200, 0usize..200),
        ) {
            let tables: Vec<Vec<Vec<f64>>> = months
                .iter()
                .enumerate()
                .map(|(m, rows)| {
                    Feature::ALL
                        .iter()
                        .enumerate()
                        .map(|(f, _)| (0..rows.len()).map(|r| (m * 1000 + r * 10 + f) as f64).collect())
                        .collect()
                })
                .collect();
            let rows: Vec<Vec<u32>> = months
                .iter()
                .map(|m| (0..m.len() as u32).filter(|&r| m[r as usize]).collect())
                .collect();
            let mut starts = vec![0];
            for r in &rows {
                starts.push(starts.last().copied().unwrap_or(0) + r.len());
            }
            let train = MonthTrainRows {
                columns: tables.iter().map(|t| t.iter().map(Vec::as_slice).collect()).collect(),
                rows: &rows,
                starts,
            };
            let total = rows.iter().map(Vec::len).sum::<usize>();
            prop_assert_eq!(stats::TrainColumns::rows(&train), total);
            let (lo, hi) = (cut.0.min(cut.1).min(total), cut.0.max(cut.1).min(total));
            for f in [Feature::ALL[0], Feature::ALL[Feature::ALL.len() - 1]] {
                let copied: Vec<f64> = tables
                    .iter()
                    .zip(&rows)
                    .flat_map(|(t, r)| r.iter().map(|&i| t[f.index()][i as usize]))
                    .collect();
                let mut read = vec![-1.0];
                stats::TrainColumns::read(&train, f, lo..hi, &mut read);
                prop_assert_eq!(&read[1..], &copied[lo..hi]);
            }
        }
    }

    /// (customer, day, file, amount, group, available limit) of one row.
    type RowSpec = (u8, i32, u8, u16, u8, u16);

    const GROUPS: [&str; 4] = ["SUPERMERCADOS", "VAREJO", "VESTUARIO", ""];

    fn staged(rows: &[(RowSpec, &str, u64)]) -> Staged {
        let mut s = Staged::default();
        let base = NaiveDate::from_ymd_opt(2020, 1, 1).map_or(0, |d| d.num_days_from_ce());
        for &((customer, day, _, amount, group, available), file, line) in rows {
            s.file.push(s.files.code(file));
            s.line.push(line);
            s.customer.push(s.customers.code(&format!("c{customer}")));
            s.safra_abertura.push(Some(201_901));
            s.idade.push(Some(30));
            s.sexo.push(None);
            s.limite_total.push(1000.0);
            s.limite_disp.push(f64::from(available));
            s.day.push(base + day);
            s.valor.push((amount > 0).then_some(f64::from(amount)));
            let texts = ["CITY", "SP", GROUPS[group as usize % GROUPS.len()], "CITY", "BR"];
            for (col, t) in texts.into_iter().enumerate() {
                s.text[col].push(s.strings.code(t));
            }
        }
        s
    }

    /// Feature values by (file, line).
    fn features_by_row(s: &Staged, threads: usize) -> HashMap<(String, u64), Vec<f64>> {
        let rule = TargetRule {
            threshold_pct: 20.0,
            vital_groups: vec!["SUPERMERCADOS".into()],
        };
        let computed =
            compute_features(s, &rule, Some(Month { year: 1, month: 1 }), threads).expect("features");
        let mut out = HashMap::new();
        for rows in computed.months.values() {
            for (k, &r) in rows.rows.iter().enumerate() {
                let values = rows.values.iter().map(|c| c[k]).collect();
                out.insert((s.files.get(s.file[r]).to_owned(), s.line[r]), values);
            }
        }
        out
    }

    fn spec() -> impl Strategy<Value = RowSpec> {
        (0u8..6, 0i32..90, 0u8..3, 0u16..500, 0u8..4, 0u16..1200)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Issue 3: appending rows dated after every existing row never
        /// changes any earlier row's features, whatever files they come in
        /// and however the work is shared out over threads.
        #[test]
        fn appending_future_rows_never_changes_earlier_features(
            past in vec(spec(), 1..80),
            future in vec(spec(), 1..40),
            threads in 1usize..4,
        ) {
            let last = past.iter().map(|r| r.1).max().unwrap_or(0);
            let file = |f: u8| ["a.csv", "b.csv", "c.csv"][f as usize];
            let mut rows: Vec<(RowSpec, &str, u64)> =
                past.iter().enumerate().map(|(i, r)| (*r, file(r.2), i as u64 + 2)).collect();
            let before = features_by_row(&staged(&rows), threads);
            prop_assert_eq!(before.len(), past.len());
            rows.extend(future.iter().enumerate().map(|(i, r)| {
                let mut r = *r;
                r.1 += last + 1;
                (r, "later.csv", i as u64 + 2)
            }));
            let after = features_by_row(&staged(&rows), 1);
            prop_assert_eq!(after.len(), past.len() + future.len());
            for (row, values) in &before {
                prop_assert_eq!(after.get(row), Some(values), "features of {:?} changed", row);
                prop_assert!(values.iter().all(|v| v.is_finite()));
            }
        }
    }
}

#[cfg(feature = "testing")]
pub mod testing {
    use std::path::{Path, PathBuf};

    use anyhow::Result;
    use revspend_core::params::{Check, Params};
    use revspend_core::pseudonym::Pseudonymiser;

    use crate::Outputs;

    /// Key the fixtures pseudonymise with.
    pub const KEY: &[u8] = b"fixture-key";

    /// The shipped `params.yaml`, with `build_features.raw_glob` pointing at
    /// `<dir>/raw/*.csv` and a small generated dataset.
    pub fn params(dir: &Path) -> Params {
        let mut p: Params = serde_norway::from_str(include_str!("../../../params.yaml"))
            .unwrap_or_else(|e| panic!("shipped params.yaml does not parse: {e}"));
        p.generate.customers = 300;
        p.generate.rows = 6_000;
        p.generate.days = 90;
        p.generate.files = 2;
        p.build_features.raw_glob = dir.join("raw/*.csv").display().to_string();
        p.train.n_trees = 12;
        p.train.max_depth = 8;
        p
    }

    /// Generates raw files and builds the tables under `dir`; returns the
    /// outputs and the params used (also written to `<dir>/params.yaml`).
    pub fn build(dir: &Path) -> Result<(Outputs, Params)> {
        let p = params(dir);
        std::fs::write(dir.join("params.yaml"), serde_norway::to_string(&p)?)?;
        generate_raw(&p, &dir.join("raw"))?;
        let outputs = Outputs {
            staged_dir: dir.join("data/staged"),
            features_dir: dir.join("data/features"),
            splits_dir: dir.join("data/splits"),
            feature_list: dir.join("data/features.json"),
            snapshot: dir.join("data/snapshot.bin"),
            quarantine: dir.join("data/quarantine.csv"),
            report: dir.join("reports/build_features.json"),
            leakage_report: dir.join("reports/leakage.json"),
            selection_report: dir.join("reports/feature_selection.json"),
            profile: dir.join("data/profile.json"),
            quality_report: dir.join("reports/quality.json"),
        };
        let suite = crate::quality::Suite::from_yaml(include_str!("../../../config/quality.yaml"))?;
        crate::run(
            &p.build_features.clone().check()?,
            &suite,
            &outputs,
            &Pseudonymiser::new(KEY),
            crate::Mode::Update,
            2,
        )?;
        Ok((outputs, p))
    }

    fn generate_raw(p: &Params, dir: &Path) -> Result<Vec<PathBuf>> {
        Ok(generate::run(&p.generate.clone().check()?, dir)?.files)
    }
}
