//! The Open Inference Protocol (KServe's V2 REST protocol), so the image
//! runs as a KServe custom runtime: `GET /v2/health/live`, `/v2/health/ready`,
//! `GET /v2` (server metadata), `GET /v2/models/{name}` (the inputs and
//! their datatypes), `/v2/models/{name}/ready`, `POST
//! /v2/models/{name}/infer`, each also under `/versions/{version}`.
//!
//! The model takes one tensor per raw field of the data contract, each of
//! shape `[N]` (or `[N, 1]`): strings (`BYTES`) as the file writes them, or
//! numbers for the numeric fields; the `N` rows are scored in one call. It
//! answers the tensors `probability` (FP64), `is_revenge_spending` (BOOL),
//! `cold_start` (BOOL) and `prediction_id` (BYTES), or those the request's
//! `outputs` names. Errors are `{"error": ...}` as the protocol has them.

use actix_web::{HttpRequest, web};
use revspend_core::contract::COLUMNS;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::read_body;
use crate::{ApiError, AppState, Prediction, Serving, request};

/// The name the model is served under (`/v2/models/revspend`).
pub const MODEL_NAME: &str = "revspend";

/// Required fields (the rest are optional).
const REQUIRED: [&str; 5] = ["id", "limite_total", "limite_disp", "data", "valor"];

/// The V2 datatype of a field.
fn datatype(field: &str) -> &'static str {
    match field {
        "safra_abertura" | "idade" => "INT64",
        "limite_total" | "limite_disp" | "valor" => "FP64",
        _ => "BYTES",
    }
}

/// The output tensors, in answer order.
const OUTPUTS: [(&str, &str); 6] = [
    ("probability", "FP64"),
    ("is_revenge_spending", "BOOL"),
    ("cold_start", "BOOL"),
    ("prediction_id", "BYTES"),
    // Under an experiment, rows of one request may be answered by
    // different variants.
    ("variant", "BYTES"),
    ("model_version", "BYTES"),
];

/// A tensor's description in the model metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TensorMetadata {
    pub name: String,
    pub datatype: String,
    pub shape: Vec<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Value>,
}

/// `GET /v2/models/{name}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModelMetadata {
    pub name: String,
    pub versions: Vec<String>,
    pub platform: String,
    pub inputs: Vec<TensorMetadata>,
    pub outputs: Vec<TensorMetadata>,
}

fn field_name(column: &str) -> &str {
    column.trim()
}

/// Checks the model name and version of the path: the name is
/// [`MODEL_NAME`]; a version must be the served model's version or its
/// registry version.
fn check_model(state: &Serving, name: &str, version: Option<&str>) -> Result<(), ApiError> {
    if name != MODEL_NAME {
        return Err(ApiError::NotFound {
            path: format!("/v2/models/{name} (this server serves the model `{MODEL_NAME}`)"),
        });
    }
    if let Some(v) = version
        && v != state.model.model_version
        && Some(v) != state.origin.registry_version.as_deref()
    {
        return Err(ApiError::NotFound {
            path: format!(
                "/v2/models/{name}/versions/{v} (the version served is {})",
                served_versions(state).join(" or ")
            ),
        });
    }
    Ok(())
}

fn served_versions(state: &Serving) -> Vec<String> {
    let mut v = vec![state.model.model_version.clone()];
    v.extend(state.origin.registry_version.clone());
    v
}

type Named = web::Path<String>;
type NamedVersion = web::Path<(String, String)>;

/// Open Inference Protocol liveness.
#[utoipa::path(get, path = "/v2/health/live", tag = "v2", responses((status = 200, description = "`{\"live\": true}`")))]
pub(crate) async fn live() -> web::Json<Value> {
    web::Json(json!({ "live": true }))
}

/// Open Inference Protocol readiness.
#[utoipa::path(get, path = "/v2/health/ready", tag = "v2", responses((status = 200, description = "`{\"ready\": true}`")))]
pub(crate) async fn ready() -> web::Json<Value> {
    web::Json(json!({ "ready": true }))
}

