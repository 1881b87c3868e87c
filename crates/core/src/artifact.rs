//! Every on-disk format the pipeline exchanges, and the only code that
//! touches them:
//!
//! - pretty JSON reports and the feature list;
//! - the prediction log's JSON lines ([`prediction_log`]);
//! - enveloped binary artifacts (the model and the online snapshot):
//!   `magic (8) | format version u32 LE | payload length u64 LE |
//!   SHA-256 of payload (32) | payload (bincode 2, serde)`.
//!
//! All writes go to a temporary file in the destination directory, are
//! fsynced and renamed into place, so a crash never leaves half a file;
//! [`temp_beside`] and [`persist`] are that mechanism, which
//! `revspend-table` uses for the parquet tables and the quarantine file.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::features::OnlineSnapshot;
use crate::model::ModelArtifact;

/// Version of the model file: the envelope layout and the payload types
/// inside ([`ModelArtifact`]). Bump it whenever the payload changes shape
/// (the golden-hash test in this module fails until you do), and keep a
/// fixture of the old version in `tests/fixtures/` with a test of its
/// refusal in `artifact/old_versions.rs`.
///
/// 2: the model gained calibrator, reliability, chosen spec and the new
/// classifiers (issue 4).
/// 3: the training params are stored as their JSON text with its hash
/// instead of as a Rust struct, the hyper-parameters likewise, the feature
/// schema by column name, and the CART trees as `revspend-core`'s own node
/// type instead of smartcore's (issue 11). Version 2 files are refused with
/// the version error: retrain (`dvc repro` or `train`) to get a version 3
/// file.
/// 4: the model records the fingerprint of the pseudonymisation key its
/// training data was made with (issue 12), so the server can refuse a
/// different key. Version 3 files are refused with the version error:
/// retrain to get a version 4 file.
/// 5: each split of a boosted tree records the gain it was chosen with
/// (`GbmNode::gain`), the model's gain importance (issue 14). Version 4
/// files are refused with the version error: retrain to get a version 5
/// file.
pub const MODEL_FORMAT_VERSION: u32 = 5;

/// Version of the online snapshot file ([`OnlineSnapshot`]), bumped on its
/// own: the model and the snapshot change shape independently.
///
/// 3: the snapshot records the fingerprint of its pseudonymisation key
/// (issue 12). Version 2 files are refused with the version error: rerun
/// build-features.
/// 4: the snapshot records the quality suite's accepted value ranges, which
/// the server checks requests against (issue 15).
/// 5: customers are keyed by their pseudonym's 16 bytes instead of its hex
/// text (issue 16: a 300,000-customer snapshot takes 12 MB less memory in
/// the server).
pub const SNAPSHOT_FORMAT_VERSION: u32 = 5;

const HEADER_LEN: usize = 8 + 4 + 8 + 32;

/// The kinds of enveloped artifact, each with its own magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Model,
    Snapshot,
}

impl Kind {
    /// The format version this build writes and reads for this kind.
    pub fn version(self) -> u32 {
        match self {
            Kind::Model => MODEL_FORMAT_VERSION,
            Kind::Snapshot => SNAPSHOT_FORMAT_VERSION,
        }
    }

    /// How to get a file of the version this build reads.
    fn remedy(self) -> &'static str {
        match self {
            Kind::Model => "retrain (`dvc repro`, or `train`) to write one",
            Kind::Snapshot => "rebuild it (`dvc repro`, or `build-features`)",
        }
    }

    fn magic(self) -> &'static [u8; 8] {
        match self {
            Kind::Model => b"RVSPMODL",
            Kind::Snapshot => b"RVSPSNAP",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Model => "model",
            Kind::Snapshot => "online snapshot",
        })
    }
}

