//! The stage report (`reports/build_features.json`): row accounting per
//! file and split, null counts, and what the run changed in the layers.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Result, bail};
use chrono::NaiveDate;
use revspend_core::contract::OUT_OF_RANGE;
use revspend_table::QuarantinedRow;
use revspend_table::quarantine::WHOLE_FILE;
use serde::Serialize;

use crate::ingest::SourceFormat;
use crate::layers::StagedManifest;
use crate::period::TrainingPeriod;
use crate::{SPLITS, ingest};

/// Per-file row accounting.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    pub path: String,
    pub sha256: String,
    pub rows_in: u64,
    pub rows_out: u64,
    pub rows_quarantined: u64,
    /// How the file was read: encoding (`cp1252` or `utf-8`), whether a
    /// byte-order mark was stripped, whether it was gzip.
    pub format: SourceFormat,
    /// Why the whole file was rejected (its rows are all quarantined);
    /// absent when it was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejected: Option<String>,
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
    /// Files rejected as a whole (each in `files` with its reason).
    pub files_rejected: u64,
    /// Quarantined rows per offending field (`row` for a wrong field count,
    /// `file` for the rows of files rejected as a whole).
    pub quarantine_reasons: BTreeMap<String, u64>,
    /// Of those, rows quarantined because a value was outside its range
    /// (the quality suite's `ranges`), per field.
    pub quarantine_out_of_range: BTreeMap<String, u64>,
    /// Empty or missing values per raw column, over the rows kept.
    pub raw_nulls: BTreeMap<String, u64>,
    /// Null values per master-table column.
    pub master_nulls: BTreeMap<String, u64>,
    /// Rows, customers with rows and positives per split: the training
    /// period's rows alone.
    pub splits: BTreeMap<String, SplitReport>,
    /// Where the training period ends, where that came from (params or a
    /// retrain request, with its alarm and window), and the feature-layer
    /// rows after it (the live period, in no split). Absent when params set
    /// no end and no retrain request was read: every row is in the period.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub training_period: Option<TrainingPeriod>,
    pub features: Vec<String>,
    pub pseudonym_key: &'static str,
    /// What this run changed in the staged and feature layers.
    pub layers: LayerReport,
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
    /// Raw files this run read and rejected as a whole (see `files`).
    pub files_rejected: Vec<String>,
    /// Raw files already in the staged layer with the same content.
    pub files_unchanged: Vec<String>,
    /// Files staged earlier and no longer in the raw folder (their rows left).
    pub files_removed: Vec<String>,
    pub duplicates_skipped: Vec<Duplicate>,
    pub backfill: Option<String>,
    /// Feature-layer months recomputed by this run, and those reused.
    pub feature_months_rebuilt: Vec<String>,
    pub feature_months_reused: Vec<String>,
    /// Staged partitions whose bytes did not match their manifest's SHA-256,
    /// staged again from their raw files by this run.
    pub partitions_restaged: Vec<String>,
    /// Feature-layer months whose bytes did not match their manifest's
    /// SHA-256, rebuilt from the staged rows by this run.
    pub feature_months_repaired: Vec<String>,
}

pub(crate) fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Per split (in [`SPLITS`] order), its customers with rows in it (not
/// `live_only`, whose rows are all after the training period), and its
/// rows and positives as written.
pub(crate) fn split_reports(
    split_of: &BTreeMap<String, &'static str>,
    live_only: &std::collections::BTreeSet<String>,
    split_rows: Vec<(u64, u64)>,
) -> BTreeMap<String, SplitReport> {
    SPLITS
        .iter()
        .zip(split_rows)
        .map(|(name, (rows, positives))| {
            let report = SplitReport {
                customers: split_of
                    .iter()
                    .filter(|(c, s)| *s == name && !live_only.contains(*c))
                    .count() as u64,
                rows,
                positives,
                target_rate: ratio(positives, rows),
            };
            ((*name).to_owned(), report)
        })
        .collect()
}

/// Quarantined rows per offending field, and those out of range per
/// field. A rejected file's one quarantine entry stands for all its rows.
pub(crate) fn quarantine_reasons(
    quarantine: &[QuarantinedRow],
    manifest: &StagedManifest,
) -> (BTreeMap<String, u64>, BTreeMap<String, u64>) {
    let mut reasons = BTreeMap::new();
    let mut out_of_range = BTreeMap::new();
    for q in quarantine.iter().filter(|q| q.field != WHOLE_FILE) {
        *reasons.entry(q.field.clone()).or_insert(0) += 1;
        if q.reason.contains(OUT_OF_RANGE) {
            *out_of_range.entry(q.field.clone()).or_insert(0) += 1;
        }
    }
    for f in manifest.files.values().filter(|f| f.rejected.is_some()) {
        *reasons.entry(WHOLE_FILE.to_owned()).or_insert(0) += f.rows_quarantined;
    }
    (reasons, out_of_range)
}

/// Fails when every raw file was rejected as a whole, naming each with its
/// reason: there is nothing to build from (as when every row is quarantined).
pub(crate) fn ensure_some_file_read(manifest: &StagedManifest) -> Result<()> {
    let rejected: Vec<String> = manifest
        .files
        .values()
        .filter_map(|f| f.rejected.as_ref().map(|r| format!("{}: {r}", f.name)))
        .collect();
    if !manifest.files.is_empty() && rejected.len() == manifest.files.len() {
        bail!(
            "no rows: every raw file was rejected as a whole:\n  {}",
            rejected.join("\n  ")
        );
    }
    Ok(())
}

/// Each staged file's row accounting, with the path it was read from
/// (its name alone when it is no longer among `files`).
pub(crate) fn file_reports(manifest: &StagedManifest, files: &[PathBuf]) -> Vec<FileReport> {
    manifest
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
            format: f.format,
            rejected: f.rejected.clone(),
        })
        .collect()
}
