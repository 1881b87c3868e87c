//! The retrain request: the file through which the monitor asks the
//! pipeline to retrain on data up to a date, and which build-features
//! honours by extending the training period's end (`split.until`) to it.
//!
//! The file always exists (DVC tracks it as a dependency of build-features,
//! and a dependency must exist): with no request it holds
//! `{"version": 1, "request": null}`. It is pretty JSON written atomically
//! and its version is checked on read.

use std::path::Path;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::{ArtifactError, read_json, write_json};

/// Version of the retrain request file.
pub const RETRAIN_REQUEST_VERSION: u32 = 1;

/// The whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrainRequestFile {
    pub version: u32,
    /// `None`: nothing requested.
    pub request: Option<RetrainRequest>,
}

/// One request to retrain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrainRequest {
    /// Train on purchases dated up to and including this day.
    pub until: NaiveDate,
    /// The alarm that asked for it.
    pub alarm: String,
    /// The monitoring window it fired on (e.g. `2020-07`).
    pub window: String,
    /// Why, in words (the alarm's metric, value and threshold).
    pub reason: String,
    /// RFC 3339, UTC.
    pub requested_at: String,
    /// Who ran the monitor (`REVSPEND_USER`, else `USER`).
    pub requested_by: String,
}

/// Reads the request file: `Ok(None)` when it holds no request. A missing
/// file is an error (the pipeline ships one).
pub fn read_retrain_request(path: &Path) -> Result<Option<RetrainRequest>, ArtifactError> {
    #[derive(Deserialize)]
    struct Versioned {
        version: u32,
    }
    let Versioned { version } = read_json(path)?;
    if version != RETRAIN_REQUEST_VERSION {
        return Err(ArtifactError::RequestVersion {
            path: path.to_owned(),
            expected: RETRAIN_REQUEST_VERSION,
            got: version,
        });
    }
    let file: RetrainRequestFile = read_json(path)?;
    Ok(file.request)
}

/// Writes the request file (`None`: clears the request), atomically.
pub fn write_retrain_request(path: &Path, request: Option<&RetrainRequest>) -> Result<(), ArtifactError> {
    write_json(
        path,
        &RetrainRequestFile {
            version: RETRAIN_REQUEST_VERSION,
            request: request.cloned(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> RetrainRequest {
        RetrainRequest {
            until: NaiveDate::from_ymd_opt(2020, 7, 29).expect("date"),
            alarm: "dataset_drift".into(),
            window: "2020-07".into(),
            reason: "drift.share 0.62 >= 0.5".into(),
            requested_at: "2020-07-30T00:00:00Z".into(),
            requested_by: "monitor".into(),
        }
    }

    #[test]
    fn round_trips_a_request_and_its_absence() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("retrain.json");
        write_retrain_request(&path, Some(&request())).expect("write");
        assert_eq!(read_retrain_request(&path).expect("read"), Some(request()));
        write_retrain_request(&path, None).expect("write");
        assert_eq!(read_retrain_request(&path).expect("read"), None);
    }

    #[test]
    fn refuses_another_version_and_unknown_fields() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("retrain.json");
        std::fs::write(&path, r#"{"version": 2, "request": null}"#).expect("write");
        let err = read_retrain_request(&path).expect_err("version 2").to_string();
        assert!(err.contains("version 2"), "{err}");
        std::fs::write(&path, r#"{"version": 1, "request": null, "extra": 1}"#).expect("write");
        assert!(read_retrain_request(&path).is_err());
        assert!(read_retrain_request(&dir.path().join("missing.json")).is_err());
    }
}