/// Why an artifact could not be written or read.
#[derive(Debug, Error)]
pub enum ArtifactError {
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a revspend {expected} file (wrong magic bytes)")]
    Magic { path: PathBuf, expected: Kind },
    #[error(
        "{path}: {kind} format version {got}, this build reads version {expected}; {}",
        .kind.remedy()
    )]
    Version {
        path: PathBuf,
        kind: Kind,
        expected: u32,
        got: u32,
    },
    #[error(
        "{path}: bandit state version {got}, this build reads version {expected}: move it aside \
         (the bandit then starts again from its prior)"
    )]
    StateVersion { path: PathBuf, expected: u32, got: u32 },
    #[error(
        "{path}: retrain request version {got}, this build reads version {expected}: write it again \
         with this build's monitor, or reset it to {{\"version\": {expected}, \"request\": null}}"
    )]
    RequestVersion { path: PathBuf, expected: u32, got: u32 },
    #[error("{path}: truncated: header says {expected} payload bytes, file has {got}")]
    Truncated { path: PathBuf, expected: u64, got: u64 },
    #[error("{path}: checksum mismatch: the file is corrupt")]
    Checksum { path: PathBuf },
    #[error("{path}: cannot decode {kind} payload: {message}")]
    Decode {
        path: PathBuf,
        kind: Kind,
        message: String,
    },
    #[error("{path}: the training params stored in the model hash to {got}, the model records {recorded}")]
    ParamsHash {
        path: PathBuf,
        recorded: String,
        got: String,
    },
    #[error("cannot encode {kind}: {message}")]
    Encode { kind: Kind, message: String },
    #[error(
        "{path}: feature list version {got}, this build reads version {expected}: it was written by \
         another build-features release; rerun build-features"
    )]
    FeatureListVersion { path: PathBuf, expected: u32, got: u32 },
    #[error(
        "{path} is not the {role} that {list} records (SHA-256 {got}, recorded {recorded}): the outputs \
         of build-features come from two runs (a run was interrupted or a file was replaced); rerun \
         build-features"
    )]
    OtherRun {
        list: PathBuf,
        role: String,
        path: PathBuf,
        recorded: String,
        got: String,
    },
    #[error("{path}: unknown feature `{name}` (this build does not compute it)")]
    UnknownFeature { path: PathBuf, name: String },
    #[error("{path}: invalid JSON")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ArtifactError + '_ {
    move |source| ArtifactError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes `bytes` to `path` atomically: temp file in the same directory,
/// fsync, rename, fsync of the directory. Creates the directory if needed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ArtifactError> {
    let mut tmp = temp_beside(path)?;
    tmp.write_all(bytes).map_err(io_err(path))?;
    persist(tmp, path)
}

/// A temporary file in `path`'s directory (created if needed), to be
/// [`persist`]ed over `path`.
pub fn temp_beside(path: &Path) -> Result<tempfile::NamedTempFile, ArtifactError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .rand_bytes(TEMP_RANDOM_CHARS)
        .tempfile_in(dir)
        .map_err(io_err(dir))
}

/// The prefix of [`temp_beside`]'s file names, followed by
/// [`TEMP_RANDOM_CHARS`] random letters and digits.
pub const TEMP_PREFIX: &str = ".tmp-";
const TEMP_RANDOM_CHARS: usize = 6;

/// Whether `name` is the name of a [`temp_beside`] file: what a process
/// killed during an atomic write leaves behind.
pub fn is_temp_name(name: &str) -> bool {
    name.strip_prefix(TEMP_PREFIX).is_some_and(|rest| {
        rest.len() == TEMP_RANDOM_CHARS && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

/// Removes the [`temp_beside`] files directly in `dir` (a process killed
/// during an atomic write leaves them; they are never complete files) and
/// returns their paths. Nothing else is touched, and a missing `dir` has
/// none. A stage calls it on its output directories before it writes.
pub fn remove_temp_files(dir: &Path) -> Result<Vec<PathBuf>, ArtifactError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(dir)(e)),
    };
    let mut removed = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err(dir))?;
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if is_file && is_temp_name(&entry.file_name().to_string_lossy()) {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(io_err(&path))?;
            removed.push(path);
        }
    }
    removed.sort();
    Ok(removed)
}

