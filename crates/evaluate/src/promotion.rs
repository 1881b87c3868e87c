//! The champion and the promotion decision.
//!
//! The champion is the version the registry's `production` alias points
//! to, scored on the same holdout rows as the candidate (the holdout file
//! is read again with the champion's own feature list, so a champion whose
//! features the master table no longer has is reported as unscorable, with
//! the reason). The gate ([`crate::gate`]) decides; under
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

use crate::gate::{self, Check};

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

/// Finds and scores the champion; `None` when there is no registry or no
/// `production` alias.
pub fn champion(
    registry: Option<&Path>,
    candidate: &ModelArtifact,
    holdout: &Path,
) -> Result<Option<Champion>> {
    let Some(dir) = registry.filter(|d| d.join("index.json").exists()) else {
        return Ok(None);
    };
    let reg = Registry::new(dir);
    let index = reg.index().context("reading the registry index")?;
    let Some(entry) = index.resolve("production") else {
        return Ok(None);
    };
    let (version, model_version) = (entry.version.clone(), entry.model_version.clone());
    if model_version == candidate.model_version {
        return Ok(Some(Champion {
            version,
            model_version,
            metrics: None,
            note: Some("the candidate itself".into()),
        }));
    }
    let unscorable = |why: String| Champion {
        version: version.clone(),
        model_version: model_version.clone(),
        metrics: None,
        note: Some(why),
    };
    let loaded = match reg.load("production") {
        Ok(l) => l,
        Err(e) => return Ok(Some(unscorable(format!("cannot be loaded: {e}")))),
    };
    let rows = match revspend_table::read_labelled(holdout, &loaded.model.features) {
        Ok(r) => r,
        Err(e) => {
            return Ok(Some(unscorable(format!(
                "its features cannot be read from the holdout: {e}"
            ))));
        }
    };
    let scores = match loaded.model.predict_proba(&rows.x) {
        Ok(s) => s,
        Err(e) => return Ok(Some(unscorable(format!("cannot score the holdout: {e}")))),
    };
    Ok(Some(Champion {
        version,
        model_version,
        metrics: Some(BinaryMetrics::compute(&scores, &rows.y, loaded.model.threshold)),
        note: None,
    }))
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
) -> Result<PromotionReport> {
    let champion_metrics = champion.as_ref().and_then(|c| c.metrics.as_ref());
    let checks = gate::checks(&params.gate, metrics, champion_metrics, prior);
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
