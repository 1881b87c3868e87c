//! `POST /predict/batch`: a JSON array of transactions, or `text/csv` in the
//! raw file's own format (`;`, cp1252 or UTF-8, header included) or as
//! pandas writes it, scored in one model call. One result per row, in order; a row that cannot be read gets its
//! own error entry (index, field, message, and the rule for a row that breaks
//! one of the quality suite's row rules) and the others are still scored.

use actix_web::{HttpRequest, web};
use revspend_core::contract::Transaction;
use serde::{Deserialize, Serialize};

use super::{check_json_content_type, csv_rows, read_body};
use std::sync::Arc;

use crate::experiment::Deployment;
use crate::{ApiError, AppState, Prediction, request};

/// One row's result: its prediction, or why it was not scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum BatchItem {
    Scored {
        index: usize,
        #[serde(flatten)]
        prediction: Prediction,
    },
    Refused {
        index: usize,
        error: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        field: Option<String>,
        /// The row rule the row breaks, when it parsed but broke one (what a
        /// single `/predict` answers with a 422).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rule: Option<String>,
    },
}

/// The `POST /predict/batch` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchResponse {
    pub rows: usize,
    pub scored: usize,
    pub refused: usize,
    pub results: Vec<BatchItem>,
}

/// Scores many purchases in one call.
///
/// A refused row gets its own entry (index, field, message, rule) and the others are still scored.
#[utoipa::path(
    post,
    path = "/predict/batch",
    tag = "predict",
    request_body(
        content = Vec<super::openapi::Transaction>,
        description = "A JSON array of transactions, or text/csv with a header (the raw file's `;` \
                       cp1252 format, or comma-separated)",
        content_type = "application/json"
    ),
    responses(
        (status = 200, description = "One result per row, in order: a prediction or the row's error", body = BatchResponse),
        (status = 400, description = "Not a JSON array, or not readable CSV", body = crate::ErrorBody),
        (status = 413, description = "More rows, or more bytes, than the limits", body = crate::ErrorBody),
    )
)]
pub(crate) async fn batch(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<web::Json<BatchResponse>, ApiError> {
    let started = std::time::Instant::now();
    let csv = is_csv(&req);
    if !csv {
        check_json_content_type(&req)?;
    }
    let limits = state.limits;
    let bytes = read_body(&req, body, limits.max_body_bytes, state.body_timeout).await?;
    let deployment = state.deployment()?;
    let rows = if csv {
        let rows = csv_rows(&bytes)?;
        check_rows(rows.len(), limits.max_rows)?;
        rows.into_iter()
            .map(|row| request::transaction(&serde_json::Value::Object(row), deployment.ranges()))
            .collect()
    } else {
        let rows = request::transactions_from_json(&bytes, deployment.ranges())?;
        check_rows(rows.len(), limits.max_rows)?;
        rows
    };
    state.metrics.batch(rows.len());
    Ok(web::Json(score(&state, &deployment, rows, started)?))
}

/// The 413 for more rows than the limit.
fn check_rows(rows: usize, limit: usize) -> Result<(), ApiError> {
    if rows > limit {
        return Err(ApiError::TooManyRows { rows, limit });
    }
    Ok(())
}

/// The JSON path of a row's field: `[1].valor`, or `[1][" valor "]` for a
/// key that is not a plain name.
fn json_path(index: usize, field: &str) -> String {
    if !field.is_empty() && field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        format!("[{index}].{field}")
    } else {
        format!("[{index}][{}]", serde_json::Value::from(field))
    }
}

/// Whether the body is declared `text/csv`.
fn is_csv(req: &HttpRequest) -> bool {
    req.headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("text/csv"))
}

/// Scores the rows that parse in one call and puts the results back in row
/// order, a refused row with its error.
pub(crate) fn score(
    state: &AppState,
    deployment: &Arc<Deployment>,
    rows: Vec<Result<Transaction, ApiError>>,
    started: std::time::Instant,
) -> Result<BatchResponse, ApiError> {
    let total = rows.len();
    let mut parsed: Vec<Transaction> = Vec::with_capacity(total);
    let mut at: Vec<usize> = Vec::with_capacity(total);
    let mut results: Vec<Option<BatchItem>> = vec![None; total];
    for (index, row) in rows.into_iter().enumerate() {
        match row {
            Ok(txn) => {
                parsed.push(txn);
                at.push(index);
            }
            Err(e) => {
                let field = e.field_name().map(|f| json_path(index, f));
                results[index] = Some(BatchItem::Refused {
                    index,
                    error: format!("row {index}: {e}"),
                    field,
                    rule: e.rule_name().map(str::to_owned),
                });
            }
        }
    }
    let scored = parsed.len();
    for (index, prediction) in
        at.into_iter()
            .zip(state.score(deployment, &parsed, "/predict/batch", started)?)
    {
        results[index] = Some(BatchItem::Scored { index, prediction });
    }
    let results: Vec<BatchItem> = results.into_iter().flatten().collect();
    Ok(BatchResponse {
        rows: total,
        scored,
        refused: total - scored,
        results,
    })
}