/// [`remove_temp_files`] on the directory of each of `outputs` (each
/// directory once), logging what it removes.
pub fn remove_temp_files_beside<'a>(
    outputs: impl IntoIterator<Item = &'a Path>,
) -> Result<(), ArtifactError> {
    let mut dirs: Vec<&Path> = outputs
        .into_iter()
        .map(|p| match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    for dir in dirs {
        for path in remove_temp_files(dir)? {
            log::info!("removed {}, left by an interrupted write", path.display());
        }
    }
    Ok(())
}

/// Makes a finished temporary file readable, fsyncs it and renames it to
/// `path`, then fsyncs the directory.
pub fn persist(tmp: tempfile::NamedTempFile, path: &Path) -> Result<(), ArtifactError> {
    // tempfile creates 0600 files; outputs are ordinary readable files.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(io_err(path))?;
    }
    tmp.as_file().sync_all().map_err(io_err(path))?;
    tmp.persist(path).map_err(|e| ArtifactError::Io {
        path: path.to_owned(),
        source: e.error,
    })?;
    // Make the rename itself durable; not every filesystem allows this.
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Writes a value as pretty JSON (with a final newline), atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), ArtifactError> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|source| ArtifactError::Json {
        path: path.to_owned(),
        source,
    })?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// Reads a JSON file into a value.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, ArtifactError> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    serde_json::from_slice(&bytes).map_err(|source| ArtifactError::Json {
        path: path.to_owned(),
        source,
    })
}

/// SHA-256 of a byte string, in hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    crate::hex(&Sha256::digest(bytes))
}

/// SHA-256 of a file's contents, in hex, read a block at a time (a raw
/// file is never held whole in memory just to be hashed).
pub fn file_sha256(path: &Path) -> Result<String, ArtifactError> {
    let mut file = std::fs::File::open(path).map_err(io_err(path))?;
    let mut hasher = Sha256::new();
    let mut block = vec![0u8; 1 << 20];
    loop {
        match std::io::Read::read(&mut file, &mut block) {
            Ok(0) => break,
            Ok(n) => hasher.update(&block[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err(path)(e)),
        }
    }
    Ok(crate::hex(&hasher.finalize()))
}

/// The master table's customer, split and target columns, named in
/// [`crate::schema`].
pub use crate::schema::{CUSTOMER as CUSTOMER_COLUMN, SPLIT as SPLIT_COLUMN, TARGET as TARGET_COLUMN};

mod feature_list;
pub use feature_list::{FEATURE_LIST_VERSION, FeatureList, run_output};

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard()
}

/// Wraps a payload in the envelope.
fn seal(kind: Kind, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(kind.magic());
    out.extend_from_slice(&kind.version().to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&Sha256::digest(payload));
    out.extend_from_slice(payload);
    out
}

/// Checks the envelope and returns the payload.
fn open<'a>(path: &Path, kind: Kind, bytes: &'a [u8]) -> Result<&'a [u8], ArtifactError> {
    let header = check_header(path, kind, bytes, bytes.len().saturating_sub(HEADER_LEN) as u64)?;
    let payload = &bytes[HEADER_LEN..];
    if Sha256::digest(payload).as_slice() != header.checksum {
        return Err(ArtifactError::Checksum {
            path: path.to_owned(),
        });
    }
    Ok(payload)
}

/// What an envelope's header says about its payload.
struct Header {
    len: u64,
    checksum: [u8; 32],
}

