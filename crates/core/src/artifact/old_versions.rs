//! Files of earlier formats (`tests/fixtures/`) are refused by their
//! version with what to do, never misread: one test per format bump.

use std::path::Path;

use super::*;
use crate::features::OnlineSnapshot;

/// Decodes an old model fixture named `path` and checks it is refused by
/// its version `got`, naming the file and what to do.
fn refused_model(path: &str, bytes: &[u8], got: u32) -> String {
    let err = decode_model(Path::new(path), bytes).expect_err("an old version");
    assert!(
        matches!(
            err,
            ArtifactError::Version {
                kind: Kind::Model,
                expected: MODEL_FORMAT_VERSION,
                got: g,
                ..
            } if g == got
        ),
        "{err}"
    );
    let message = err.to_string();
    assert!(message.contains(path) && message.contains("retrain"), "{message}");
    message
}

/// Issue 11: a model written by the last version-2 build is refused by
/// its version, naming the file and both versions, never misread.
#[test]
fn a_version_2_model_is_refused_with_the_version_error() {
    let message = refused_model(
        "models/model-v2.bin",
        include_bytes!("../../tests/fixtures/model-v2.bin"),
        2,
    );
    assert!(
        message.contains("version 2") && message.contains(&format!("version {MODEL_FORMAT_VERSION}")),
        "{message}"
    );
}

/// Issue 12: a model written before the key fingerprint was stored
/// (format 3, `tests/fixtures/model-v3.bin`) is refused by its version,
/// with what to do, never read as a model without a key.
#[test]
fn a_version_3_model_without_a_key_fingerprint_is_refused() {
    refused_model(
        "models/model-v3.bin",
        include_bytes!("../../tests/fixtures/model-v3.bin"),
        3,
    );
}

/// Issue 14: a model written before the boosted splits recorded their
/// gain (format 4, `tests/fixtures/model-v4.bin`) is refused by its
/// version, with what to do, never read with gains it does not have.
#[test]
fn a_version_4_model_without_split_gains_is_refused() {
    refused_model(
        "models/model-v4.bin",
        include_bytes!("../../tests/fixtures/model-v4.bin"),
        4,
    );
}

/// Decodes an old snapshot fixture named `path` and checks it is refused by
/// its version `got`, naming the file and what to do.
fn refused_snapshot(path: &str, bytes: &[u8], got: u32) {
    let err = decode::<OnlineSnapshot>(Path::new(path), Kind::Snapshot, bytes).expect_err("an old version");
    assert!(
        matches!(
            err,
            ArtifactError::Version {
                kind: Kind::Snapshot,
                expected: SNAPSHOT_FORMAT_VERSION,
                got: g,
                ..
            } if g == got
        ),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains(path) && message.contains("build-features"),
        "{message}"
    );
}

/// Issue 12: a snapshot written before the key fingerprint was stored
/// (format 2, `tests/fixtures/snapshot-v2.bin`) is refused by its
/// version, with what to do.
#[test]
fn a_version_2_snapshot_without_a_key_fingerprint_is_refused() {
    refused_snapshot(
        "data/online/snapshot-v2.bin",
        include_bytes!("../../tests/fixtures/snapshot-v2.bin"),
        2,
    );
}

/// Issue 15: a snapshot written before the accepted value ranges were
/// stored (format 3, `tests/fixtures/snapshot-v3.bin`) is refused by its
/// version, never read as a snapshot without the rules requests are
/// checked against.
#[test]
fn a_version_3_snapshot_without_value_ranges_is_refused() {
    refused_snapshot(
        "data/online/snapshot-v3.bin",
        include_bytes!("../../tests/fixtures/snapshot-v3.bin"),
        3,
    );
}

/// Issue 16: a snapshot keyed by the pseudonyms' hex text (format 4,
/// `tests/fixtures/snapshot-v4.bin`) is refused by its version, never
/// decoded as byte keys.
#[test]
fn a_version_4_snapshot_keyed_by_hex_text_is_refused() {
    refused_snapshot(
        "data/online/snapshot-v4.bin",
        include_bytes!("../../tests/fixtures/snapshot-v4.bin"),
        4,
    );
}
