//! `serve`: the HTTP API that scores one card purchase for revenge spending.
//!
//! At start it reads the model artifact written by `train` (a file, or the
//! version a registry alias points to: [`ModelSource`]) and the online
//! feature snapshot written by `build-features` (per-customer history state,
//! keyed by pseudonym); it writes nothing. Routes:
//!
//! - `POST /predict`: one transaction in the raw field names of the data
//!   contract → `{model_version, is_revenge_spending, probability,
//!   threshold, cold_start}`.
//! - `GET /health` → `{status, model_version, snapshot_customers}`.
//!
//! The server refuses to start when its pseudonymisation key is not the one
//! the snapshot and the model were made with (their key fingerprints differ,
//! and every customer would silently be a cold start), and, when it follows
//! a registry alias, when the artifact is not the file the registry
//! recorded (SHA-256, model version, path inside the registry).
//!
//! Features are computed by [`revspend_core::features::compute`], the same
//! function the offline pipeline runs, from the customer's snapshot history
//! (an empty history for an unknown customer: a cold start). Every error is
//! an [`ApiError`] with a JSON body `{"error": ..., "field": ...}`.

use std::fmt;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use actix_web::dev::Server;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, ResponseError, middleware, web};
use anyhow::Context;
use revspend_core::artifact;
use revspend_core::contract::Transaction;
use revspend_core::features::{self, History, OnlineSnapshot};
use revspend_core::model::{FeatureMatrix, ModelArtifact};
use revspend_core::pseudonym::{self, Pseudonymiser};
use serde::{Deserialize, Serialize};

mod request;

/// Default request body limit: a transaction is a few hundred bytes.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;

/// Server settings, from flags and environment (never `params.yaml`).
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port.
    pub bind: String,
    /// Where the model artifact comes from.
    pub model: ModelSource,
    /// Online snapshot file; `None` serves every request as a cold start.
    pub snapshot: Option<PathBuf>,
    /// HTTP worker threads, >= 1.
    pub workers: usize,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Use the public development pseudonymisation key when
    /// `REVSPEND_PSEUDONYM_KEY` is unset (otherwise that is a start-up error).
    pub allow_development_key: bool,
}

/// Where the server's model comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// A model artifact file.
    File(PathBuf),
    /// The version `alias` points to in the registry at `dir`.
    Registry { dir: PathBuf, alias: String },
}

impl ModelSource {
    /// Reads the model, with the path it came from. From a registry, the
    /// file is checked against the alias's index entry (path inside the
    /// registry, SHA-256, model version) before it is used.
    pub fn load(&self) -> anyhow::Result<(PathBuf, ModelArtifact)> {
        match self {
            ModelSource::File(path) => {
                let model = artifact::read_model(path).context("cannot load the model")?;
                Ok((path.clone(), model))
            }
            ModelSource::Registry { dir, alias } => {
                let registry = revspend_core::registry::Registry::new(dir);
                let loaded = registry
                    .load(alias)
                    .with_context(|| format!("cannot load the model of registry alias {alias:?}"))?;
                log::info!(
                    "registry {}: {alias} -> {} ({}, SHA-256 as registered)",
                    dir.display(),
                    loaded.entry.version,
                    loaded.entry.model_version
                );
                Ok((loaded.path, loaded.model))
            }
        }
    }
}

/// What every request handler shares: the model, the feature store and the
/// key that maps request ids to the store's pseudonyms.
pub struct AppState {
    model: ModelArtifact,
    snapshot: OnlineSnapshot,
    pseudonymiser: Pseudonymiser,
    max_body_bytes: usize,
}

