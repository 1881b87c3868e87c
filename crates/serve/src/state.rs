//! What every request handler shares: the model, the online feature store
//! and the pseudonymisation key, and the one function that scores a
//! transaction with them.

use std::fmt;
use std::path::Path;

use anyhow::Context;
use revspend_core::artifact;
use revspend_core::contract::Transaction;
use revspend_core::features::{self, History, OnlineSnapshot};
use revspend_core::model::{FeatureMatrix, ModelArtifact};
use revspend_core::pseudonym::{self, Pseudonymiser};
use serde::{Deserialize, Serialize};

use crate::{ApiError, Config};

/// What every request handler shares: the model, the feature store and the
/// key that maps request ids to the store's pseudonyms.
pub struct AppState {
    pub(crate) model: ModelArtifact,
    pub(crate) snapshot: OnlineSnapshot,
    pseudonymiser: Pseudonymiser,
    pub(crate) max_body_bytes: usize,
    pub(crate) limits: BatchLimits,
    /// How long a request body may take to arrive.
    pub(crate) body_timeout: std::time::Duration,
    /// Where the model came from, for `/version`.
    pub(crate) origin: ModelOrigin,
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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
    // A summary: the snapshot can hold millions of customers.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppState")
            .field("model_version", &self.model.model_version)
            .field("snapshot_customers", &self.snapshot.customers.len())
            .field("pseudonymiser", &self.pseudonymiser)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// A state over an already loaded model and snapshot; refused when the
    /// key is not the one both were made with ([`check_keys`]).
    pub fn new(
        model: ModelArtifact,
        snapshot: OnlineSnapshot,
        pseudonymiser: Pseudonymiser,
        max_body_bytes: usize,
    ) -> anyhow::Result<AppState> {
        check_keys(&pseudonymiser, &model, &snapshot)?;
        if snapshot.rule != model.rule {
            log::warn!(
                "the online snapshot was built with target rule {:?} but model {} with {:?}: \
                 history revenge counts follow a different rule than in training",
                snapshot.rule,
                model.model_version,
                model.rule
            );
        }
        let state = AppState {
            model,
            snapshot,
            pseudonymiser,
            max_body_bytes,
            limits: BatchLimits::default(),
            body_timeout: crate::config::DEFAULT_BODY_TIMEOUT,
            origin: ModelOrigin {
                loaded_at: revspend_core::registry::now_rfc3339(),
                ..ModelOrigin::default()
            },
        };
        state.smoke_test()?;
        Ok(state)
    }

    /// Scores one synthetic purchase of a customer no snapshot knows: a
    /// model that cannot score a row, or scores it outside [0, 1], is
    /// refused before it serves (readiness means this passed).
    fn smoke_test(&self) -> anyhow::Result<()> {
        let txn = crate::request::transaction(&serde_json::json!({
            "id": "0",
            "limite_total": "1.000,00",
            "limite_disp": "500,00",
            "data": "01.01.2020",
            "valor": "10,00",
            "grupo_estabelecimento": "VESTUARIO",
        }))
        .map_err(|e| anyhow::anyhow!("the smoke-test purchase does not parse: {e}"))?;
        let p = self.predict(&txn).map_err(|e| {
            anyhow::anyhow!("model {} failed its smoke test: {e:?}", self.model.model_version)
        })?;
        anyhow::ensure!(
            (0.0..=1.0).contains(&p.probability),
            "model {} failed its smoke test: probability {}",
            self.model.model_version,
            p.probability
        );
        log::info!(
            "smoke test passed: model {} scores a cold-start purchase {:.4}",
            self.model.model_version,
            p.probability
        );
        Ok(())
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
        let (path, model, registry_version) = config.model.load()?;
        log::info!(
            "model {} ({}, {} features, threshold {:.4}) from {}",
            model.model_version,
            model.algorithm,
            model.features.len(),
            model.threshold,
            path.display()
        );
        let snapshot = match &config.snapshot {
            Some(path) => load_snapshot(path)?,
            None => {
                log::warn!("no online snapshot: every request is served as a cold start");
                OnlineSnapshot {
                    as_of: None,
                    rule: model.rule.clone(),
                    customers: Default::default(),
                    // No customers to mismatch: only the model's key is checked.
                    key_fingerprint: model.key_fingerprint.clone(),
                }
            }
        };
        let mut state = AppState::new(model, snapshot, pseudonymiser, config.max_body_bytes)?
            .with_batch_limits(config.batch)
            .with_body_timeout(config.body_timeout);
        state.origin.path = path.display().to_string();
        if let crate::ModelSource::Registry { alias, .. } = &config.model {
            state.origin.registry_alias = Some(alias.clone());
            state.origin.registry_version = registry_version;
        }
        Ok(state)
    }

    /// Scores one transaction.
    pub fn predict(&self, txn: &Transaction) -> Result<Prediction, ApiError> {
        let mut out = self.predict_many(std::slice::from_ref(txn))?;
        out.pop()
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no prediction for one transaction")))
    }

    /// Scores transactions in one batch (one feature matrix, one model
    /// call), each with its own prediction id, in order.
    pub fn predict_many(&self, txns: &[Transaction]) -> Result<Vec<Prediction>, ApiError> {
        let cold = History::default();
        let width = self.model.features.len();
        let mut values = Vec::with_capacity(txns.len() * width);
        let mut cold_starts = Vec::with_capacity(txns.len());
        for txn in txns {
            let pseudonym = self.pseudonymiser.pseudonym(&txn.id);
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

/// A new prediction id: a UUID v7 (time-ordered, so ids sort as they were
/// made and index well in the prediction log).
fn prediction_id() -> String {
    uuid::Uuid::now_v7().to_string()
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
