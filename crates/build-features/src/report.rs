//! The stage report (`reports/build_features.json`): row accounting per
//! file and split, null counts, and what the run changed in the layers.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::NaiveDate;
use revspend_table::QuarantinedRow;
use serde::Serialize;

use crate::layers::StagedManifest;
use crate::{SPLITS, ingest};

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

/// Per split (in [`SPLITS`] order), its customers, and its rows and
/// positives as written.
pub(crate) fn split_reports(
    split_of: &BTreeMap<String, &'static str>,
    split_rows: Vec<(u64, u64)>,
) -> BTreeMap<String, SplitReport> {
    SPLITS
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
        .collect()
}

/// Quarantined rows per offending field.
pub(crate) fn quarantine_reasons(quarantine: &[QuarantinedRow]) -> BTreeMap<String, u64> {
    let mut reasons = BTreeMap::new();
    for q in quarantine {
        *reasons.entry(q.field.clone()).or_insert(0) += 1;
    }
    reasons
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
        })
        .collect()
}