impl fmt::Debug for AppState {
    // A summary: the snapshot can hold millions of customers.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppState")
            .field("model_version", &self.model.model_version)
            .field("snapshot_customers", &self.snapshot.customers.len())
            .field("pseudonymiser", &self.pseudonymiser)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// A state over an already loaded model and snapshot; refused when the
    /// key is not the one both were made with ([`check_keys`]).
    pub fn new(
        model: ModelArtifact,
        snapshot: OnlineSnapshot,
        pseudonymiser: Pseudonymiser,
        max_body_bytes: usize,
    ) -> anyhow::Result<AppState> {
        check_keys(&pseudonymiser, &model, &snapshot)?;
        if snapshot.rule != model.rule {
            log::warn!(
                "the online snapshot was built with target rule {:?} but model {} with {:?}: \
                 history revenge counts follow a different rule than in training",
                snapshot.rule,
                model.model_version,
                model.rule
            );
        }
        Ok(AppState {
            model,
            snapshot,
            pseudonymiser,
            max_body_bytes,
        })
    }

    /// Reads the model and the snapshot named in `config`. Without a
    /// snapshot every customer is a cold start.
    pub fn load(config: &Config, pseudonymiser: Pseudonymiser) -> anyhow::Result<AppState> {
        let (path, model) = config.model.load()?;
        log::info!(
            "model {} ({}, {} features, threshold {:.4}) from {}",
            model.model_version,
            model.algorithm,
            model.features.len(),
            model.threshold,
            path.display()
        );
        let snapshot = match &config.snapshot {
            Some(path) => load_snapshot(path)?,
            None => {
                log::warn!("no online snapshot: every request is served as a cold start");
                OnlineSnapshot {
                    as_of: None,
                    rule: model.rule.clone(),
                    customers: Default::default(),
                    // No customers to mismatch: only the model's key is checked.
                    key_fingerprint: model.key_fingerprint.clone(),
                }
            }
        };
        AppState::new(model, snapshot, pseudonymiser, config.max_body_bytes)
    }

    /// Scores one transaction.
    pub fn predict(&self, txn: &Transaction) -> Result<Prediction, ApiError> {
        let pseudonym = self.pseudonymiser.pseudonym(&txn.id);
        let cold = History::default();
        let (history, cold_start) = match self.snapshot.history(&pseudonym) {
            Some(h) => (h, false),
            None => (&cold, true),
        };
        log::debug!("scoring customer {pseudonym} (cold start: {cold_start})");
        let all = features::compute(history, txn, &self.model.rule);
        let row = features::select(&all, &self.model.features);
        let x = FeatureMatrix::new(1, row.len(), row);
        let probability = self
            .model
            .predict_proba(&x)
            .with_context(|| format!("model {} failed to predict", self.model.model_version))
            .map_err(ApiError::Internal)?
            .first()
            .copied()
            .ok_or_else(|| {
                ApiError::Internal(anyhow::anyhow!("the model returned no probability for one row"))
            })?;
        if !probability.is_finite() {
            return Err(ApiError::Internal(anyhow::anyhow!(
                "model {} returned the probability {probability}",
                self.model.model_version
            )));
        }
        Ok(Prediction {
            model_version: self.model.model_version.clone(),
            is_revenge_spending: probability >= self.model.threshold,
            probability,
            threshold: self.model.threshold,
            cold_start,
        })
    }
}

/// Refuses to serve with a pseudonymisation key other than the one the
/// snapshot's customers and the model's training data were pseudonymised
/// with, or a snapshot and a model made with different keys: no customer
/// would be found and every request would silently be a cold start. The
/// error names every fingerprint (a keyed hash of a fixed string, not the
/// key).
pub fn check_keys(
    pseudonymiser: &Pseudonymiser,
    model: &ModelArtifact,
    snapshot: &OnlineSnapshot,
) -> anyhow::Result<()> {
    let key = pseudonymiser.key_fingerprint();
    let named =
        |fingerprint: &str| format!("{fingerprint} ({})", pseudonym::describe_fingerprint(fingerprint));
    if model.key_fingerprint != snapshot.key_fingerprint {
        anyhow::bail!(
            "the model {} was trained on data pseudonymised with the key of fingerprint {}, but \
             the online snapshot was built with the key of fingerprint {}: rebuild both with one \
             key (`dvc repro` with REVSPEND_PSEUDONYM_KEY set as for serving)",
            model.model_version,
            named(&model.key_fingerprint),
            named(&snapshot.key_fingerprint)
        );
    }
    if key != model.key_fingerprint {
        anyhow::bail!(
            "the pseudonymisation key has fingerprint {}, but the online snapshot and the model {} \
             were made with the key of fingerprint {}: no customer would be found. Start serve \
             with the key build-features used (REVSPEND_PSEUDONYM_KEY; --allow-development-key \
             for the public development key)",
            named(&key),
            model.model_version,
            named(&model.key_fingerprint)
        );
    }
    if pseudonymiser.is_development_key() {
        log::warn!("serving with the public development pseudonymisation key: for generated data only");
    }
    log::info!(
        "pseudonymisation key fingerprint {} matches the snapshot and the model",
        named(&key)
    );
    Ok(())
}

