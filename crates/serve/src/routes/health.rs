//! Health: `GET /health/live` (the process answers), `GET /health/ready`
//! (a model and the online snapshot are loaded and the model passed its
//! smoke prediction), and `GET /health`, the summary kept for earlier
//! clients.

use actix_web::web;
use serde::{Deserialize, Serialize};

use crate::{ApiError, AppState};

/// The `GET /health` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Health {
    pub status: String,
    pub model_version: String,
    pub snapshot_customers: usize,
}

/// The `GET /health/ready` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Readiness {
    pub status: String,
    pub model_version: String,
    pub snapshot_customers: usize,
    /// When the model was loaded and passed its smoke prediction.
    pub loaded_at: String,
}

/// Summary of the serving model (earlier clients read it).
#[utoipa::path(get, path = "/health", tag = "operations", responses((status = 200, description = "The summary earlier clients read", body = Health), (status = 503, description = "Still loading", body = crate::ErrorBody)))]
pub(crate) async fn health(state: web::Data<AppState>) -> Result<web::Json<Health>, ApiError> {
    let state = state.serving()?;
    Ok(web::Json(Health {
        status: "ok".to_owned(),
        model_version: state.model.model_version.clone(),
        snapshot_customers: state.snapshot.customers.len(),
    }))
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/health/live", tag = "operations", responses((status = 200, description = "The process answers")))]
pub(crate) async fn live() -> web::Json<serde_json::Value> {
    web::Json(serde_json::json!({ "status": "live" }))
}

/// Readiness: a model and the online snapshot are loaded.
///
/// Ready means the model and the online snapshot are loaded and the model
/// passed its smoke prediction. The server listens before it loads them, so
/// a probe sees a 503 until then (and the process exits if the first load
/// fails); a failed reload leaves the serving model in place, so it stays
/// ready.
#[utoipa::path(get, path = "/health/ready", tag = "operations", responses((status = 200, description = "Model and snapshot loaded, smoke prediction passed", body = Readiness), (status = 503, description = "Still loading the first model and snapshot", body = crate::ErrorBody)))]
pub(crate) async fn ready(state: web::Data<AppState>) -> Result<web::Json<Readiness>, ApiError> {
    let state = state.serving()?;
    Ok(web::Json(Readiness {
        status: "ready".to_owned(),
        model_version: state.model.model_version.clone(),
        snapshot_customers: state.snapshot.customers.len(),
        loaded_at: state.origin.loaded_at.clone(),
    }))
}
