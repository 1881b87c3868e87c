//! MLflow's scoring protocol, so an MLflow user's client works unchanged:
//! `GET /ping` and `POST /invocations` with a JSON body in any of the four
//! shapes MLflow's scoring server takes (`dataframe_split`,
//! `dataframe_records`, `instances`, `inputs`) or a CSV body (`text/csv`),
//! answering `{"predictions": [...]}`, one record per row in order.
//!
//! As MLflow does: columns the model does not use are ignored, a request
//! that cannot be scored fails whole (400, naming the row and field) with
//! MLflow's error body `{"error_code": ..., "message": ...}`, and `params`
//! are accepted (this model takes none, so they are ignored).

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde_json::{Map, Value};

use super::{csv_rows, read_body};
use crate::{ApiError, AppState, Prediction, request};

/// The JSON shapes of an `/invocations` body.
const SHAPES: [&str; 4] = ["dataframe_split", "dataframe_records", "instances", "inputs"];

/// An [`ApiError`] in MLflow's error body.
#[derive(Debug)]
pub(crate) struct MlflowError(ApiError);

impl From<ApiError> for MlflowError {
    fn from(e: ApiError) -> MlflowError {
        MlflowError(e)
    }
}

impl fmt::Display for MlflowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl ResponseError for MlflowError {
    fn status_code(&self) -> StatusCode {
        self.0.status_code()
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(source) = &self.0 {
            log::error!("internal error: {source:#}");
        }
        let status = self.status_code();
        let code = match status {
            StatusCode::BAD_REQUEST => "BAD_REQUEST",
            StatusCode::NOT_FOUND => "ENDPOINT_NOT_FOUND",
            s if s.is_client_error() => "INVALID_PARAMETER_VALUE",
            _ => "INTERNAL_ERROR",
        };
        HttpResponse::build(status).json(serde_json::json!({
            "error_code": code,
            "message": self.0.to_string(),
        }))
    }
}

fn bad(message: impl Into<String>) -> MlflowError {
    MlflowError(ApiError::bad_request(message))
}

/// MLflow's liveness probe.
#[utoipa::path(get, path = "/ping", tag = "mlflow", responses((status = 200, description = "Alive")))]
pub(crate) async fn ping() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body("\n")
}

/// MLflow's scoring protocol.
///
/// An MLflow client's `predict` works unchanged.
#[utoipa::path(
    post,
    path = "/invocations",
    tag = "mlflow",
    request_body(
        content = super::openapi::MlflowRequest,
        description = "One of dataframe_split, dataframe_records, instances, inputs; or text/csv",
        content_type = "application/json"
    ),
    responses(
        (status = 200, description = "One prediction per row, in order", body = super::openapi::MlflowResponse),
        (status = 400, description = "MLflow's error body: `{\"error_code\": \"BAD_REQUEST\", \"message\": ...}`; \
                                      a row that breaks a quality rule is a 400 too, as MLflow answers bad input, \
                                      its message naming the rule"),
    )
)]
pub(crate) async fn invocations(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, MlflowError> {
    let started = std::time::Instant::now();
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).to_ascii_lowercase());
    let essence = content_type
        .as_deref()
        .and_then(|v| v.split(';').next())
        .map(str::trim)
        .unwrap_or_default()
        .to_owned();
    let limits = state.limits;
    let bytes = read_body(&req, body, limits.max_body_bytes, state.body_timeout).await?;
    let rows = match essence.as_str() {
        "application/json" => json_rows(
            serde_json::from_slice(&bytes)
                .map_err(|e| bad(format!("the request body is not valid JSON: {e}")))?,
        )?,
        "text/csv" => csv_rows(&bytes)?,
        _ => {
            return Err(bad(format!(
                "expected Content-Type application/json (with one of {}) or text/csv, got {}",
                SHAPES.join(", "),
                content_type.as_deref().unwrap_or("no Content-Type")
            )));
        }
    };
    if rows.len() > limits.max_rows {
        return Err(ApiError::TooManyRows {
            rows: rows.len(),
            limit: limits.max_rows,
        }
        .into());
    }
    state.metrics.batch(rows.len());
    let mut txns = Vec::with_capacity(rows.len());
    let deployment = state.deployment()?;
    for (i, row) in rows.iter().enumerate() {
        let known: Map<String, Value> = row
            .iter()
            .filter(|(k, _)| request::is_field(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let txn = request::transaction(&Value::Object(known), deployment.ranges())
            .map_err(|e| bad(format!("row {i}: {e}")))?;
        txns.push(txn);
    }
    let predictions: Vec<Prediction> = state.score(&deployment, &txns, "/invocations", started)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "predictions": predictions })))
}

