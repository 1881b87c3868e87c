//! `revspend-core`: everything two pipeline stages must agree on.
//!
//! - [`contract`]: the raw CSV data contract (cp1252, `;`, Brazilian amounts,
//!   `dd.mm.yyyy` dates, mis-encoded merchant groups) and its field parsers.
//! - [`target`]: the revenge-spending rule that defines the label.
//! - [`features`]: the feature definitions and the one function that computes
//!   them, used offline by `build-features` and online by `serve`.
//! - [`pseudonym`]: keyed-hash pseudonymisation of customer ids.
//! - [`params`]: `params.yaml` sections, parsed strictly and validated once.
//! - [`model`]: fitted model types and their probability output.
//! - [`calibration`]: probability calibrators the model artifact applies.
//! - [`registry`]: the model registry (versions, aliases, alias log) and
//!   the experiment log under `models/registry/`.
//! - [`metrics`]: metric report types shared by `train` and `evaluate`.
//! - [`profile`]: distribution profiles of tables (reference for drift).
//! - [`artifact`]: the only module that touches on-disk formats (parquet
//!   tables, JSON reports, the enveloped bincode model and snapshot files),
//!   always written atomically.
//!
//! It knows nothing of HTTP or command-line parsing.

pub mod artifact;
pub mod calibration;
pub mod contract;
pub mod features;
pub mod metrics;
pub mod model;
pub mod params;
pub mod profile;
pub mod pseudonym;
pub mod registry;
pub mod target;
