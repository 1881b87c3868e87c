//! `POST /predict`: one transaction in the raw field names of the data
//! contract.

use actix_web::{HttpRequest, web};

use super::{check_json_content_type, read_body};
use crate::{ApiError, AppState, Prediction, request};

/// Scores one purchase.
///
/// The transaction in the raw file's field names (CSV-formatted strings, JSON numbers or ISO dates); the answer is the decision, the calibrated probability and the model that made it.
#[utoipa::path(
    post,
    path = "/predict",
    tag = "predict",
    request_body(content = super::openapi::Transaction, content_type = "application/json"),
    responses(
        (status = 200, description = "The prediction", body = Prediction),
        (status = 400, description = "A field is missing or cannot be read (named in `field`)", body = crate::ErrorBody),
        (status = 422, description = "The purchase breaks one of the quality suite's row rules (named in `rule`, the field in `field`): \
                                      a date outside `ranges.data`, a control character, a limit or amount out of range, \
                                      an account opened after the purchase, an unknown merchant group", body = crate::ErrorBody),
        (status = 408, description = "The body did not arrive in time", body = crate::ErrorBody),
        (status = 413, description = "The body is over the limit", body = crate::ErrorBody),
        (status = 415, description = "Not JSON", body = crate::ErrorBody),
    )
)]
pub(crate) async fn predict(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<web::Json<Prediction>, ApiError> {
    let started = std::time::Instant::now();
    check_json_content_type(&req)?;
    let bytes = read_body(&req, body, state.max_body_bytes, state.body_timeout).await?;
    let deployment = state.deployment()?;
    let txn = request::transaction_from_json(&bytes, deployment.ranges())?;
    let mut predictions = state.score(&deployment, std::slice::from_ref(&txn), "/predict", started)?;
    let prediction = predictions
        .pop()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no prediction for one transaction")))?;
    Ok(web::Json(prediction))
}
