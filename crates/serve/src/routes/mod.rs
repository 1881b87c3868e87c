//! The routes, one module per endpoint, and what they share: the JSON
//! content-type check and the size-limited body read.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use serde_json::{Map, Value};

use crate::ApiError;

mod admin;
pub(crate) mod batch;
pub(crate) mod experiment;
pub(crate) mod feedback;
pub(crate) mod health;
mod metrics;
mod mlflow;
pub(crate) mod openapi;
mod predict;
pub(crate) mod v2;
pub(crate) mod version;

/// A resource answering `method` with `handler`, and 405 naming the method
/// otherwise.
macro_rules! only {
    ($path:expr, post, $handler:expr) => {
        web::resource($path)
            .name($path)
            .route(web::post().to($handler))
            .default_service(web::to(|| async {
                Err::<HttpResponse, _>(ApiError::MethodNotAllowed { allow: "POST" })
            }))
    };
    ($path:expr, get, $handler:expr) => {
        web::resource($path)
            .name($path)
            .route(web::get().to($handler))
            .default_service(web::to(|| async {
                Err::<HttpResponse, _>(ApiError::MethodNotAllowed { allow: "GET" })
            }))
    };
}

/// Registers the routes; `main` and the tests build their apps with it.
/// The app must carry a `web::Data<AppState>`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(only!("/predict", post, predict::predict))
        .service(only!("/predict/batch", post, batch::batch))
        .service(only!("/feedback", post, feedback::feedback))
        .service(only!("/experiment", get, experiment::experiment))
        .service(only!("/health", get, health::health))
        .service(only!("/health/live", get, health::live))
        .service(only!("/health/ready", get, health::ready))
        .service(only!("/version", get, version::version))
        .service(only!("/invocations", post, mlflow::invocations))
        .service(only!("/ping", get, mlflow::ping))
        .service(only!("/metrics", get, metrics::metrics))
        .service(only!("/admin/reload", post, admin::reload))
        .service(only!("/admin/rollback", post, admin::rollback))
        .service(only!("/v2", get, v2::server_metadata))
        .service(only!("/v2/health/live", get, v2::live))
        .service(only!("/v2/health/ready", get, v2::ready))
        .service(only!("/v2/models/{name}", get, v2::model_metadata))
        .service(only!("/v2/models/{name}/ready", get, v2::model_ready))
        .service(only!("/v2/models/{name}/infer", post, v2::infer))
        .service(only!(
            "/v2/models/{name}/versions/{version}",
            get,
            v2::version_metadata
        ))
        .service(only!(
            "/v2/models/{name}/versions/{version}/ready",
            get,
            v2::version_ready
        ))
        .service(only!(
            "/v2/models/{name}/versions/{version}/infer",
            post,
            v2::version_infer
        ))
        .service(openapi::docs())
        .default_service(web::to(not_found));
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound {
        path: req.path().to_owned(),
    })
}

/// Accepts `application/json` and `application/<anything>+json`, with any
/// parameters (`; charset=utf-8`).
pub(crate) fn check_json_content_type(req: &HttpRequest) -> Result<(), ApiError> {
    let got = req
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let essence = got
        .as_deref()
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    match essence.as_deref() {
        Some(m) if m == "application/json" || (m.starts_with("application/") && m.ends_with("+json")) => {
            Ok(())
        }
        _ => Err(ApiError::UnsupportedMediaType { got }),
    }
}

/// Reads the whole body, refusing more than `limit` bytes before reading
/// them when the client announces the length.
pub(crate) async fn read_body(
    req: &HttpRequest,
    body: web::Payload,
    limit: usize,
    timeout: std::time::Duration,
) -> Result<web::Bytes, ApiError> {
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    // A client that announces a body and stalls must not hold a worker's
    // connection open for ever.
    let read = actix_web::rt::time::timeout(timeout, body.to_bytes_limited(limit)).await;
    let Ok(read) = read else {
        return Err(ApiError::BodyTimeout { after: timeout });
    };
    match read {
        Err(_) => Err(ApiError::PayloadTooLarge { limit }),
        Ok(Err(e)) => Err(ApiError::bad_request(format!(
            "cannot read the request body: {e}"
        ))),
        Ok(Ok(bytes)) => Ok(bytes),
    }
}

/// The rows of a CSV body with a header: `,` (pandas' `to_csv`) or `;`
/// (the raw file's own format, ` valor ` header included), UTF-8 or cp1252.
/// Every value is read as the text a raw file would hold.
pub(crate) fn csv_rows(bytes: &[u8]) -> Result<Vec<Map<String, Value>>, ApiError> {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => std::borrow::Cow::Borrowed(t),
        Err(_) => revspend_core::contract::decode_cp1252(bytes),
    };
    let text = text.trim_start_matches('\u{feff}');
    let header = text.lines().next().unwrap_or_default();
    let delimiter = if header.contains(';') { b';' } else { b',' };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(true)
        .from_reader(text.as_bytes());
    let names: Vec<String> = reader
        .headers()
        .map_err(|e| ApiError::bad_request(format!("the CSV header cannot be read: {e}")))?
        .iter()
        .map(str::to_owned)
        .collect();
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        // Line i + 2: the header is line 1.
        let record = record.map_err(|e| ApiError::bad_request(format!("CSV line {}: {e}", i + 2)))?;
        rows.push(
            names
                .iter()
                .zip(record.iter())
                .map(|(n, v)| (n.clone(), Value::String(v.to_owned())))
                .collect(),
        );
    }
    Ok(rows)
}
