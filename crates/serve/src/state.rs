//! What every request handler shares: the deployment being served (the
//! routing and a validated model per variant, swapped whole, atomically,
//! when the registry, the snapshot or the routing file changes), the
//! pseudonymisation key, the prediction log, the feedback index and the
//! shadow queue, and the one function that scores transactions with them.
//! Loading and reloading are in [`crate::loading`].

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use anyhow::Context;
use arc_swap::ArcSwapOption;
use revspend_core::contract::{Transaction, ValueRanges};
use revspend_core::features::{self, History, OnlineSnapshot};
use revspend_core::model::{FeatureMatrix, ModelArtifact};
use revspend_core::pseudonym::Pseudonymiser;
use serde::{Deserialize, Serialize};

use crate::experiment::Deployment;
use crate::experiment::feedback::PendingIndex;
use crate::experiment::shadow::{ShadowJob, ShadowPool};
use crate::prediction_log::{PredictionEntry, PredictionLog};
use crate::{ApiError, ModelSource};

/// A model with the snapshot it serves from: built whole, validated, then
/// swapped in; requests in flight keep the one they started with.
pub struct Serving {
    pub(crate) model: ModelArtifact,
    pub(crate) snapshot: Arc<OnlineSnapshot>,
    /// Where the model came from, for `/version`.
    pub(crate) origin: ModelOrigin,
    /// The model's feature names, for the prediction log.
    pub(crate) feature_names: Vec<String>,
    /// The model's version, shared with the feedback index's entries.
    pub(crate) version: Arc<str>,
}

impl fmt::Debug for Serving {
    // A summary: the snapshot can hold millions of customers.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Serving")
            .field("model_version", &self.model.model_version)
            .field("snapshot_customers", &self.snapshot.customers.len())
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// One row scored by one model.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    pub probability: f64,
    pub cold_start: bool,
    /// The model's input, in its feature order.
    pub features: Vec<f64>,
}

impl Serving {
    /// The model's version.
    pub fn model_version(&self) -> &str {
        &self.model.model_version
    }

    /// The value ranges requests are checked against: those the snapshot's
    /// rows were staged under (the quality suite's `ranges`).
    pub fn ranges(&self) -> &ValueRanges {
        &self.snapshot.ranges
    }

    /// Validates a model against the snapshot and the key (fingerprints,
    /// [`crate::check_keys`]) and with a smoke prediction; refused otherwise.
    pub fn new(
        model: ModelArtifact,
        snapshot: Arc<OnlineSnapshot>,
        origin: ModelOrigin,
        pseudonymiser: &Pseudonymiser,
    ) -> anyhow::Result<Serving> {
        crate::check_keys(pseudonymiser, &model, &snapshot)?;
        if snapshot.rule != model.rule {
            log::warn!(
                "the online snapshot was built with target rule {:?} but model {} with {:?}: \
                 history revenge counts follow a different rule than in training",
                snapshot.rule,
                model.model_version,
                model.rule
            );
        }
        let feature_names = model.features.iter().map(|f| f.name().to_owned()).collect();
        let version = Arc::from(model.model_version.as_str());
        let serving = Serving {
            model,
            snapshot,
            origin,
            feature_names,
            version,
        };
        serving.smoke_test(pseudonymiser)?;
        Ok(serving)
    }

    /// Scores one synthetic purchase of a customer no snapshot knows: a
    /// model that cannot score a row, or scores it outside [0, 1], is
    /// refused before it serves (readiness means this passed).
    fn smoke_test(&self, pseudonymiser: &Pseudonymiser) -> anyhow::Result<()> {
        let txn = crate::request::transaction(
            &serde_json::json!({
                "id": "0",
                "limite_total": "1.000,00",
                "limite_disp": "500,00",
                "data": "01.01.2020",
                "valor": "10,00",
                "grupo_estabelecimento": "VESTUARIO",
            }),
            &ValueRanges::default(),
        )
        .map_err(|e| anyhow::anyhow!("the smoke-test purchase does not parse: {e}"))?;
        let pseudonym = pseudonymiser.pseudonym(&txn.id);
        let scored = self.score(&[(pseudonym.as_str(), &txn)]).map_err(|e| {
            anyhow::anyhow!("model {} failed its smoke test: {e:?}", self.model.model_version)
        })?;
        let probability = scored.first().map_or(f64::NAN, |p| p.probability);
        anyhow::ensure!(
            (0.0..=1.0).contains(&probability),
            "model {} failed its smoke test: probability {probability}",
            self.model.model_version,
        );
        log::info!(
            "smoke test passed: model {} scores a cold-start purchase {probability:.4}",
            self.model.model_version,
        );
        Ok(())
    }

