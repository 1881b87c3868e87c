//! The checks on the train split: leakage, feature selection, the reference
//! profile, and the model's feature set they leave.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use revspend_core::artifact::{self, TARGET_COLUMN};
use revspend_core::features::Feature;
use revspend_core::params::BuildFeaturesConfig;
use revspend_core::target::TargetRule;

use crate::feature_layer::lineage_order;
use crate::ingest::Staged;
use crate::layers::StagedManifest;
use crate::{Outputs, layers, leakage, quality, selection, stats};

/// Histogram bins of the reference profile.
pub const PROFILE_BINS: usize = 20;

/// The leakage check, feature selection and reference profile, all on the
/// train split's columns (one per `Feature::ALL` entry). Writes their
/// reports and returns the selected feature set; fails when a leak by
/// lineage is in the feature set and params do not allow it, warns about
/// suspiciously strong features nobody has acknowledged.
pub(crate) fn check_and_select(
    params: &BuildFeaturesConfig,
    rule: &TargetRule,
    out: &Outputs,
    columns: &dyn stats::TrainColumns,
    y_train: Vec<bool>,
) -> Result<Vec<Feature>> {
    let started = std::time::Instant::now();
    let counts = stats::value_counts(columns, &y_train);
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
    for warning in leaks.warning_messages() {
        log::warn!("leakage check: {warning} (see {})", out.leakage_report.display());
    }
    for name in &leaks.unused_acknowledgements {
        log::info!(
            "leakage check: {name} is acknowledged in build_features.leakage.acknowledged but is not \
             suspicious in this run's feature set; the acknowledgement can go"
        );
    }
    if let Some(message) = leaks.leak_message() {
        if params.allow_leaky_features {
            log::warn!(
                "leaky features in the model's feature set, allowed by params for comparison: {message}"
            );
        } else {
            bail!(
                "leakage check failed: {message} (see {})",
                out.leakage_report.display()
            );
        }
    }
    log::debug!(
        "checks: leakage checked after {:.3} s",
        started.elapsed().as_secs_f64()
    );
    let (feature_set, selection) = selection::select(columns, &counts, &feature_set, &params.selection);
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

/// Runs the data-quality suite over every staged row, in file/line order.
pub(crate) fn check_quality(
    suite: &quality::Suite,
    all: &Staged,
    manifest: &StagedManifest,
) -> Result<quality::QualityReport> {
    let headers: Vec<quality::FileHeader> = manifest
        .files
        .values()
        .map(|f| quality::FileHeader {
            file: f.name.clone(),
            columns: f.header.clone(),
        })
        .collect();
    let started = std::time::Instant::now();
    let by_lineage = lineage_order(all);
    let staged_df = layers::quality_frame(all, &by_lineage)?;
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
}
