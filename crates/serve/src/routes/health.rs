//! Health: `GET /health/live` (the process answers), `GET /health/ready`
//! (a model and the online snapshot are loaded and the model passed its
//! smoke prediction), and `GET /health`, the summary kept for earlier
//! clients.

use actix_web::web;
use serde::{Deserialize, Serialize};

use crate::AppState;

/// The `GET /health` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    pub model_version: String,
    pub snapshot_customers: usize,
}

/// The `GET /health/ready` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Readiness {
    pub status: String,
    pub model_version: String,
    pub snapshot_customers: usize,
    /// When the model was loaded and passed its smoke prediction.
    pub loaded_at: String,
}

pub(crate) async fn health(state: web::Data<AppState>) -> web::Json<Health> {
    let state = state.serving();
    web::Json(Health {
        status: "ok".to_owned(),
        model_version: state.model.model_version.clone(),
        snapshot_customers: state.snapshot.customers.len(),
    })
}

pub(crate) async fn live() -> web::Json<serde_json::Value> {
    web::Json(serde_json::json!({ "status": "live" }))
}

/// Ready: a state exists only once its model and snapshot are loaded and
/// the smoke prediction passed ([`AppState::new`]), so a server that
/// answers is ready. (With hot reload, a failed load will answer 503 here.)
pub(crate) async fn ready(state: web::Data<AppState>) -> web::Json<Readiness> {
    let state = state.serving();
    web::Json(Readiness {
        status: "ready".to_owned(),
        model_version: state.model.model_version.clone(),
        snapshot_customers: state.snapshot.customers.len(),
        loaded_at: state.origin.loaded_at.clone(),
    })
}
