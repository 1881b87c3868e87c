//! `GET /version`: what exactly is serving. Never a secret: the key is
//! named by its fingerprint only.

use actix_web::web;
use serde::{Deserialize, Serialize};

use crate::{ApiError, AppState, ModelOrigin};

/// The `GET /version` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Version {
    /// The server build: crate version and the git commit it was built
    /// from (`unknown` outside a git checkout).
    pub server_version: String,
    pub git_commit: String,
    pub model_version: String,
    pub algorithm: String,
    pub origin: ModelOrigin,
    pub features: Vec<String>,
    pub threshold: f64,
    pub threshold_source: String,
    pub calibrator: String,
    pub params_hash: String,
    pub data_hash: String,
    pub key_fingerprint: String,
    pub snapshot_as_of: Option<String>,
    pub snapshot_customers: usize,
    /// The training profile the drift gauges of `/metrics` compare the
    /// requests to; null: the gauges are off.
    #[serde(default)]
    pub drift_profile: Option<String>,
    /// The features with a drift gauge.
    #[serde(default)]
    pub drift_features: Vec<String>,
    /// The drift window's length; null when the gauges are off.
    #[serde(default)]
    pub drift_window_seconds: Option<f64>,
}

/// What exactly is serving: model, registry version, data and params hashes, snapshot, build.
#[utoipa::path(get, path = "/version", tag = "operations", responses((status = 200, description = "What exactly is serving", body = Version), (status = 503, description = "The first model is still loading", body = crate::ErrorBody)))]
pub(crate) async fn version(app: web::Data<AppState>) -> Result<web::Json<Version>, ApiError> {
    let state = app.serving()?;
    let drift = app.drift.as_deref();
    let m = &state.model;
    Ok(web::Json(Version {
        server_version: env!("CARGO_PKG_VERSION").to_owned(),
        git_commit: option_env!("REVSPEND_GIT_COMMIT").unwrap_or("unknown").to_owned(),
        model_version: m.model_version.clone(),
        algorithm: m.algorithm.clone(),
        origin: state.origin.clone(),
        features: m.features.iter().map(|f| f.name().to_owned()).collect(),
        threshold: m.threshold,
        threshold_source: m.threshold_source.clone(),
        calibrator: m.calibrator.name().to_owned(),
        params_hash: m.params_hash.clone(),
        data_hash: m.data_hash.clone(),
        key_fingerprint: m.key_fingerprint.clone(),
        snapshot_as_of: state.snapshot.as_of.map(|d| d.to_string()),
        snapshot_customers: state.snapshot.customers.len(),
        drift_profile: drift.map(|d| d.source().display().to_string()),
        drift_features: drift.map_or_else(Vec::new, |d| {
            d.features().into_iter().map(str::to_owned).collect()
        }),
        drift_window_seconds: drift.map(|d| d.window().as_secs_f64()),
    }))
}