/// Server metadata.
#[utoipa::path(get, path = "/v2", tag = "v2", responses((status = 200, description = "Server name, version and extensions")))]
pub(crate) async fn server_metadata() -> web::Json<Value> {
    web::Json(json!({
        "name": "revspend",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": [],
    }))
}

fn metadata(state: &Serving) -> ModelMetadata {
    let inputs = COLUMNS
        .iter()
        .map(|c| {
            let name = field_name(c);
            TensorMetadata {
                name: name.to_owned(),
                datatype: datatype(name).to_owned(),
                shape: vec![-1],
                parameters: Some(json!({ "required": REQUIRED.contains(&name) })),
            }
        })
        .collect();
    let outputs = OUTPUTS
        .iter()
        .map(|(name, datatype)| TensorMetadata {
            name: (*name).to_owned(),
            datatype: (*datatype).to_owned(),
            shape: vec![-1],
            parameters: None,
        })
        .collect();
    ModelMetadata {
        name: MODEL_NAME.to_owned(),
        versions: served_versions(state),
        platform: format!("revspend-{}", state.model.algorithm),
        inputs,
        outputs,
    }
}

/// Model metadata: its inputs and their datatypes.
#[utoipa::path(
    get,
    path = "/v2/models/{name}",
    tag = "v2",
    params(("name" = String, Path, description = "`revspend`")),
    responses(
        (status = 200, description = "The inputs and outputs with their datatypes", body = ModelMetadata),
        (status = 404, description = "Another model name", body = crate::ErrorBody),
    )
)]
pub(crate) async fn model_metadata(
    state: web::Data<AppState>,
    path: Named,
) -> Result<web::Json<ModelMetadata>, ApiError> {
    check_model(&*state.serving()?, &path, None)?;
    Ok(web::Json(metadata(&*state.serving()?)))
}

/// Metadata of one version of the model.
#[utoipa::path(
    get,
    path = "/v2/models/{name}/versions/{version}",
    tag = "v2",
    params(
        ("name" = String, Path, description = "`revspend`"),
        ("version" = String, Path, description = "The model version or its registry version"),
    ),
    responses(
        (status = 200, description = "The inputs and outputs with their datatypes", body = ModelMetadata),
        (status = 404, description = "Another model or version", body = crate::ErrorBody),
    )
)]
pub(crate) async fn version_metadata(
    state: web::Data<AppState>,
    path: NamedVersion,
) -> Result<web::Json<ModelMetadata>, ApiError> {
    check_model(&*state.serving()?, &path.0, Some(&path.1))?;
    Ok(web::Json(metadata(&*state.serving()?)))
}

/// Whether the model is ready.
#[utoipa::path(
    get,
    path = "/v2/models/{name}/ready",
    tag = "v2",
    params(("name" = String, Path, description = "`revspend`")),
    responses((status = 200, description = "Ready"), (status = 404, description = "Another model name", body = crate::ErrorBody))
)]
pub(crate) async fn model_ready(
    state: web::Data<AppState>,
    path: Named,
) -> Result<web::Json<Value>, ApiError> {
    check_model(&*state.serving()?, &path, None)?;
    Ok(web::Json(json!({ "name": MODEL_NAME, "ready": true })))
}

/// Whether one version of the model is ready.
#[utoipa::path(
    get,
    path = "/v2/models/{name}/versions/{version}/ready",
    tag = "v2",
    params(
        ("name" = String, Path, description = "`revspend`"),
        ("version" = String, Path, description = "The model version or its registry version"),
    ),
    responses((status = 200, description = "Ready"), (status = 404, description = "Another model or version", body = crate::ErrorBody))
)]
pub(crate) async fn version_ready(
    state: web::Data<AppState>,
    path: NamedVersion,
) -> Result<web::Json<Value>, ApiError> {
    check_model(&*state.serving()?, &path.0, Some(&path.1))?;
    Ok(web::Json(json!({ "name": MODEL_NAME, "ready": true })))
}

/// One input tensor of an inference request.
#[derive(Debug, Clone, Deserialize)]
struct InputTensor {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    data: Value,
}

