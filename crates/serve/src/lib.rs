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

mod config;
mod error;
mod request;
mod routes;
mod startup;
mod state;

pub use config::{
    Config, DEFAULT_BODY_TIMEOUT, DEFAULT_MAX_BATCH_BODY_BYTES, DEFAULT_MAX_BATCH_ROWS,
    DEFAULT_MAX_BODY_BYTES, ModelSource,
};
pub use error::{ApiError, ErrorBody};
pub use routes::batch::{BatchItem, BatchResponse};
pub use routes::configure;
pub use routes::health::{Health, Readiness};
pub use routes::v2::{MODEL_NAME, ModelMetadata, TensorMetadata};
pub use routes::version::Version;
pub use startup::{build_server, run};
pub use state::{AppState, BatchLimits, ModelOrigin, Prediction, check_keys};
