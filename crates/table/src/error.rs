//! Why a table could not be written or read.

use std::path::PathBuf;

use polars::prelude::PolarsError;
use revspend_core::artifact::ArtifactError;
use thiserror::Error;

/// Why a table could not be written or read; every variant names the file.
#[derive(Debug, Error)]
pub enum TableError {
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Creating, syncing or renaming the temporary file of an atomic write.
    #[error(transparent)]
    Atomic(#[from] ArtifactError),
    #[error("{path}: invalid parquet table")]
    Parquet {
        path: PathBuf,
        #[source]
        source: PolarsError,
    },
    #[error("{path}: table schema version {got:?}, this build reads {expected:?}")]
    SchemaVersion {
        path: PathBuf,
        expected: &'static str,
        got: Option<String>,
    },
    /// The file's bytes are not those recorded when it was written.
    #[error("{path}: SHA-256 {got} is not the recorded {expected} (the file changed after it was written)")]
    Checksum {
        path: PathBuf,
        expected: String,
        got: String,
    },
    #[error("{path}: column `{column}` is missing")]
    MissingColumn { path: PathBuf, column: String },
    #[error("{path}: column `{column}` has type {got}, expected {expected}")]
    ColumnType {
        path: PathBuf,
        column: String,
        expected: String,
        got: String,
    },
    #[error("{path}: {reason}")]
    Manifest { path: PathBuf, reason: String },
    #[error("{path}: invalid quarantine CSV")]
    Csv {
        path: PathBuf,
        #[source]
        source: csv::Error,
    },
}

pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> TableError + '_ {
    move |source| TableError::Io {
        path: path.to_owned(),
        source,
    }
}