/// The protocol's tensor datatypes; any is read as the field's text or
/// number, which the contract's parsers then check.
const DATATYPES: [&str; 13] = [
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64",
    "BYTES",
];

/// An inference request.
#[derive(Debug, Clone, Deserialize)]
struct InferRequest {
    #[serde(default)]
    id: Option<String>,
    inputs: Vec<InputTensor>,
    #[serde(default)]
    outputs: Option<Vec<Map<String, Value>>>,
}

/// Open Inference Protocol inference.
#[utoipa::path(
    post,
    path = "/v2/models/{name}/infer",
    tag = "v2",
    params(("name" = String, Path, description = "`revspend`")),
    request_body(content = super::openapi::InferRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The output tensors", body = super::openapi::InferResponse),
        (status = 400, description = "A tensor cannot be read (named)", body = crate::ErrorBody),
        (status = 422, description = "A row breaks one of the quality suite's row rules (named in `rule`)", body = crate::ErrorBody),
        (status = 404, description = "Another model name", body = crate::ErrorBody),
    )
)]
pub(crate) async fn infer(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: Named,
    body: web::Payload,
) -> Result<web::Json<Value>, ApiError> {
    let started = std::time::Instant::now();
    check_model(&*state.serving()?, &path, None)?;
    let bytes = read_body(&req, body, state.limits.max_body_bytes, state.body_timeout).await?;
    run(&state, &bytes, started).map(web::Json)
}

/// Inference on one version of the model.
#[utoipa::path(
    post,
    path = "/v2/models/{name}/versions/{version}/infer",
    tag = "v2",
    params(
        ("name" = String, Path, description = "`revspend`"),
        ("version" = String, Path, description = "The model version or its registry version"),
    ),
    request_body(content = super::openapi::InferRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The output tensors", body = super::openapi::InferResponse),
        (status = 400, description = "A tensor cannot be read (named)", body = crate::ErrorBody),
        (status = 422, description = "A row breaks one of the quality suite's row rules (named in `rule`)", body = crate::ErrorBody),
        (status = 404, description = "Another model or version", body = crate::ErrorBody),
    )
)]
pub(crate) async fn version_infer(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: NamedVersion,
    body: web::Payload,
) -> Result<web::Json<Value>, ApiError> {
    let started = std::time::Instant::now();
    check_model(&*state.serving()?, &path.0, Some(&path.1))?;
    let bytes = read_body(&req, body, state.limits.max_body_bytes, state.body_timeout).await?;
    run(&state, &bytes, started).map(web::Json)
}

/// A tensor's values as a flat list: `[v, ...]` or `[[v], ...]`.
fn flat(name: &str, data: &Value, rows: usize) -> Result<Vec<Value>, ApiError> {
    let path = |i: usize| format!("inputs[{name}].data[{i}]");
    let Value::Array(items) = data else {
        return Err(ApiError::field(
            &format!("inputs[{name}].data"),
            format!("input `{name}`: data must be an array"),
        ));
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match item {
            Value::Array(inner) if inner.len() == 1 => out.push(inner[0].clone()),
            Value::Array(_) | Value::Object(_) => {
                return Err(ApiError::field(
                    &path(i),
                    format!("input `{name}`: each row holds one value"),
                ));
            }
            v => out.push(v.clone()),
        }
    }
    if out.len() != rows {
        return Err(ApiError::field(
            &format!("inputs[{name}].data"),
            format!("input `{name}`: {} values for shape {rows}", out.len()),
        ));
    }
    Ok(out)
}