    /// Scores rows, each a customer's pseudonym and its purchase, in one
    /// batch (one feature matrix, one model call), in order.
    pub fn score(&self, rows: &[(&str, &Transaction)]) -> Result<Vec<Scored>, ApiError> {
        let cold = History::default();
        let width = self.model.features.len();
        let mut values = Vec::with_capacity(rows.len() * width);
        let mut cold_starts = Vec::with_capacity(rows.len());
        for (pseudonym, txn) in rows {
            let (history, cold_start) = match self.snapshot.history(pseudonym) {
                Some(h) => (h, false),
                None => (&cold, true),
            };
            log::debug!("scoring customer {pseudonym} (cold start: {cold_start})");
            let all = features::compute(history, txn, &self.model.rule);
            values.extend(features::select(&all, &self.model.features));
            cold_starts.push(cold_start);
        }
        let x = FeatureMatrix::new(rows.len(), width, values);
        let probabilities = self
            .model
            .predict_proba(&x)
            .with_context(|| format!("model {} failed to predict", self.model.model_version))
            .map_err(ApiError::Internal)?;
        if probabilities.len() != rows.len() {
            return Err(ApiError::Internal(anyhow::anyhow!(
                "model {} returned {} probabilities for {} rows",
                self.model.model_version,
                probabilities.len(),
                rows.len()
            )));
        }
        probabilities
            .into_iter()
            .zip(cold_starts)
            .enumerate()
            .map(|(i, (probability, cold_start))| {
                if !probability.is_finite() {
                    return Err(ApiError::Internal(anyhow::anyhow!(
                        "model {} returned the probability {probability}",
                        self.model.model_version
                    )));
                }
                Ok(Scored {
                    probability,
                    cold_start,
                    features: x.row(i).to_vec(),
                })
            })
            .collect()
    }
}

/// What every request handler shares: the deployment being served, the key
/// that maps request ids to the store's pseudonyms, the limits, what a
/// reload reads, and where predictions and feedback go.
pub struct AppState {
    /// None until the first deployment is loaded ([`AppState::load_first`]).
    pub(crate) current: ArcSwapOption<Deployment>,
    pub(crate) pseudonymiser: Pseudonymiser,
    pub(crate) max_body_bytes: usize,
    pub(crate) limits: BatchLimits,
    /// How long a request body may take to arrive.
    pub(crate) body_timeout: std::time::Duration,
    /// Where reloads read the model of the default variant (none: a state
    /// built in memory cannot reload).
    pub(crate) source: Option<ModelSource>,
    pub(crate) snapshot_path: Option<PathBuf>,
    /// The routing file (none: one variant, the followed alias, plain).
    pub(crate) routing_path: Option<PathBuf>,
    /// Where bandit states are persisted (none: in memory only).
    pub(crate) state_dir: Option<PathBuf>,
    /// The prediction log's directory, read back at start for feedback.
    pub(crate) log_dir: Option<PathBuf>,
    /// How far back the feedback index is rebuilt at start.
    pub(crate) feedback_window: chrono::Duration,
    /// One reload at a time.
    pub(crate) reloading: std::sync::Mutex<()>,
    pub(crate) reloads: ReloadCounters,
    /// The bearer token of `/admin/*` (none: disabled).
    pub(crate) admin_token: Option<crate::AdminToken>,
    pub(crate) metrics: crate::metrics::Metrics,
    pub(crate) access_log: crate::access_log::AccessLog,
    pub(crate) log: Arc<PredictionLog>,
    /// The live drift gauges' window (none: the gauges are off).
    pub(crate) drift: Option<Arc<crate::drift::DriftWindow>>,
    pub(crate) pending: PendingIndex,
    pub(crate) shadow: ShadowPool,
}