/// Checks an envelope's magic, version and payload length (`payload_len`,
/// what the file holds after the header) from its first [`HEADER_LEN`]
/// bytes (or fewer, for a file too short to hold them).
fn check_header(path: &Path, kind: Kind, bytes: &[u8], payload_len: u64) -> Result<Header, ArtifactError> {
    if bytes.len() < HEADER_LEN || &bytes[..8] != kind.magic() {
        return Err(ArtifactError::Magic {
            path: path.to_owned(),
            expected: kind,
        });
    }
    let word = |range: std::ops::Range<usize>| -> [u8; 8] {
        let mut w = [0u8; 8];
        w[..range.len()].copy_from_slice(&bytes[range]);
        w
    };
    let version = u32::from_le_bytes(word(8..12)[..4].try_into().unwrap_or([0; 4]));
    if version != kind.version() {
        return Err(ArtifactError::Version {
            path: path.to_owned(),
            kind,
            expected: kind.version(),
            got: version,
        });
    }
    let len = u64::from_le_bytes(word(12..20));
    if payload_len != len {
        return Err(ArtifactError::Truncated {
            path: path.to_owned(),
            expected: len,
            got: payload_len,
        });
    }
    let mut checksum = [0u8; 32];
    checksum.copy_from_slice(&bytes[20..HEADER_LEN]);
    Ok(Header { len, checksum })
}

/// Reads and decodes an enveloped file without holding its bytes: the
/// payload is hashed block by block and checked first, then decoded from
/// the same open file (a rename over the path meanwhile does not change
/// what is read). Peak memory is the decoded value, not the value plus the
/// file: a 300,000-customer snapshot is 23 MB on disk.
fn read_streaming<T: DeserializeOwned>(path: &Path, kind: Kind) -> Result<T, ArtifactError> {
    use std::io::{BufReader, Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path).map_err(io_err(path))?;
    let size = file.metadata().map_err(io_err(path))?.len();
    let mut head = Vec::with_capacity(HEADER_LEN);
    (&mut file)
        .take(HEADER_LEN as u64)
        .read_to_end(&mut head)
        .map_err(io_err(path))?;
    let header = check_header(path, kind, &head, size.saturating_sub(HEADER_LEN as u64))?;
    let mut hasher = Sha256::new();
    let mut block = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut block).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&block[..n]);
    }
    drop(block);
    if hasher.finalize().as_slice() != header.checksum {
        return Err(ArtifactError::Checksum {
            path: path.to_owned(),
        });
    }
    file.seek(SeekFrom::Start(HEADER_LEN as u64))
        .map_err(io_err(path))?;
    let mut payload = BufReader::with_capacity(1 << 16, file.take(header.len));
    let value = bincode::serde::decode_from_std_read(&mut payload, bincode_config()).map_err(|e| {
        ArtifactError::Decode {
            path: path.to_owned(),
            kind,
            message: e.to_string(),
        }
    })?;
    let mut rest = Vec::new();
    payload.read_to_end(&mut rest).map_err(io_err(path))?;
    if !rest.is_empty() {
        return Err(ArtifactError::Decode {
            path: path.to_owned(),
            kind,
            message: format!("{} trailing bytes", rest.len()),
        });
    }
    Ok(value)
}

fn encode<T: Serialize>(kind: Kind, value: &T) -> Result<Vec<u8>, ArtifactError> {
    let payload =
        bincode::serde::encode_to_vec(value, bincode_config()).map_err(|e| ArtifactError::Encode {
            kind,
            message: e.to_string(),
        })?;
    Ok(seal(kind, &payload))
}

fn decode<T: DeserializeOwned>(path: &Path, kind: Kind, bytes: &[u8]) -> Result<T, ArtifactError> {
    let payload = open(path, kind, bytes)?;
    let (value, used) =
        bincode::serde::decode_from_slice(payload, bincode_config()).map_err(|e| ArtifactError::Decode {
            path: path.to_owned(),
            kind,
            message: e.to_string(),
        })?;
    if used != payload.len() {
        return Err(ArtifactError::Decode {
            path: path.to_owned(),
            kind,
            message: format!("{} trailing bytes", payload.len() - used),
        });
    }
    Ok(value)
}

