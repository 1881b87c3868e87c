//! Model competition: every registered version scored on the candidate's
//! holdout rows.
//!
//! Each version is loaded through the registry (path, SHA-256, envelope and
//! model version checked) and the holdout file is read again with that
//! version's own feature list, so the rows are the same and a version whose
//! features the master table no longer has is listed with the reason
//! instead of scored. Versions holding the same model (a rerun registers
//! the same model again) are scored once.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};
use revspend_core::metrics::BinaryMetrics;
use revspend_core::registry::{Registry, VersionEntry};
use serde::Serialize;

/// One registered version on the holdout rows.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub version: String,
    pub model_version: String,
    pub created: String,
    pub algorithm: String,
    /// The aliases that point to it (`production`, `candidate`, …).
    pub aliases: Vec<String>,
    /// Whether it is the model this run evaluates.
    pub is_candidate: bool,
    pub metrics: Option<BinaryMetrics>,
    /// Why it was not scored.
    pub note: Option<String>,
}

/// `reports/competition.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Competition {
    pub holdout_rows: usize,
    pub candidate_model_version: String,
    /// The version `production` points to, if any.
    pub champion: Option<String>,
    pub versions: Vec<Entry>,
    /// The champion's calibrated probabilities on the holdout rows (when it
    /// is not the candidate and could be scored), kept for its intervals
    /// and curves so it is scored once.
    #[serde(skip)]
    pub champion_scores: Option<ChampionScores>,
}

/// The champion's probabilities, in holdout file order, and its threshold.
#[derive(Debug, Clone)]
pub struct ChampionScores {
    pub scores: Vec<f64>,
    pub threshold: f64,
}

/// One version's calibrated probabilities for the rows of `holdout`, in
/// file order, its decision threshold and the labels; or why it cannot be
/// scored.
pub fn probabilities(
    reg: &Registry,
    version: &str,
    holdout: &Path,
) -> Result<(Vec<f64>, f64, Vec<bool>), String> {
    let loaded = reg.load(version).map_err(|e| format!("cannot be loaded: {e}"))?;
    let rows = revspend_table::read_labelled(holdout, &loaded.model.features)
        .map_err(|e| format!("its features cannot be read from the holdout: {e}"))?;
    let scores = loaded
        .model
        .predict_proba(&rows.x)
        .map_err(|e| format!("cannot score the holdout: {e}"))?;
    Ok((scores, loaded.model.threshold, rows.y))
}

/// Scores one version on `holdout`, or says why it cannot be.
pub fn score(reg: &Registry, entry: &VersionEntry, holdout: &Path) -> Result<BinaryMetrics, String> {
    let (scores, threshold, y) = probabilities(reg, &entry.version, holdout)?;
    Ok(BinaryMetrics::compute(&scores, &y, threshold))
}

/// Every version of the registry at `dir` on `holdout`; `None` without a
/// registry index. The candidate's metrics are the stage's own.
pub fn compete(
    dir: Option<&Path>,
    candidate_model_version: &str,
    candidate: &BinaryMetrics,
    holdout: &Path,
    holdout_rows: usize,
) -> Result<Option<Competition>> {
    let Some(dir) = dir.filter(|d| d.join("index.json").exists()) else {
        return Ok(None);
    };
    let reg = Registry::new(dir);
    let index = reg.index().context("reading the registry index")?;
    let mut scored: HashMap<String, Result<BinaryMetrics, String>> = HashMap::new();
    scored.insert(candidate_model_version.to_owned(), Ok(candidate.clone()));
    // The champion first, keeping its probabilities.
    let mut champion_scores = None;
    let production = index
        .aliases
        .get("production")
        .and_then(|v| index.versions.iter().find(|e| &e.version == v));
    if let Some(entry) = production.filter(|e| e.model_version != candidate_model_version) {
        let result = probabilities(&reg, &entry.version, holdout).map(|(scores, threshold, y)| {
            let metrics = BinaryMetrics::compute(&scores, &y, threshold);
            champion_scores = Some(ChampionScores { scores, threshold });
            metrics
        });
        scored.insert(entry.model_version.clone(), result);
    }
    let mut versions = Vec::with_capacity(index.versions.len());
    for entry in &index.versions {
        let result = scored
            .entry(entry.model_version.clone())
            .or_insert_with(|| score(&reg, entry, holdout))
            .clone();
        let aliases = index
            .aliases
            .iter()
            .filter(|(_, v)| **v == entry.version)
            .map(|(a, _)| a.clone())
            .collect();
        let (metrics, note) = match result {
            Ok(m) => (Some(m), None),
            Err(why) => (None, Some(why)),
        };
        versions.push(Entry {
            version: entry.version.clone(),
            model_version: entry.model_version.clone(),
            created: entry.created.clone(),
            algorithm: entry.algorithm.clone(),
            aliases,
            is_candidate: entry.model_version == candidate_model_version,
            metrics,
            note,
        });
    }
    Ok(Some(Competition {
        holdout_rows,
        candidate_model_version: candidate_model_version.to_owned(),
        champion: index.aliases.get("production").cloned(),
        versions,
        champion_scores,
    }))
}
