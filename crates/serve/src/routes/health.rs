//! `GET /health`: the process answers, with the model it serves.

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

pub(crate) async fn health(state: web::Data<AppState>) -> web::Json<Health> {
    web::Json(Health {
        status: "ok".to_owned(),
        model_version: state.model.model_version.clone(),
        snapshot_customers: state.snapshot.customers.len(),
    })
}
