//! What every request handler shares: the model being served (swapped
//! whole, atomically, when the registry alias moves), the online feature
//! store and the pseudonymisation key, and the one function that scores
//! transactions with them.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use arc_swap::ArcSwapOption;
use revspend_core::artifact;
use revspend_core::contract::{Transaction, ValueRanges};
use revspend_core::features::{self, History, OnlineSnapshot};
use revspend_core::model::{FeatureMatrix, ModelArtifact};
use revspend_core::pseudonym::{self, Pseudonymiser};
use serde::{Deserialize, Serialize};

use crate::{ApiError, Config, ModelSource};

/// A model with the snapshot it serves from: built whole, validated, then
/// swapped in; requests in flight keep the one they started with.
pub struct Serving {
    pub(crate) model: ModelArtifact,
    pub(crate) snapshot: Arc<OnlineSnapshot>,
    /// Where the model came from, for `/version`.
    pub(crate) origin: ModelOrigin,
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
    /// [`check_keys`]) and with a smoke prediction; refused otherwise.
    pub fn new(
        model: ModelArtifact,
        snapshot: Arc<OnlineSnapshot>,
        origin: ModelOrigin,
        pseudonymiser: &Pseudonymiser,
    ) -> anyhow::Result<Serving> {
        check_keys(pseudonymiser, &model, &snapshot)?;
        if snapshot.rule != model.rule {
            log::warn!(
                "the online snapshot was built with target rule {:?} but model {} with {:?}: \
                 history revenge counts follow a different rule than in training",
                snapshot.rule,
                model.model_version,
                model.rule
            );
        }
        let serving = Serving {
            model,
            snapshot,
            origin,
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
        let p = self
            .predict_many(pseudonymiser, std::slice::from_ref(&txn))
            .map_err(|e| {
                anyhow::anyhow!("model {} failed its smoke test: {e:?}", self.model.model_version)
            })?;
        let probability = p.first().map_or(f64::NAN, |p| p.probability);
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

    /// Scores transactions in one batch (one feature matrix, one model
    /// call), each with its own prediction id, in order.
    pub fn predict_many(
        &self,
        pseudonymiser: &Pseudonymiser,
        txns: &[Transaction],
    ) -> Result<Vec<Prediction>, ApiError> {
        let cold = History::default();
        let width = self.model.features.len();
        let mut values = Vec::with_capacity(txns.len() * width);
        let mut cold_starts = Vec::with_capacity(txns.len());
        for txn in txns {
            let pseudonym = pseudonymiser.pseudonym(&txn.id);
            let (history, cold_start) = match self.snapshot.history(&pseudonym) {
                Some(h) => (h, false),
                None => (&cold, true),
            };
            log::debug!("scoring customer {pseudonym} (cold start: {cold_start})");
            let all = features::compute(history, txn, &self.model.rule);
            values.extend(features::select(&all, &self.model.features));
            cold_starts.push(cold_start);
        }
        let x = FeatureMatrix::new(txns.len(), width, values);
        let probabilities = self
            .model
            .predict_proba(&x)
            .with_context(|| format!("model {} failed to predict", self.model.model_version))
            .map_err(ApiError::Internal)?;
        if probabilities.len() != txns.len() {
            return Err(ApiError::Internal(anyhow::anyhow!(
                "model {} returned {} probabilities for {} rows",
                self.model.model_version,
                probabilities.len(),
                txns.len()
            )));
        }
        probabilities
            .into_iter()
            .zip(cold_starts)
            .map(|(probability, cold_start)| {
                if !probability.is_finite() {
                    return Err(ApiError::Internal(anyhow::anyhow!(
                        "model {} returned the probability {probability}",
                        self.model.model_version
                    )));
                }
                Ok(Prediction {
                    prediction_id: prediction_id(),
                    model_version: self.model.model_version.clone(),
                    is_revenge_spending: probability >= self.model.threshold,
                    probability,
                    threshold: self.model.threshold,
                    cold_start,
                })
            })
            .collect()
    }
}

/// What every request handler shares: the model being served, the key that
/// maps request ids to the store's pseudonyms, the limits, and what a reload
/// reads.
pub struct AppState {
    /// None until the first model is loaded ([`AppState::load_first`]).
    current: ArcSwapOption<Serving>,
    pseudonymiser: Pseudonymiser,
    pub(crate) max_body_bytes: usize,
    pub(crate) limits: BatchLimits,
    /// How long a request body may take to arrive.
    pub(crate) body_timeout: std::time::Duration,
    /// Where reloads read the model and the snapshot (none: a state built
    /// in memory cannot reload).
    source: Option<ModelSource>,
    snapshot_path: Option<PathBuf>,
    /// One reload at a time.
    reloading: std::sync::Mutex<()>,
    pub(crate) reloads: ReloadCounters,
    /// The bearer token of `/admin/*` (none: disabled).
    pub(crate) admin_token: Option<crate::AdminToken>,
    pub(crate) metrics: crate::metrics::Metrics,
    pub(crate) access_log: crate::access_log::AccessLog,
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
    pub from: String,
    pub to: String,
    pub registry_version: Option<String>,
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
    /// The registry version and the alias followed, when served from a
    /// registry.
    pub registry_version: Option<String>,
    pub registry_alias: Option<String>,
    /// When the model was loaded (RFC 3339, UTC).
    pub loaded_at: String,
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppState")
            .field("serving", &self.current.load())
            .field("pseudonymiser", &self.pseudonymiser)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// A state over an already loaded model and snapshot; refused when the
    /// key is not the one both were made with ([`check_keys`]) or the model
    /// fails its smoke prediction. It cannot reload (no source).
    pub fn new(
        model: ModelArtifact,
        snapshot: OnlineSnapshot,
        pseudonymiser: Pseudonymiser,
        max_body_bytes: usize,
    ) -> anyhow::Result<AppState> {
        let origin = ModelOrigin {
            loaded_at: revspend_core::registry::now_rfc3339(),
            ..ModelOrigin::default()
        };
        let serving = Serving::new(model, Arc::new(snapshot), origin, &pseudonymiser)?;
        Ok(AppState {
            current: ArcSwapOption::from_pointee(serving),
            pseudonymiser,
            max_body_bytes,
            limits: BatchLimits::default(),
            body_timeout: crate::config::DEFAULT_BODY_TIMEOUT,
            source: None,
            snapshot_path: None,
            reloading: std::sync::Mutex::new(()),
            reloads: ReloadCounters::default(),
            admin_token: None,
            metrics: crate::metrics::Metrics::new(),
            access_log: crate::access_log::AccessLog::default(),
        })
    }

    /// The model being served now; a request holds it to the end, whatever
    /// a reload swaps in meanwhile. A 503 while the first model is loading.
    pub fn serving(&self) -> Result<Arc<Serving>, ApiError> {
        self.current.load_full().ok_or(ApiError::NotReady)
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

    /// Reads the model and the snapshot named in `config`. Without a
    /// snapshot every customer is a cold start.
    pub fn load(config: &Config, pseudonymiser: Pseudonymiser) -> anyhow::Result<AppState> {
        let state = AppState::unloaded(config, pseudonymiser);
        state.load_first()?;
        Ok(state)
    }

    /// Loads the model and the snapshot named at start ([`AppState::unloaded`])
    /// and puts them in service: until then the server is live but not
    /// ready (503).
    pub fn load_first(&self) -> anyhow::Result<()> {
        let source = self
            .source
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("this server was built from a model in memory"))?;
        let snapshot = match self.snapshot_path.as_deref() {
            Some(path) => Some(Arc::new(load_snapshot(path)?)),
            None => None,
        };
        let serving = load_serving(source, snapshot, &self.pseudonymiser)?;
        self.current.store(Some(Arc::new(serving)));
        self.metrics.reload(true);
        Ok(())
    }

    /// The state of a server configured by `config` before its model is
    /// loaded ([`AppState::load_first`]): it answers `/health/live`, and
    /// 503 on `/health/ready` and the scoring routes.
    pub fn unloaded(config: &Config, pseudonymiser: Pseudonymiser) -> AppState {
        AppState {
            current: ArcSwapOption::empty(),
            pseudonymiser,
            max_body_bytes: config.max_body_bytes,
            limits: config.batch,
            body_timeout: config.body_timeout,
            source: Some(config.model.clone()),
            snapshot_path: config.snapshot.clone(),
            reloading: std::sync::Mutex::new(()),
            reloads: ReloadCounters::default(),
            admin_token: None,
            metrics: crate::metrics::Metrics::new(),
            access_log: crate::access_log::AccessLog::new(config.access_log_every),
        }
    }

    /// Loads the model the source names now (a registry alias may have
    /// moved) and the snapshot file again when `snapshot` is set, validates
    /// them ([`Serving::new`]) and swaps them in. A model or snapshot that
    /// fails is refused, logged and counted, and the one serving stays.
    pub fn reload(&self, snapshot: bool) -> anyhow::Result<ReloadOutcome> {
        let _one_at_a_time = self
            .reloading
            .lock()
            .map_err(|_| anyhow::anyhow!("a reload panicked earlier"))?;
        let result = self.try_reload(snapshot);
        self.metrics
            .reload(result.as_ref().is_ok_and(|o| o.outcome == "swapped"));
        match &result {
            Ok(o) if o.outcome == "swapped" => {
                self.reloads.swapped.fetch_add(1, Ordering::Relaxed);
                log::info!("reload: model {} -> {}", o.from, o.to);
            }
            Ok(_) => {}
            Err(e) => {
                self.reloads.refused.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut last) = self.reloads.last_error.lock() {
                    *last = Some(format!("{e:#}"));
                }
                match self.serving() {
                    Ok(serving) => log::error!(
                        "reload refused, the model {} keeps serving: {e:#}",
                        serving.model.model_version
                    ),
                    Err(_) => log::error!("reload refused, no model is serving yet: {e:#}"),
                }
            }
        }
        result
    }

    fn try_reload(&self, snapshot: bool) -> anyhow::Result<ReloadOutcome> {
        let source = self.source.as_ref().ok_or_else(|| {
            anyhow::anyhow!("this server was built from a model in memory: nothing to reload")
        })?;
        let current = self
            .serving()
            .map_err(|_| anyhow::anyhow!("the first model is still loading"))?;
        let snapshot = match (&self.snapshot_path, snapshot) {
            (None, _) => None,
            (Some(path), true) => Some(Arc::new(load_snapshot(path)?)),
            (Some(_), false) => Some(current.snapshot.clone()),
        };
        let next = load_serving(source, snapshot, &self.pseudonymiser)?;
        let outcome = ReloadOutcome {
            outcome: "swapped".into(),
            from: current.model.model_version.clone(),
            to: next.model.model_version.clone(),
            registry_version: next.origin.registry_version.clone(),
        };
        self.current.store(Some(Arc::new(next)));
        Ok(outcome)
    }

    /// The registry version the followed alias points to now (none for a
    /// file source or an unreadable registry).
    pub fn alias_target(&self) -> Option<String> {
        let Some(ModelSource::Registry { dir, alias }) = &self.source else {
            return None;
        };
        revspend_core::registry::Registry::new(dir)
            .index()
            .ok()
            .and_then(|index| index.aliases.get(alias).cloned())
    }

    /// The registry and alias the server follows, when it follows one.
    pub fn followed(&self) -> Option<(&Path, &str)> {
        match &self.source {
            Some(ModelSource::Registry { dir, alias }) => Some((dir.as_path(), alias.as_str())),
            _ => None,
        }
    }

    /// The same state with the admin routes' bearer token (none: the admin
    /// routes are disabled).
    pub fn with_admin_token(mut self, token: Option<crate::AdminToken>) -> AppState {
        self.admin_token = token;
        self
    }

    /// Reloads that swapped a model in, and reloads refused.
    pub fn reload_counts(&self) -> (u64, u64) {
        (
            self.reloads.swapped.load(Ordering::Relaxed),
            self.reloads.refused.load(Ordering::Relaxed),
        )
    }

    /// The snapshot file's path, when there is one.
    pub fn snapshot_path(&self) -> Option<&Path> {
        self.snapshot_path.as_deref()
    }

    /// Scores one transaction with the model serving now.
    pub fn predict(&self, txn: &Transaction) -> Result<Prediction, ApiError> {
        let mut out = self.score(&*self.serving()?, std::slice::from_ref(txn))?;
        out.pop()
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no prediction for one transaction")))
    }

    /// Scores transactions in one model call with `serving` (what the
    /// request took from [`AppState::serving`] when it started, and checked
    /// its rows against) and counts the predictions.
    pub fn score(&self, serving: &Serving, txns: &[Transaction]) -> Result<Vec<Prediction>, ApiError> {
        let predictions = serving.predict_many(&self.pseudonymiser, txns)?;
        self.metrics.predictions(&predictions);
        Ok(predictions)
    }

    /// The metrics' text exposition.
    pub fn metrics_text(&self) -> Result<String, std::fmt::Error> {
        self.metrics.encode()
    }
}

/// Reads the model a source names and validates it against `snapshot`
/// (none: every customer is a cold start).
fn load_serving(
    source: &ModelSource,
    snapshot: Option<Arc<OnlineSnapshot>>,
    pseudonymiser: &Pseudonymiser,
) -> anyhow::Result<Serving> {
    let (path, model, registry_version) = source.load()?;
    let snapshot = snapshot.unwrap_or_else(|| {
        log::warn!("no online snapshot: every request is served as a cold start");
        Arc::new(OnlineSnapshot {
            as_of: None,
            rule: model.rule.clone(),
            customers: Default::default(),
            // No customers to mismatch: only the model's key is checked.
            key_fingerprint: model.key_fingerprint.clone(),
            // The quality suite's defaults (`config/quality.yaml` ships them).
            ranges: ValueRanges::default(),
        })
    });
    log::info!(
        "model {} ({}, {} features, threshold {:.4}) from {}",
        model.model_version,
        model.algorithm,
        model.features.len(),
        model.threshold,
        path.display()
    );
    let origin = ModelOrigin {
        path: path.display().to_string(),
        registry_version,
        registry_alias: match source {
            ModelSource::Registry { alias, .. } => Some(alias.clone()),
            ModelSource::File(_) => None,
        },
        loaded_at: revspend_core::registry::now_rfc3339(),
    };
    let named = match &origin.registry_version {
        Some(v) => format!("registry version {v} (model {})", model.model_version),
        None => format!("model {} ({})", model.model_version, origin.path),
    };
    Serving::new(model, snapshot, origin, pseudonymiser).with_context(|| format!("{named} refused"))
}

/// A new prediction id: a UUID v7 (time-ordered, so ids sort as they were
/// made and index well in the prediction log). Each worker thread keeps its
/// own counter context, strictly increasing within the thread; across
/// threads ids are ordered to the millisecond. `Uuid::now_v7` shares one
/// context behind a mutex and, without uuid's `fast-rng`, reads the OS
/// random source per id: a futex and a `getrandom` system call per request.
fn prediction_id() -> String {
    use uuid::timestamp::context::{ContextV7, ThreadLocalContext};
    thread_local! {
        static CONTEXT: ContextV7 = const { ContextV7::new() };
    }
    let now = uuid::Timestamp::now(ThreadLocalContext::new(&CONTEXT));
    uuid::Uuid::new_v7(now).to_string()
}

/// Refuses to serve with a pseudonymisation key other than the one the
/// snapshot's customers and the model's training data were pseudonymised
/// with, or a snapshot and a model made with different keys: no customer
/// would be found and every request would silently be a cold start. The
/// error names every fingerprint (a keyed hash of a fixed string, not the
/// key).
pub fn check_keys(
    pseudonymiser: &Pseudonymiser,
    model: &ModelArtifact,
    snapshot: &OnlineSnapshot,
) -> anyhow::Result<()> {
    let key = pseudonymiser.key_fingerprint();
    let named =
        |fingerprint: &str| format!("{fingerprint} ({})", pseudonym::describe_fingerprint(fingerprint));
    if model.key_fingerprint != snapshot.key_fingerprint {
        anyhow::bail!(
            "the model {} was trained on data pseudonymised with the key of fingerprint {}, but \
             the online snapshot was built with the key of fingerprint {}: rebuild both with one \
             key (`dvc repro` with REVSPEND_PSEUDONYM_KEY set as for serving)",
            model.model_version,
            named(&model.key_fingerprint),
            named(&snapshot.key_fingerprint)
        );
    }
    if key != model.key_fingerprint {
        anyhow::bail!(
            "the pseudonymisation key has fingerprint {}, but the online snapshot and the model {} \
             were made with the key of fingerprint {}: no customer would be found. Start serve \
             with the key build-features used (REVSPEND_PSEUDONYM_KEY; --allow-development-key \
             for the public development key)",
            named(&key),
            model.model_version,
            named(&model.key_fingerprint)
        );
    }
    if pseudonymiser.is_development_key() {
        log::warn!("serving with the public development pseudonymisation key: for generated data only");
    }
    log::info!(
        "pseudonymisation key fingerprint {} matches the snapshot and the model",
        named(&key)
    );
    Ok(())
}

fn load_snapshot(path: &Path) -> anyhow::Result<OnlineSnapshot> {
    let snapshot = artifact::read_snapshot(path).context(
        "cannot load the online snapshot (build it with build-features, or pass --no-snapshot \
         to serve cold starts only)",
    )?;
    log::info!(
        "online snapshot of {} customers as of {} from {}",
        snapshot.customers.len(),
        snapshot.as_of.map_or_else(|| "-".to_owned(), |d| d.to_string()),
        path.display()
    );
    Ok(snapshot)
}

/// The `POST /predict` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({
    "prediction_id": "01a22db4-c095-754f-ad8f-596a0f323c2c",
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
    pub model_version: String,
    /// `probability >= threshold`.
    pub is_revenge_spending: bool,
    pub probability: f64,
    pub threshold: f64,
    /// The customer is not in the online snapshot: history features took
    /// their documented cold-start values.
    pub cold_start: bool,
}