fn load_snapshot(path: &Path) -> anyhow::Result<OnlineSnapshot> {
    let snapshot = artifact::read_snapshot(path).context(
        "cannot load the online snapshot (build it with build-features, or pass --no-snapshot \
         to serve cold starts only)",
    )?;
    log::info!(
        "online snapshot of {} customers as of {} from {}",
        snapshot.customers.len(),
        snapshot.as_of.map_or_else(|| "-".to_owned(), |d| d.to_string()),
        path.display()
    );
    Ok(snapshot)
}

/// The `POST /predict` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub model_version: String,
    /// `probability >= threshold`.
    pub is_revenge_spending: bool,
    pub probability: f64,
    pub threshold: f64,
    /// The customer is not in the online snapshot: history features took
    /// their documented cold-start values.
    pub cold_start: bool,
}

/// The `GET /health` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    pub model_version: String,
    pub snapshot_customers: usize,
}

/// Every way a request can fail. 4xx carry a message a client can act on
/// (and the offending field when there is one); 5xx are opaque to the client
/// and logged in full.
#[derive(Debug)]
pub enum ApiError {
    BadRequest { message: String, field: Option<String> },
    UnsupportedMediaType { got: Option<String> },
    PayloadTooLarge { limit: usize },
    NotFound { path: String },
    MethodNotAllowed { allow: &'static str },
    Internal(anyhow::Error),
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::BadRequest {
            message: message.into(),
            field: None,
        }
    }

    /// A 400 about one request field.
    pub fn field(field: &str, message: impl Into<String>) -> ApiError {
        ApiError::BadRequest {
            message: message.into(),
            field: Some(field.to_owned()),
        }
    }

    /// The request field at fault, when there is one.
    pub fn field_name(&self) -> Option<&str> {
        match self {
            ApiError::BadRequest { field, .. } => field.as_deref(),
            _ => None,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::BadRequest { message, .. } => f.write_str(message),
            ApiError::UnsupportedMediaType { got } => write!(
                f,
                "expected Content-Type: application/json, got {}",
                got.as_deref().unwrap_or("no Content-Type")
            ),
            ApiError::PayloadTooLarge { limit } => {
                write!(f, "the request body is larger than the limit of {limit} bytes")
            }
            ApiError::NotFound { path } => {
                write!(f, "no route {path}; the routes are POST /predict and GET /health")
            }
            ApiError::MethodNotAllowed { allow } => write!(f, "method not allowed; use {allow}"),
            ApiError::Internal(_) => f.write_str("internal error"),
        }
    }
}

/// The JSON body of every error response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(source) = self {
            log::error!("internal error: {source:#}");
        }
        let mut response = HttpResponse::build(self.status_code());
        if let ApiError::MethodNotAllowed { allow } = self {
            response.insert_header((header::ALLOW, HeaderValue::from_static(allow)));
        }
        response.json(ErrorBody {
            error: self.to_string(),
            field: self.field_name().map(str::to_owned),
        })
    }
}

/// Registers the routes; `main` and the tests build their apps with it.
/// The app must carry a `web::Data<AppState>`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/predict")
            .route(web::post().to(predict))
            .default_service(web::to(|| async {
                Err::<HttpResponse, _>(ApiError::MethodNotAllowed { allow: "POST" })
            })),
    )
    .service(
        web::resource("/health")
            .route(web::get().to(health))
            .default_service(web::to(|| async {
                Err::<HttpResponse, _>(ApiError::MethodNotAllowed { allow: "GET" })
            })),
    )
    .default_service(web::to(not_found));
}

