//! `POST /predict/batch`: a JSON array of transactions, scored in one model
//! call. One result per row, in order; a row that cannot be read gets its
//! own error entry (index, field, message) and the others are still scored.

use actix_web::{HttpRequest, web};
use revspend_core::contract::Transaction;
use serde::{Deserialize, Serialize};

use super::{check_json_content_type, read_body};
use crate::{ApiError, AppState, Prediction, request};

/// One row's result: its prediction, or why it was not scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    },
}

/// The `POST /predict/batch` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchResponse {
    pub rows: usize,
    pub scored: usize,
    pub refused: usize,
    pub results: Vec<BatchItem>,
}

pub(crate) async fn batch(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<web::Json<BatchResponse>, ApiError> {
    check_json_content_type(&req)?;
    let limits = state.limits;
    let bytes = read_body(&req, body, limits.max_body_bytes).await?;
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))?;
    let serde_json::Value::Array(rows) = value else {
        return Err(ApiError::bad_request(
            "the body of /predict/batch is a JSON array of transactions",
        ));
    };
    if rows.len() > limits.max_rows {
        return Err(ApiError::TooManyRows {
            rows: rows.len(),
            limit: limits.max_rows,
        });
    }
    Ok(web::Json(score(&state, &rows)?))
}

/// Reads every row, scores those that parse in one call, and puts the
/// results back in row order.
pub(crate) fn score(state: &AppState, rows: &[serde_json::Value]) -> Result<BatchResponse, ApiError> {
    let mut parsed: Vec<Transaction> = Vec::with_capacity(rows.len());
    let mut at: Vec<usize> = Vec::with_capacity(rows.len());
    let mut results: Vec<Option<BatchItem>> = vec![None; rows.len()];
    for (index, row) in rows.iter().enumerate() {
        match request::transaction(row) {
            Ok(txn) => {
                parsed.push(txn);
                at.push(index);
            }
            Err(e) => {
                let field = e.field_name().map(|f| format!("[{index}].{f}"));
                results[index] = Some(BatchItem::Refused {
                    index,
                    error: format!("row {index}: {e}"),
                    field,
                });
            }
        }
    }
    let scored = parsed.len();
    for (index, prediction) in at.into_iter().zip(state.predict_many(&parsed)?) {
        results[index] = Some(BatchItem::Scored { index, prediction });
    }
    let results: Vec<BatchItem> = results.into_iter().flatten().collect();
    Ok(BatchResponse {
        rows: rows.len(),
        scored,
        refused: rows.len() - scored,
        results,
    })
}
