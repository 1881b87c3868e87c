//! The champion and the promotion decision.
//!
//! The champion is the version the registry's `production` alias points
//! to, scored on the same holdout rows as the candidate in the competition
//! table ([`crate::competition`]; a champion whose features the master
//! table no longer has is reported as unscorable, with the reason). The gate ([`crate::gate`]) decides; under
//! `evaluate.promotion: auto` a passed gate moves `production` to the
//! candidate through the registry (under its lock, logged with the reason);
//! a rejected candidate keeps its `candidate` alias. A rejection is a
//! normal, recorded result, never a failed stage.

use std::path::Path;

use anyhow::{Context, Result};
use revspend_core::metrics::BinaryMetrics;
use revspend_core::model::ModelArtifact;
use revspend_core::params::{EvaluateParams, Promotion};
use revspend_core::registry::{self, Registry};
use serde::Serialize;

use crate::competition::Competition;
use crate::gate::{self, Check};
use crate::slices::SliceReport;

/// The `production` model, as far as it could be scored.
#[derive(Debug, Clone, Serialize)]
pub struct Champion {
    /// Registry version id (`v0001`), model version and metrics on the
    /// candidate's holdout rows (when it could be scored).
    pub version: String,
    pub model_version: String,
    pub metrics: Option<BinaryMetrics>,
    /// Why it was not scored (or `the candidate itself`).
    pub note: Option<String>,
}

/// The champion from the competition table: the `production` version,
/// with its metrics on the same rows (none when it is the candidate
/// itself, or could not be scored, with the reason).
pub fn champion(competition: Option<&Competition>) -> Option<Champion> {
    let c = competition?;
    let version = c.champion.as_ref()?;
    let entry = c.versions.iter().find(|e| &e.version == version)?;
    Some(if entry.is_candidate {
        Champion {
            version: entry.version.clone(),
            model_version: entry.model_version.clone(),
            metrics: None,
            note: Some("the candidate itself".into()),
        }
    } else {
        Champion {
            version: entry.version.clone(),
            model_version: entry.model_version.clone(),
            metrics: entry.metrics.clone(),
            note: entry.note.clone(),
        }
    })
}

/// `reports/promotion.json`.
#[derive(Debug, Clone, Serialize)]
pub struct PromotionReport {
    pub candidate_model_version: String,
    /// The registry version holding the candidate, when registered.
    pub candidate_version: Option<String>,
    pub champion: Option<Champion>,
    /// `promote` or `keep`.
    pub decision: &'static str,
    pub reason: String,
    /// `auto` or `manual`.
    pub mode: &'static str,
    /// Whether this run moved the `production` alias.
    pub promoted: bool,
    pub checks: Vec<Check>,
}

/// Runs the gate, decides, and under `auto` promotes.
pub fn decide(
    params: &EvaluateParams,
    registry: Option<&Path>,
    candidate: &ModelArtifact,
    metrics: &BinaryMetrics,
    prior: &BinaryMetrics,
    champion: Option<Champion>,
    slices: &SliceReport,
) -> Result<PromotionReport> {
    let champion_metrics = champion.as_ref().and_then(|c| c.metrics.as_ref());
    let mut checks = gate::checks(&params.gate, metrics, champion_metrics, prior);
    checks.extend(gate::slice_checks(&params.gate, slices));
    let failed: Vec<&str> = checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| c.check.as_str())
        .collect();
    let already = champion
        .as_ref()
        .is_some_and(|c| c.model_version == candidate.model_version);
    let candidate_version = match registry.filter(|d| d.join("index.json").exists()) {
        Some(dir) => Registry::new(dir)
            .index()
            .context("reading the registry index")?
            .versions
            .iter()
            .rev()
            .find(|v| v.model_version == candidate.model_version)
            .map(|v| v.version.clone()),
        None => None,
    };
    let (decision, reason) = if !failed.is_empty() {
        (
            "keep",
            format!(
                "{} of {} checks failed: {}",
                failed.len(),
                checks.len(),
                failed.join("; ")
            ),
        )
    } else if already {
        ("keep", "the candidate is already production".to_owned())
    } else {
        ("promote", format!("all {} checks passed", checks.len()))
    };
    let mode = match params.promotion {
        Promotion::Auto => "auto",
        Promotion::Manual => "manual",
    };
    let mut promoted = false;
    if decision == "promote"
        && params.promotion == Promotion::Auto
        && let (Some(dir), Some(version)) = (registry, candidate_version.as_deref())
    {
        let change = Registry::new(dir)
            .promote_because(
                version,
                "production",
                &registry::current_user(),
                &format!("promote: evaluate gate, {reason}"),
            )
            .with_context(|| format!("promoting {version} to production"))?;
        log::info!(
            "production: {} -> {} ({})",
            change.from.as_deref().unwrap_or("none"),
            change.to,
            change.reason
        );
        promoted = true;
    }
    Ok(PromotionReport {
        candidate_model_version: candidate.model_version.clone(),
        candidate_version,
        champion,
        decision,
        reason,
        mode,
        promoted,
        checks,
    })
}