/// The rows of a JSON body, each an object of column → value.
fn json_rows(body: Value) -> Result<Vec<Map<String, Value>>, MlflowError> {
    let Value::Object(mut top) = body else {
        return Err(bad(format!(
            "the body must be a JSON object with one of {}",
            SHAPES.join(", ")
        )));
    };
    let given: Vec<&str> = SHAPES.iter().copied().filter(|s| top.contains_key(*s)).collect();
    let shape = match given.as_slice() {
        [one] => *one,
        [] => {
            let keys: Vec<&String> = top.keys().collect();
            return Err(bad(format!(
                "the body must have one of {}; it has {keys:?}",
                SHAPES.join(", ")
            )));
        }
        many => return Err(bad(format!("the body must have only one of {}", many.join(", ")))),
    };
    let value = top.remove(shape).unwrap_or(Value::Null);
    match (shape, value) {
        ("dataframe_split", Value::Object(split)) => from_split(&split),
        ("dataframe_records" | "instances", Value::Array(rows)) => records(shape, rows),
        ("inputs", Value::Array(rows)) => records(shape, rows),
        ("inputs", Value::Object(columns)) => from_columns(columns),
        (shape, other) => Err(bad(format!(
            "`{shape}` must be {}; got {}",
            match shape {
                "dataframe_split" => "an object with `columns` and `data`",
                "inputs" => "an array of records or an object of columns",
                _ => "an array of records",
            },
            request::json_type(&other)
        ))),
    }
}

fn records(shape: &str, rows: Vec<Value>) -> Result<Vec<Map<String, Value>>, MlflowError> {
    rows.into_iter()
        .enumerate()
        .map(|(i, row)| match row {
            Value::Object(o) => Ok(o),
            other => Err(bad(format!(
                "`{shape}[{i}]` must be a record (an object of column to value), got {}",
                request::json_type(&other)
            ))),
        })
        .collect()
}

fn from_split(split: &Map<String, Value>) -> Result<Vec<Map<String, Value>>, MlflowError> {
    let columns: Vec<String> = match split.get("columns") {
        Some(Value::Array(c)) => c
            .iter()
            .enumerate()
            .map(|(i, c)| {
                c.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| bad(format!("`dataframe_split.columns[{i}]` must be a string")))
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(bad("`dataframe_split.columns` must be an array of column names")),
    };
    let Some(Value::Array(data)) = split.get("data") else {
        return Err(bad("`dataframe_split.data` must be an array of rows"));
    };
    data.iter()
        .enumerate()
        .map(|(i, row)| match row {
            Value::Array(values) if values.len() == columns.len() => {
                Ok(columns.iter().cloned().zip(values.iter().cloned()).collect())
            }
            Value::Array(values) => Err(bad(format!(
                "`dataframe_split.data[{i}]` has {} values for {} columns",
                values.len(),
                columns.len()
            ))),
            other => Err(bad(format!(
                "`dataframe_split.data[{i}]` must be an array, got {}",
                request::json_type(other)
            ))),
        })
        .collect()
}

fn from_columns(columns: Map<String, Value>) -> Result<Vec<Map<String, Value>>, MlflowError> {
    let mut length = None;
    let mut named: Vec<(String, Vec<Value>)> = Vec::with_capacity(columns.len());
    for (name, values) in columns {
        let Value::Array(values) = values else {
            return Err(bad(format!(
                "`inputs.{name}` must be an array of the column's values, got {}",
                request::json_type(&values)
            )));
        };
        match length {
            None => length = Some(values.len()),
            Some(n) if n != values.len() => {
                return Err(bad(format!(
                    "`inputs.{name}` has {} values, the other columns {n}",
                    values.len()
                )));
            }
            Some(_) => {}
        }
        named.push((name, values));
    }
    Ok((0..length.unwrap_or(0))
        .map(|i| named.iter().map(|(n, v)| (n.clone(), v[i].clone())).collect())
        .collect())
}