async fn predict(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<web::Json<Prediction>, ApiError> {
    check_json_content_type(&req)?;
    let bytes = read_body(&req, body, state.max_body_bytes).await?;
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))?;
    let txn = request::transaction(&value)?;
    Ok(web::Json(state.predict(&txn)?))
}

async fn health(state: web::Data<AppState>) -> web::Json<Health> {
    web::Json(Health {
        status: "ok".to_owned(),
        model_version: state.model.model_version.clone(),
        snapshot_customers: state.snapshot.customers.len(),
    })
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound {
        path: req.path().to_owned(),
    })
}

/// Accepts `application/json` and `application/<anything>+json`, with any
/// parameters (`; charset=utf-8`).
fn check_json_content_type(req: &HttpRequest) -> Result<(), ApiError> {
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
async fn read_body(req: &HttpRequest, body: web::Payload, limit: usize) -> Result<web::Bytes, ApiError> {
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    match body.to_bytes_limited(limit).await {
        Err(_) => Err(ApiError::PayloadTooLarge { limit }),
        Ok(Err(e)) => Err(ApiError::bad_request(format!(
            "cannot read the request body: {e}"
        ))),
        Ok(Ok(bytes)) => Ok(bytes),
    }
}

/// Binds `bind` and builds the server over `state`, returning it (not yet
/// polled) with the address actually bound, which tells the port when
/// `bind` asked for port 0.
pub fn build_server(state: AppState, bind: &str, workers: usize) -> anyhow::Result<(Server, SocketAddr)> {
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .wrap(middleware::Logger::default())
            .app_data(data.clone())
            .configure(configure)
    })
    .workers(workers.max(1))
    .bind(bind)
    .with_context(|| format!("cannot listen on {bind}"))?;
    let addr = server
        .addrs()
        .first()
        .copied()
        .with_context(|| format!("{bind} resolved to no address"))?;
    Ok((server.run(), addr))
}

/// Loads the state, binds, announces `listening on http://ADDR` (log and
/// stdout, so scripts can read the port) and serves until stopped.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let pseudonymiser = Pseudonymiser::from_env(
        config.allow_development_key,
        "`serve --allow-development-key` (or REVSPEND_ALLOW_DEVELOPMENT_KEY=true)",
    )?;
    let state = AppState::load(&config, pseudonymiser)?;
    let (server, addr) = build_server(state, &config.bind, config.workers)?;
    log::info!("listening on http://{addr}");
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on http://{addr}").context("cannot write to stdout")?;
    stdout.flush().context("cannot write to stdout")?;
    drop(stdout);
    server.await.context("the HTTP server failed")
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    fn body_of(error: &ApiError) -> (StatusCode, ErrorBody) {
        let response = error.error_response();
        let status = response.status();
        let bytes = response.into_body().try_into_bytes().expect("sized body");
        (status, serde_json::from_slice(&bytes).expect("JSON error body"))
    }

    #[test]
    fn internal_errors_are_opaque_to_the_client() {
        let error = ApiError::Internal(anyhow::anyhow!("secret detail").context("reading /etc/model"));
        let (status, body) = body_of(&error);
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            body,
            ErrorBody {
                error: "internal error".into(),
                field: None
            }
        );
    }

    #[test]
    fn client_errors_carry_message_and_field() {
        let (status, body) = body_of(&ApiError::field("valor", "field `valor`: bad"));
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body.field.as_deref(), Some("valor"));
        assert_eq!(body.error, "field `valor`: bad");

        let (status, body) = body_of(&ApiError::PayloadTooLarge { limit: 10 });
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(body.error.contains("10 bytes"), "{}", body.error);
        assert_eq!(body.field, None);

        let response = ApiError::MethodNotAllowed { allow: "POST" }.error_response();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(
            response.headers().get(header::ALLOW).map(|v| v.as_bytes()),
            Some(&b"POST"[..])
        );
    }
}