/// Encodes a model into its file bytes (envelope included).
pub fn encode_model(model: &ModelArtifact) -> Result<Vec<u8>, ArtifactError> {
    encode(Kind::Model, model)
}

/// Decodes model file bytes, checking magic, version and checksum; `path`
/// names the source in errors.
pub fn decode_model(path: &Path, bytes: &[u8]) -> Result<ModelArtifact, ArtifactError> {
    let model: ModelArtifact = decode(path, Kind::Model, bytes)?;
    let got = sha256_hex(model.train_params.as_bytes());
    if got != model.params_hash {
        return Err(ArtifactError::ParamsHash {
            path: path.to_owned(),
            recorded: model.params_hash,
            got,
        });
    }
    Ok(model)
}

pub fn write_model(path: &Path, model: &ModelArtifact) -> Result<(), ArtifactError> {
    write_atomic(path, &encode_model(model)?)
}

pub fn read_model(path: &Path) -> Result<ModelArtifact, ArtifactError> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    decode_model(path, &bytes)
}

pub fn write_snapshot(path: &Path, snapshot: &OnlineSnapshot) -> Result<(), ArtifactError> {
    write_atomic(path, &encode(Kind::Snapshot, snapshot)?)
}

pub fn read_snapshot(path: &Path) -> Result<OnlineSnapshot, ArtifactError> {
    read_streaming(path, Kind::Snapshot)
}

mod bandit_state;
pub use bandit_state::{read_bandit_state, write_bandit_state};

pub mod prediction_log;
mod retrain_request;
pub use retrain_request::{
    RETRAIN_REQUEST_VERSION, RetrainRequest, RetrainRequestFile, read_retrain_request, write_retrain_request,
};

