//! `serve`: the HTTP API that scores card purchases for revenge spending.
//!
//! It reads the model artifact written by `train` (a file, or the version a
//! registry alias points to: [`ModelSource`]) and the online feature
//! snapshot written by `build-features` (per-customer history state, keyed
//! by pseudonym); it writes nothing. When it follows an alias it reloads
//! without a restart when the alias moves or the snapshot file changes
//! (`reload`: load, validate, smoke-predict, atomic swap; a refused model
//! leaves the serving one in place). Routes, one module each under
//! `routes/`: `/predict`, `/predict/batch`, MLflow's `/invocations` and
//! `/ping`, the Open Inference Protocol's `/v2/...`, `/health/live`,
//! `/health/ready`, `/version`, `/metrics` (with live per-feature drift
//! gauges against the training profile: [`DriftWindow`]), and
//! `/admin/reload` and `/admin/rollback` behind a bearer token.
//!
//! The server refuses a model whose pseudonymisation key is not the one the
//! snapshot was made with (their key fingerprints differ, and every
//! customer would silently be a cold start), and, when it follows a
//! registry alias, an artifact that is not the file the registry recorded
//! (SHA-256, model version, path inside the registry).
//!
//! Features are computed by [`revspend_core::features::compute`], the same
//! function the offline pipeline runs, from the customer's snapshot history
//! (an empty history for an unknown customer: a cold start). Every error is
//! an [`ApiError`] with a JSON body `{"error": ..., "field": ...}` (MLflow's
//! body on `/invocations`).

mod access_log;
mod config;
mod drift;
mod error;
pub mod experiment;
mod loading;
mod metrics;
mod prediction_log;
mod reload;
mod request;
mod routes;
mod startup;
mod state;

pub use config::{
    AdminToken, Config, DEFAULT_BODY_TIMEOUT, DEFAULT_DRIFT_PROFILE, DEFAULT_FEEDBACK_CAPACITY,
    DEFAULT_FEEDBACK_WINDOW_HOURS, DEFAULT_LOG_FILE_MAX_BYTES, DEFAULT_LOG_QUEUE,
    DEFAULT_MAX_BATCH_BODY_BYTES, DEFAULT_MAX_BATCH_ROWS, DEFAULT_MAX_BODY_BYTES, DEFAULT_SHADOW_QUEUE,
    ModelSource,
};
pub use drift::{DEFAULT_DRIFT_WINDOW, DriftReading, DriftWindow, PSI_ALARM, PSI_WARN};
pub use error::{ApiError, ErrorBody};
pub use loading::check_keys;
pub use routes::batch::{BatchItem, BatchResponse};
pub use routes::configure;
pub use routes::health::{Health, Readiness};
pub use routes::v2::{MODEL_NAME, ModelMetadata, TensorMetadata};
pub use routes::version::Version;
pub use startup::{build_server, build_shared_server, run};
pub use state::{AppState, BatchLimits, ModelOrigin, Prediction, ReloadOutcome, Scored, Serving};