fn run(state: &AppState, body: &[u8], started: std::time::Instant) -> Result<Value, ApiError> {
    let req: InferRequest = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("not an inference request: {e}")))?;
    let rows = match req.inputs.first() {
        Some(first) => usize::try_from(first.shape.first().copied().unwrap_or(-1)).map_err(|_| {
            ApiError::field(
                &format!("inputs[{}].shape", first.name),
                "the first dimension of a shape is the number of rows, >= 0",
            )
        })?,
        None => return Err(ApiError::field("inputs", "the request has no input tensors")),
    };
    if rows > state.limits.max_rows {
        return Err(ApiError::TooManyRows {
            rows,
            limit: state.limits.max_rows,
        });
    }
    let mut columns: Vec<(String, Vec<Value>)> = Vec::with_capacity(req.inputs.len());
    for input in &req.inputs {
        if !request::is_field(&input.name) {
            return Err(ApiError::field(
                &format!("inputs[{}]", input.name),
                format!(
                    "unknown input `{}`; the inputs are {}",
                    input.name,
                    COLUMNS
                        .iter()
                        .map(|c| field_name(c))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        if !DATATYPES.contains(&input.datatype.as_str()) {
            return Err(ApiError::field(
                &format!("inputs[{}].datatype", input.name),
                format!(
                    "input `{}`: datatype `{}` is not one of {}",
                    input.name,
                    input.datatype,
                    DATATYPES.join(", ")
                ),
            ));
        }
        let shape_rows = input.shape.first().copied().unwrap_or(-1);
        let extra = input.shape.iter().skip(1).product::<i64>();
        if shape_rows != rows as i64 || extra != 1 {
            return Err(ApiError::field(
                &format!("inputs[{}].shape", input.name),
                format!(
                    "input `{}` has shape {:?}; every input is [{rows}] or [{rows}, 1]",
                    input.name, input.shape
                ),
            ));
        }
        columns.push((input.name.clone(), flat(&input.name, &input.data, rows)?));
    }
    state.metrics.batch(rows);
    let mut txns = Vec::with_capacity(rows);
    let deployment = state.deployment()?;
    for i in 0..rows {
        let row: Map<String, Value> = columns.iter().map(|(n, v)| (n.clone(), v[i].clone())).collect();
        let txn = request::transaction(&Value::Object(row), deployment.ranges())
            .map_err(|e| e.in_row(&format!("row {i}"), |f| format!("inputs[{f}].data[{i}]")))?;
        txns.push(txn);
    }
    let predictions = state.score(&deployment, &txns, "/v2/models/{name}/infer", started)?;
    let wanted: Vec<&str> = match &req.outputs {
        None => OUTPUTS.iter().map(|(n, _)| *n).collect(),
        Some(list) => {
            let mut names = Vec::with_capacity(list.len());
            for (k, o) in list.iter().enumerate() {
                let name = o.get("name").and_then(Value::as_str).unwrap_or_default();
                let Some((known, _)) = OUTPUTS.iter().find(|(n, _)| *n == name) else {
                    return Err(ApiError::field(
                        &format!("outputs[{k}].name"),
                        format!(
                            "unknown output `{name}`; the outputs are {}",
                            OUTPUTS.map(|(n, _)| n).join(", ")
                        ),
                    ));
                };
                names.push(*known);
            }
            names
        }
    };
    let outputs: Vec<Value> = wanted
        .iter()
        .map(|name| {
            let datatype = OUTPUTS
                .iter()
                .find(|(n, _)| n == name)
                .map_or("BYTES", |(_, d)| *d);
            let data: Vec<Value> = predictions.iter().map(|p| output(p, name)).collect();
            json!({ "name": name, "datatype": datatype, "shape": [rows], "data": data })
        })
        .collect();
    let mut answer = json!({
        "model_name": MODEL_NAME,
        "model_version": predictions
            .first()
            .map(|p| p.model_version.clone())
            .or_else(|| state.serving().ok().map(|s| s.model.model_version.clone()))
            .unwrap_or_default(),
        "outputs": outputs,
    });
    if let Some(id) = req.id {
        answer["id"] = Value::String(id);
    }
    Ok(answer)
}

fn output(p: &Prediction, name: &str) -> Value {
    match name {
        "probability" => json!(p.probability),
        "is_revenge_spending" => json!(p.is_revenge_spending),
        "cold_start" => json!(p.cold_start),
        "variant" => json!(p.variant),
        "model_version" => json!(p.model_version),
        _ => json!(p.prediction_id),
    }
}