#[cfg(test)]
mod old_versions;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::{Feature, History};
    use crate::target::TargetRule;
    use std::collections::BTreeMap;

    #[test]
    fn a_file_hashed_block_by_block_equals_its_bytes_hashed_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("raw.csv");
        // More than two 1 MiB blocks, not a multiple of the block size.
        let bytes: Vec<u8> = (0..2_500_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).expect("write");
        assert_eq!(file_sha256(&path).expect("hash"), sha256_hex(&bytes));
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let missing = file_sha256(&dir.path().join("missing.csv")).expect_err("missing file");
        assert!(missing.to_string().contains("missing.csv"), "{missing}");
    }

    fn snapshot() -> OnlineSnapshot {
        let mut customers = BTreeMap::new();
        customers.insert(
            [0xab; 16],
            History {
                purchases_before: 3,
                last_day: Some(737_000),
                last_utilisation: Some(0.5),
                recent: Default::default(),
            },
        );
        OnlineSnapshot {
            as_of: chrono::NaiveDate::from_ymd_opt(2020, 6, 30),
            rule: TargetRule {
                threshold_pct: 20.0,
                vital_groups: vec!["SERVICO".into()],
            },
            customers,
            key_fingerprint: "f".repeat(32),
            ranges: crate::contract::ValueRanges::default(),
        }
    }

    /// Issue 15: the snapshot is read from its file without holding the
    /// file's bytes, and what it reads is still verified: a flipped byte,
    /// a cut file, another kind of file and trailing bytes are refused,
    /// naming the file.
    #[test]
    fn a_snapshot_read_block_by_block_is_verified_like_one_read_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("snapshot.bin");
        let good = encode(Kind::Snapshot, &snapshot()).expect("encode");
        let read = |bytes: &[u8]| {
            std::fs::write(&path, bytes).expect("write");
            read_snapshot(&path)
        };
        assert_eq!(read(&good).expect("good"), snapshot());

        let mut flipped = good.clone();
        flipped[HEADER_LEN + 3] ^= 0x40;
        assert!(matches!(read(&flipped), Err(ArtifactError::Checksum { .. })));
        let err = read(&good[..good.len() - 2]).expect_err("cut");
        assert!(matches!(err, ArtifactError::Truncated { .. }), "{err}");
        assert!(err.to_string().contains("snapshot.bin"), "{err}");
        assert!(matches!(read(&good[..20]), Err(ArtifactError::Magic { .. })));
        let model = encode_model(&sample_models().remove(0)).expect("model");
        assert!(matches!(read(&model), Err(ArtifactError::Magic { .. })));

        let mut payload = good[HEADER_LEN..].to_vec();
        payload.push(0);
        let err = read(&seal(Kind::Snapshot, &payload)).expect_err("trailing");
        assert!(err.to_string().contains("1 trailing bytes"), "{err}");
    }

    #[test]
    fn snapshot_round_trips_through_a_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nested/snapshot.bin");
        write_snapshot(&path, &snapshot()).expect("write");
        assert_eq!(read_snapshot(&path).expect("read"), snapshot());
        // Only the final file is left behind.
        let names: Vec<_> = std::fs::read_dir(path.parent().expect("parent"))
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("snapshot.bin")]);
    }

    #[test]
    fn envelope_rejects_wrong_magic_version_length_and_checksum() {
        let p = Path::new("x.bin");
        let good = encode(Kind::Snapshot, &snapshot()).expect("encode");
        assert!(decode::<OnlineSnapshot>(p, Kind::Snapshot, &good).is_ok());

        let err = decode::<OnlineSnapshot>(p, Kind::Model, &good).expect_err("magic");
        assert!(matches!(err, ArtifactError::Magic { .. }), "{err}");

        let mut other = good.clone();
        other[8..12].copy_from_slice(&(SNAPSHOT_FORMAT_VERSION + 1).to_le_bytes());
        let err = decode::<OnlineSnapshot>(p, Kind::Snapshot, &other).expect_err("version");
        assert!(
            matches!(
                err,
                ArtifactError::Version { expected, got, .. }
                    if expected == SNAPSHOT_FORMAT_VERSION && got == SNAPSHOT_FORMAT_VERSION + 1
            ),
            "{err}"
        );
        assert!(err.to_string().contains("x.bin"));

        let short = &good[..good.len() - 1];
        let err = decode::<OnlineSnapshot>(p, Kind::Snapshot, short).expect_err("short");
        assert!(matches!(err, ArtifactError::Truncated { .. }), "{err}");

        let mut flipped = good.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x01;
        let err = decode::<OnlineSnapshot>(p, Kind::Snapshot, &flipped).expect_err("checksum");
        assert!(matches!(err, ArtifactError::Checksum { .. }), "{err}");
    }

    /// One artifact per classifier and calibrator kind, every field set.
    fn sample_models() -> Vec<ModelArtifact> {
        use crate::calibration::Calibrator;
        use crate::metrics::{BinaryMetrics, Confusion, ReliabilityBin};
        use crate::model::test_nodes::{cart_leaf, cart_split, gbm_leaf, gbm_split};
        use crate::model::{
            BaggedTree, CartTree, Classifier, Gbm, GbmTree, Logistic, NaiveBayes, Reliability,
        };
        let cart = CartTree {
            nodes: vec![cart_split(1, 2.5, 1, 2), cart_leaf(0.0), cart_leaf(1.0)],
        };
        let gbm = Gbm {
            base_score: -1.5,
            trees: vec![GbmTree {
                nodes: vec![
                    crate::model::GbmNode {
                        gain: 12.5,
                        ..gbm_split(0, 3.0, 7, 1, 2)
                    },
                    gbm_leaf(-0.25),
                    gbm_leaf(0.5),
                ],
            }],
            bin_edges: vec![vec![1.0, 3.0, 9.0], vec![0.5]],
        };
        let classifiers = vec![
            Classifier::Prior { probability: 0.12 },
            Classifier::Logistic(Logistic {
                mean: vec![1.0, 2.0],
                scale: vec![0.5, 4.0],
                coefficients: vec![0.3, -0.7],
                intercept: -2.0,
            }),
            Classifier::NaiveBayes(NaiveBayes {
                priors: [0.9, 0.1],
                means: [vec![1.0, 2.0], vec![3.0, 4.0]],
                variances: [vec![1.0, 1.5], vec![2.0, 2.5]],
            }),
            Classifier::Tree { tree: cart.clone() },
            Classifier::Forest {
                trees: vec![BaggedTree {
                    columns: vec![1, 0],
                    tree: cart,
                }],
            },
            Classifier::Gbm(gbm),
        ];
        let calibrators = [
            Calibrator::Identity,
            Calibrator::Platt { a: 1.1, b: -0.2 },
            Calibrator::Isotonic {
                x: vec![0.1, 0.5, 0.9],
                y: vec![0.0, 0.4, 1.0],
            },
        ];
        let bin = ReliabilityBin {
            lower: 0.0,
            upper: 0.1,
            count: 10,
            mean_predicted: 0.05,
            observed_rate: 0.1,
        };
        let train_params = r#"{"seed":11}"#.to_owned();
        classifiers
            .into_iter()
            .enumerate()
            .map(|(i, classifier)| ModelArtifact {
                model_version: format!("m-{i}"),
                algorithm: "gbm".into(),
                hyperparameters: r#"{"l2":1.0}"#.into(),
                features: vec![Feature::Valor, Feature::PrevUtilisation],
                rule: TargetRule {
                    threshold_pct: 20.0,
                    vital_groups: vec!["SERVICO".into()],
                },
                classifier,
                calibrator: calibrators[i % calibrators.len()].clone(),
                threshold: 0.4,
                threshold_source: "max_f1".into(),
                training_prior: 0.12,
                params_hash: sha256_hex(train_params.as_bytes()),
                train_params: train_params.clone(),
                data_hash: "d".repeat(64),
                test_metrics: BinaryMetrics {
                    roc_auc: 0.9,
                    pr_auc: 0.8,
                    brier: 0.05,
                    log_loss: 0.2,
                    ece: 0.01,
                    threshold: 0.4,
                    precision: 0.7,
                    recall: 0.6,
                    f1: 0.65,
                    confusion: Confusion {
                        tp: 6,
                        fp: 3,
                        tn: 80,
                        fn_: 4,
                    },
                },
                reliability: Reliability {
                    before: vec![bin.clone()],
                    after: vec![bin.clone()],
                    ece_before: 0.03,
                    ece_after: 0.01,
                },
                written_by: "format test".into(),
                key_fingerprint: "f".repeat(32),
            })
            .collect()
    }

    /// Issue 11: the bytes of every kind of model file (and of the snapshot)
    /// are pinned, so a change to any payload type cannot slip through
    /// without a version bump. When this fails on purpose: bump
    /// MODEL_FORMAT_VERSION (or SNAPSHOT_FORMAT_VERSION), keep a file of the
    /// old version in tests/fixtures/ with a test of how it is read, then
    /// update the hash here.
    #[test]
    fn the_file_formats_are_pinned() {
        let mut bytes = Vec::new();
        for model in sample_models() {
            let encoded = encode_model(&model).expect("encode");
            let back = decode_model(Path::new("m.bin"), &encoded).expect("decode");
            assert_eq!(encode_model(&back).expect("re-encode"), encoded, "round trip");
            bytes.extend(encoded);
        }
        bytes.extend(encode(Kind::Snapshot, &snapshot()).expect("snapshot"));
        assert_eq!(
            (
                MODEL_FORMAT_VERSION,
                SNAPSHOT_FORMAT_VERSION,
                sha256_hex(&bytes).as_str()
            ),
            (
                5,
                5,
                "a7588ff5199c1be075197df817a5252b3c6353407ee186abbc235df1adf8e17d"
            ),
            "a payload type changed shape: bump its format version (see the comment above)"
        );
    }

    /// Issue 11: the stored training params are checked against their hash.
    #[test]
    fn a_model_whose_params_do_not_match_their_hash_is_refused() {
        let mut model = sample_models().remove(0);
        model.train_params = r#"{"seed":12}"#.into();
        let encoded = encode_model(&model).expect("encode");
        let err = decode_model(Path::new("models/model.bin"), &encoded).expect_err("tampered params");
        assert!(matches!(err, ArtifactError::ParamsHash { .. }), "{err}");
        assert!(err.to_string().contains("models/model.bin"), "{err}");
    }

    /// The feature schema is stored by name: an unknown name is an error
    /// naming it, not a silent other feature.
    #[test]
    fn a_model_naming_an_unknown_feature_is_refused_naming_it() {
        let model = sample_models().remove(0);
        let encoded = encode_model(&model).expect("encode");
        let name = Feature::PrevUtilisation.name().as_bytes();
        let at = encoded
            .windows(name.len())
            .position(|w| w == name)
            .expect("feature name in the payload");
        let mut payload = encoded[HEADER_LEN..].to_vec();
        payload[at - HEADER_LEN] = b'q';
        let err =
            decode_model(Path::new("m.bin"), &seal(Kind::Model, &payload)).expect_err("unknown feature");
        assert!(err.to_string().contains("qrev_utilisation"), "{err}");
    }

    /// Issue 12: what a killed atomic write leaves is recognised by name and
    /// removed; nothing else in the directory is.
    #[test]
    fn temporary_files_of_an_interrupted_write_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().expect("tempdir");
        let leftover = temp_beside(&dir.path().join("model.bin")).expect("temp");
        let (_, leftover) = leftover.keep().expect("keep");
        for name in ["model.bin", ".tmp-notes.txt", ".tmpAbC123", ".tmp-abc"] {
            std::fs::write(dir.path().join(name), b"x").expect("write");
        }
        assert!(is_temp_name(
            &leftover.file_name().expect("name").to_string_lossy()
        ));
        assert_eq!(
            remove_temp_files(dir.path()).expect("sweep"),
            vec![leftover.clone()]
        );
        assert!(!leftover.exists());
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, [".tmp-abc", ".tmp-notes.txt", ".tmpAbC123", "model.bin"]);
        assert!(
            remove_temp_files(&dir.path().join("missing"))
                .expect("none")
                .is_empty()
        );
    }

    /// Issue 12: a feature list of the previous release (version 1, no run
    /// record) is refused with the version error and what to do; a file
    /// the record does not list under its hash is refused as another run's.
    #[test]
    fn an_old_feature_list_and_a_file_of_another_run_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("features.json");
        let v1 = r#"{"features":["valor"],"rule":{"threshold_pct":20.0,"vital_groups":["SERVICO"]}}"#;
        std::fs::write(&path, v1).expect("write");
        let err = FeatureList::read(&path).expect_err("version 1");
        assert!(
            matches!(
                err,
                ArtifactError::FeatureListVersion {
                    got: 1,
                    expected: 2,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("rerun build-features"), "{err}");

        let mut list: FeatureList = serde_json::from_str(v1).expect("parse");
        list.version = FEATURE_LIST_VERSION;
        list.run_outputs.insert(run_output::split("train"), "aa".into());
        write_json(&path, &list).expect("write");
        let list = FeatureList::read(&path).expect("version 2");
        let split = Path::new("data/splits/train.parquet");
        list.verify_output(&path, &run_output::split("train"), split, "aa")
            .expect("recorded");
        let err = list
            .verify_output(&path, &run_output::split("train"), split, "bb")
            .expect_err("another run's");
        let msg = err.to_string();
        assert!(msg.contains("two runs") && msg.contains("train.parquet"), "{msg}");
        assert!(
            list.verify_output(&path, &run_output::split("test"), split, "aa")
                .is_err(),
            "an output the record does not list"
        );
    }
}