/// How many reloads swapped a model in or were refused, and the last
/// refusal.
#[derive(Debug, Default)]
pub struct ReloadCounters {
    pub swapped: AtomicU64,
    pub refused: AtomicU64,
    pub last_error: std::sync::Mutex<Option<String>>,
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReloadOutcome {
    /// `swapped` or `unchanged`.
    pub outcome: String,
    /// The primary variant's model before and after.
    pub from: String,
    pub to: String,
    pub registry_version: Option<String>,
    /// The experiment in effect after the reload.
    pub experiment: String,
    /// Variants whose new model was refused (they keep serving the one
    /// they had), with the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<String>,
}

/// The limits of `POST /predict/batch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Most rows in one batch (more: 413 naming the limit).
    pub max_rows: usize,
    /// Largest batch body, in bytes.
    pub max_body_bytes: usize,
}

impl Default for BatchLimits {
    fn default() -> BatchLimits {
        BatchLimits {
            max_rows: crate::config::DEFAULT_MAX_BATCH_ROWS,
            max_body_bytes: crate::config::DEFAULT_MAX_BATCH_BODY_BYTES,
        }
    }
}

/// Where the served model was read from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModelOrigin {
    /// The artifact file.
    pub path: String,
    /// The registry version and the alias (or version) it was named by,
    /// when served from a registry.
    pub registry_version: Option<String>,
    pub registry_alias: Option<String>,
    /// When the model was loaded (RFC 3339, UTC).
    pub loaded_at: String,
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppState")
            .field("deployment", &self.current.load())
            .field("pseudonymiser", &self.pseudonymiser)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// The deployment being served now; a request holds it to the end,
    /// whatever a reload swaps in meanwhile. A 503 while the first one is
    /// loading.
    pub fn deployment(&self) -> Result<Arc<Deployment>, ApiError> {
        self.current.load_full().ok_or(ApiError::NotReady)
    }

    /// The primary variant's model being served now (what `/version`,
    /// `/health` and the v2 metadata describe).
    pub fn serving(&self) -> Result<Arc<Serving>, ApiError> {
        Ok(self.deployment()?.primary().clone())
    }

    /// The same state with another body timeout.
    pub fn with_body_timeout(mut self, timeout: std::time::Duration) -> AppState {
        self.body_timeout = timeout;
        self
    }

    /// The same state with other batch limits.
    pub fn with_batch_limits(mut self, limits: BatchLimits) -> AppState {
        self.limits = limits;
        self
    }

    /// The same state with the admin routes' bearer token (none: the admin
    /// routes are disabled).
    pub fn with_admin_token(mut self, token: Option<crate::AdminToken>) -> AppState {
        self.admin_token = token;
        self
    }

    /// Stops the shadow worker until the guard is dropped (tests show a
    /// stalled shadow model never holds a request up).
    #[doc(hidden)]
    pub fn pause_shadow(&self) -> std::sync::MutexGuard<'_, ()> {
        self.shadow.pause()
    }

    /// Scores one transaction with the deployment serving now, as
    /// `POST /predict` does.
    pub fn predict(&self, txn: &Transaction) -> Result<Prediction, ApiError> {
        let mut out = self.score(
            &self.deployment()?,
            std::slice::from_ref(txn),
            "/predict",
            Instant::now(),
        )?;
        out.pop()
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no prediction for one transaction")))
    }

    /// Scores transactions with the deployment the request took when it
    /// started (and checked its rows against): each row goes to the variant
    /// the routing picks for its customer, each variant scores its rows in
    /// one model call, and the results come back in order. Each prediction
    /// is counted, made available for feedback, queued for the prediction
    /// log and, when sampled, for the shadow models.
    pub fn score(
        &self,
        deployment: &Arc<Deployment>,
        txns: &[Transaction],
        route: &'static str,
        started: Instant,
    ) -> Result<Vec<Prediction>, ApiError> {
        let mut pseudonyms: Vec<String> = txns.iter().map(|t| self.pseudonymiser.pseudonym(&t.id)).collect();
        let arms: Vec<usize> = pseudonyms.iter().map(|p| deployment.route(p)).collect();
        let mut out: Vec<Option<Prediction>> = vec![None; txns.len()];
        let time = revspend_core::artifact::prediction_log::now();
        for (arm, serving) in deployment.variants.iter().enumerate() {
            let rows: Vec<usize> = (0..txns.len()).filter(|&i| arms[i] == arm).collect();
            if rows.is_empty() {
                continue;
            }
            let input: Vec<(&str, &Transaction)> =
                rows.iter().map(|&i| (pseudonyms[i].as_str(), &txns[i])).collect();
            let scored = serving.score(&input)?;
            let latency = started.elapsed();
            let latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
            let model = &serving.model;
            for (&i, row) in rows.iter().zip(scored) {
                let (id, prediction_id) = prediction_id();
                let decision = row.probability >= model.threshold;
                self.pending.insert(id, deployment.contexts[arm], decision);
                if deployment.sample_shadow() {
                    self.shadow.offer(ShadowJob {
                        deployment: deployment.clone(),
                        prediction_id: prediction_id.clone(),
                        pseudonym: pseudonyms[i].clone(),
                        txn: txns[i].clone(),
                    });
                }
                let prediction = Prediction {
                    prediction_id,
                    variant: deployment.names[arm].to_string(),
                    model_version: model.model_version.clone(),
                    is_revenge_spending: decision,
                    probability: row.probability,
                    threshold: model.threshold,
                    cold_start: row.cold_start,
                };
                if self.log.enabled() {
                    self.log.prediction(PredictionEntry {
                        time,
                        prediction_id: id,
                        // Not read again: each row is scored once.
                        pseudonym: std::mem::take(&mut pseudonyms[i]),
                        experiment: deployment.experiment.clone(),
                        variant: deployment.names[arm].clone(),
                        serving: serving.clone(),
                        route,
                        features: row.features,
                        probability: row.probability,
                        decision,
                        cold_start: row.cold_start,
                        latency_us,
                    });
                }
                out[i] = Some(prediction);
            }
            self.metrics
                .variant_latency(&deployment.names[arm], latency.as_secs_f64());
        }
        let predictions: Vec<Prediction> = out.into_iter().flatten().collect();
        if predictions.len() != txns.len() {
            return Err(ApiError::Internal(anyhow::anyhow!(
                "{} predictions for {} rows",
                predictions.len(),
                txns.len()
            )));
        }
        self.metrics.predictions(&predictions);
        Ok(predictions)
    }

    /// The metrics' text exposition.
    pub fn metrics_text(&self) -> Result<String, std::fmt::Error> {
        if let Ok(deployment) = self.deployment() {
            self.metrics.experiment(&deployment, self.pending.len());
        }
        self.metrics.encode()
    }

    /// At shutdown, after the last request: scores the queued shadow rows,
    /// persists the bandit, writes what the prediction log holds and closes
    /// it.
    pub fn shutdown(&self) {
        self.shadow.close();
        if let Ok(deployment) = self.deployment()
            && let Some(bandit) = &deployment.bandit
            && let Err(e) = bandit.persist()
        {
            log::error!("{e:#}");
        }
        self.log.close();
    }
}

