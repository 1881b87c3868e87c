//! `GET /metrics`: the Prometheus (OpenMetrics) text exposition.

use actix_web::{HttpResponse, web};

use crate::{ApiError, AppState};

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus (OpenMetrics) text", content_type = "application/openmetrics-text")))]
pub(crate) async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let text = state
        .metrics_text()
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("encoding the metrics failed: {e}")))?;
    Ok(HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(text))
}