/// A new prediction id: a UUID v7 (time-ordered, so ids sort as they were
/// made and index well in the prediction log), as a number (the feedback
/// index's key) and as text. Each worker thread keeps its own counter
/// context, strictly increasing within the thread; across threads ids are
/// ordered to the millisecond. `Uuid::now_v7` shares one context behind a
/// mutex and, without uuid's `fast-rng`, reads the OS random source per id:
/// a futex and a `getrandom` system call per request.
fn prediction_id() -> (u128, String) {
    use uuid::timestamp::context::{ContextV7, ThreadLocalContext};
    thread_local! {
        static CONTEXT: ContextV7 = const { ContextV7::new() };
    }
    let now = uuid::Timestamp::now(ThreadLocalContext::new(&CONTEXT));
    let id = uuid::Uuid::new_v7(now);
    (id.as_u128(), id.to_string())
}

/// The `POST /predict` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({
    "prediction_id": "01a22db4-c095-754f-ad8f-596a0f323c2c",
    "variant": "production",
    "model_version": "gbm-8725246b25b9",
    "is_revenge_spending": true,
    "probability": 0.5569100604602696,
    "threshold": 0.5333047388904987,
    "cold_start": false
}))]
pub struct Prediction {
    /// Unique per prediction (UUID v7): what feedback and the prediction
    /// log refer to.
    pub prediction_id: String,
    /// The routing variant that answered (the followed alias's name
    /// without a routing file).
    pub variant: String,
    pub model_version: String,
    /// `probability >= threshold`.
    pub is_revenge_spending: bool,
    pub probability: f64,
    pub threshold: f64,
    /// The customer is not in the online snapshot: history features took
    /// their documented cold-start values.
    pub cold_start: bool,
}
