//! Every on-disk format the pipeline exchanges, and the only code that
//! touches them:
//!
//! - parquet tables with a schema version in their key-value metadata,
//!   checked column by column on read;
//! - pretty JSON reports;
//! - enveloped binary artifacts (the model and the online snapshot):
//!   `magic (8) | format version u32 LE | payload length u64 LE |
//!   SHA-256 of payload (32) | payload (bincode 2, serde)`.
//!
//! All writes go to a temporary file in the destination directory, are
//! fsynced and renamed into place, so a crash never leaves half a file.

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::features::{Feature, OnlineSnapshot};
use crate::model::{FeatureMatrix, ModelArtifact};
use crate::target::TargetRule;

/// Version of the binary envelope layout and of the payload types inside.
/// Bump it when `ModelArtifact` or `OnlineSnapshot` change shape, and keep a
/// fixture of the old version in the tests.
///
/// 2: the model gained calibrator, reliability, chosen spec and the new
/// classifiers (issue 4).
pub const FORMAT_VERSION: u32 = 2;

/// Version of the parquet table schemas, stored under [`SCHEMA_VERSION_KEY`].
pub const TABLE_SCHEMA_VERSION: &str = "1";
pub const SCHEMA_VERSION_KEY: &str = "revspend.schema_version";

const HEADER_LEN: usize = 8 + 4 + 8 + 32;

/// The kinds of enveloped artifact, each with its own magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Model,
    Snapshot,
}

impl Kind {
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
    #[error("{path}: {kind} format version {got}, this build reads version {expected}")]
    Version {
        path: PathBuf,
        kind: Kind,
        expected: u32,
        got: u32,
    },
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
    #[error("cannot encode {kind}: {message}")]
    Encode { kind: Kind, message: String },
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
    #[error("{path}: column `{column}` is missing")]
    MissingColumn { path: PathBuf, column: String },
    #[error("{path}: column `{column}` has type {got}, expected {expected}")]
    ColumnType {
        path: PathBuf,
        column: String,
        expected: String,
        got: String,
    },
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
fn temp_beside(path: &Path) -> Result<tempfile::NamedTempFile, ArtifactError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(io_err(dir))
}

/// Makes a finished temporary file readable, fsyncs it and renames it to
/// `path`, then fsyncs the directory.
fn persist(tmp: tempfile::NamedTempFile, path: &Path) -> Result<(), ArtifactError> {
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

/// The parquet writer every table is written with: LZ4, the schema
/// version in the key-value metadata.
fn parquet_writer<W: Write>(w: W) -> ParquetWriter<W> {
    ParquetWriter::new(w)
        .with_compression(ParquetCompression::Lz4Raw)
        .with_key_value_metadata(Some(KeyValueMetadata::from_static(vec![(
            SCHEMA_VERSION_KEY.to_owned(),
            TABLE_SCHEMA_VERSION.to_owned(),
        )])))
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

/// Writes a table as LZ4 parquet with the schema version in its metadata;
/// returns the SHA-256 of the bytes written (the writer is deterministic, so
/// equal tables give equal hashes).
///
/// LZ4 rather than zstd: on the 1M-row benchmark zstd made the files a third
/// smaller but cost about 1.5 s more CPU per million rows across the layers,
/// master table and splits (see `scripts/bench-build-features.sh`).
pub fn write_table(path: &Path, df: &mut DataFrame) -> Result<String, ArtifactError> {
    let tmp = temp_beside(path)?;
    let sink = Sink::new(tmp.reopen().map_err(io_err(path))?, true);
    parquet_writer(sink.clone())
        .finish(df)
        .map_err(|source| ArtifactError::Parquet {
            path: path.to_owned(),
            source,
        })?;
    let sha256 = sink.finish().map_err(io_err(path))?.unwrap_or_default();
    persist(tmp, path)?;
    Ok(sha256)
}

/// Where a table's bytes go: a buffered file, hashed on the way when the
/// caller needs the hash. polars' parquet writer issues a write per page
/// header and per page (over a hundred thousand syscalls for the 1M-row
/// benchmark unbuffered). Shared, so that after the writer is done with its
/// handle the buffer is flushed here, where a failure is seen, not on drop.
#[derive(Clone)]
struct Sink(std::sync::Arc<std::sync::Mutex<(std::io::BufWriter<std::fs::File>, Option<Sha256>)>>);

impl Sink {
    fn new(file: std::fs::File, hashed: bool) -> Sink {
        Sink(std::sync::Arc::new(std::sync::Mutex::new((
            std::io::BufWriter::with_capacity(1 << 20, file),
            hashed.then(Sha256::new),
        ))))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (std::io::BufWriter<std::fs::File>, Option<Sha256>)> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Flushes the buffer; returns the SHA-256 of everything written, when
    /// hashed.
    fn finish(self) -> std::io::Result<Option<String>> {
        let mut inner = self.lock();
        inner.0.flush()?;
        Ok(inner.1.clone().map(|h| crate::hex(&h.finalize())))
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut inner = self.lock();
        let n = inner.0.write(buf)?;
        if let Some(h) = &mut inner.1 {
            h.update(&buf[..n]);
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.lock().0.flush()
    }
}

/// Writes one table in parts (one row group per part) without holding it
/// whole in memory: the same format as [`write_table`], into a temporary
/// file in the destination directory that [`TableWriter::finish`] fsyncs
/// and renames into place.
pub struct TableWriter {
    path: PathBuf,
    tmp: tempfile::NamedTempFile,
    sink: Sink,
    writer: polars::io::parquet::write::BatchedWriter<Sink>,
}

impl std::fmt::Debug for TableWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableWriter")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl TableWriter {
    /// Starts a table with `schema` at `path`.
    pub fn create(path: &Path, schema: &Schema) -> Result<TableWriter, ArtifactError> {
        let tmp = temp_beside(path)?;
        // Not hashed: nothing records a split file's hash (train hashes
        // the file it reads).
        let sink = Sink::new(tmp.reopen().map_err(io_err(path))?, false);
        let writer =
            parquet_writer(sink.clone())
                .batched(schema)
                .map_err(|source| ArtifactError::Parquet {
                    path: path.to_owned(),
                    source,
                })?;
        Ok(TableWriter {
            path: path.to_owned(),
            tmp,
            sink,
            writer,
        })
    }

    /// Appends the rows of `df` (same schema).
    pub fn write(&mut self, df: &mut DataFrame) -> Result<(), ArtifactError> {
        df.align_chunks_par();
        self.writer
            .write_batch(df)
            .map_err(|source| ArtifactError::Parquet {
                path: self.path.clone(),
                source,
            })
    }

    /// Writes the footer and moves the file into place.
    pub fn finish(self) -> Result<(), ArtifactError> {
        self.writer.finish().map_err(|source| ArtifactError::Parquet {
            path: self.path.clone(),
            source,
        })?;
        drop(self.writer);
        self.sink.finish().map_err(io_err(&self.path))?;
        persist(self.tmp, &self.path)
    }
}

/// Reads a table written by [`write_table`], checking its schema version and
/// that each `(column, dtype)` in `expected` is present with that type.
pub fn read_table(path: &Path, expected: &[(&str, DataType)]) -> Result<DataFrame, ArtifactError> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    let pq = |source| ArtifactError::Parquet {
        path: path.to_owned(),
        source,
    };
    let mut reader = ParquetReader::new(Cursor::new(bytes));
    let version = reader
        .get_metadata()
        .map_err(pq)?
        .key_value_metadata()
        .as_ref()
        .and_then(|kv| kv.iter().find(|k| k.key == SCHEMA_VERSION_KEY))
        .and_then(|k| k.value.clone());
    if version.as_deref() != Some(TABLE_SCHEMA_VERSION) {
        return Err(ArtifactError::SchemaVersion {
            path: path.to_owned(),
            expected: TABLE_SCHEMA_VERSION,
            got: version,
        });
    }
    let df = reader.finish().map_err(pq)?;
    check_columns(path, &df, expected)?;
    Ok(df)
}

/// Checks that each `(column, dtype)` is present with that type.
pub fn check_columns(
    path: &Path,
    df: &DataFrame,
    expected: &[(&str, DataType)],
) -> Result<(), ArtifactError> {
    for (name, dtype) in expected {
        let col = df.column(name).map_err(|_| ArtifactError::MissingColumn {
            path: path.to_owned(),
            column: (*name).to_owned(),
        })?;
        if col.dtype() != dtype {
            return Err(ArtifactError::ColumnType {
                path: path.to_owned(),
                column: (*name).to_owned(),
                expected: dtype.to_string(),
                got: col.dtype().to_string(),
            });
        }
    }
    Ok(())
}

/// Master-table columns: the customer pseudonym (the group id), the split
/// name and the target, named in [`crate::schema`].
pub use crate::schema::{CUSTOMER as CUSTOMER_COLUMN, SPLIT as SPLIT_COLUMN, TARGET as TARGET_COLUMN};

/// The ordered feature list `build-features` chose and `train` reads, with
/// the rule the table was labelled with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureList {
    pub features: Vec<String>,
    pub rule: TargetRule,
}

impl FeatureList {
    /// The features, failing on a name this build does not know.
    pub fn resolve(&self, path: &Path) -> Result<Vec<Feature>, ArtifactError> {
        self.features
            .iter()
            .map(|n| {
                Feature::from_name(n).ok_or_else(|| ArtifactError::MissingColumn {
                    path: path.to_owned(),
                    column: n.clone(),
                })
            })
            .collect()
    }
}

/// A split read for modelling: features in the requested order, labels and
/// the customer of each row.
#[derive(Debug, Clone)]
pub struct LabelledRows {
    pub x: FeatureMatrix,
    pub y: Vec<bool>,
    pub customers: Vec<String>,
}

/// Reads a split table, checking every requested feature column (Float64),
/// the customer and the target columns.
pub fn read_labelled(path: &Path, features: &[Feature]) -> Result<LabelledRows, ArtifactError> {
    let mut expected: Vec<(&str, DataType)> = vec![
        (CUSTOMER_COLUMN, DataType::String),
        (TARGET_COLUMN, DataType::Boolean),
    ];
    expected.extend(features.iter().map(|f| (f.name(), DataType::Float64)));
    let df = read_table(path, &expected)?;
    let pq = |source| ArtifactError::Parquet {
        path: path.to_owned(),
        source,
    };
    let rows = df.height();
    let mut cols = Vec::with_capacity(features.len());
    for f in features {
        let c = df.column(f.name()).map_err(pq)?.f64().map_err(pq)?;
        if c.null_count() > 0 {
            return Err(ArtifactError::ColumnType {
                path: path.to_owned(),
                column: f.name().to_owned(),
                expected: "f64 without nulls".into(),
                got: format!("{} nulls", c.null_count()),
            });
        }
        cols.push(c.into_no_null_iter().collect::<Vec<f64>>());
    }
    let mut values = Vec::with_capacity(rows * features.len());
    for r in 0..rows {
        values.extend(cols.iter().map(|c| c[r]));
    }
    let y = df
        .column(TARGET_COLUMN)
        .map_err(pq)?
        .bool()
        .map_err(pq)?
        .iter()
        .map(|v| v.unwrap_or(false))
        .collect();
    let customers = df
        .column(CUSTOMER_COLUMN)
        .map_err(pq)?
        .str()
        .map_err(pq)?
        .iter()
        .map(|v| v.unwrap_or_default().to_owned())
        .collect();
    Ok(LabelledRows {
        x: FeatureMatrix::new(rows, features.len(), values),
        y,
        customers,
    })
}

/// A raw row that could not be parsed, kept aside with where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuarantinedRow {
    pub file: String,
    pub line: u64,
    /// The offending field (`row` for a wrong field count).
    pub field: String,
    pub reason: String,
    /// The row as decoded from cp1252, fields joined by `;`.
    pub raw: String,
}

/// Writes quarantined rows as a UTF-8 CSV (`file,line,field,reason,raw`).
pub fn write_quarantine(path: &Path, rows: &[QuarantinedRow]) -> Result<(), ArtifactError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let csv_err = |e: csv::Error| ArtifactError::Io {
        path: path.to_owned(),
        source: std::io::Error::other(e),
    };
    if rows.is_empty() {
        w.write_record(["file", "line", "field", "reason", "raw"])
            .map_err(csv_err)?;
    }
    for r in rows {
        w.serialize(r).map_err(csv_err)?;
    }
    let bytes = w.into_inner().map_err(|e| ArtifactError::Io {
        path: path.to_owned(),
        source: std::io::Error::other(e.to_string()),
    })?;
    write_atomic(path, &bytes)
}

/// Reads a quarantine file back.
pub fn read_quarantine(path: &Path) -> Result<Vec<QuarantinedRow>, ArtifactError> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    csv::Reader::from_reader(bytes.as_slice())
        .deserialize()
        .collect::<Result<_, _>>()
        .map_err(|e| ArtifactError::Io {
            path: path.to_owned(),
            source: std::io::Error::other(e),
        })
}

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard()
}

/// Wraps a payload in the envelope.
fn seal(kind: Kind, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(kind.magic());
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&Sha256::digest(payload));
    out.extend_from_slice(payload);
    out
}

/// Checks the envelope and returns the payload.
fn open<'a>(path: &Path, kind: Kind, bytes: &'a [u8]) -> Result<&'a [u8], ArtifactError> {
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
    if version != FORMAT_VERSION {
        return Err(ArtifactError::Version {
            path: path.to_owned(),
            kind,
            expected: FORMAT_VERSION,
            got: version,
        });
    }
    let len = u64::from_le_bytes(word(12..20));
    let payload = &bytes[HEADER_LEN..];
    if payload.len() as u64 != len {
        return Err(ArtifactError::Truncated {
            path: path.to_owned(),
            expected: len,
            got: payload.len() as u64,
        });
    }
    if Sha256::digest(payload).as_slice() != &bytes[20..52] {
        return Err(ArtifactError::Checksum {
            path: path.to_owned(),
        });
    }
    Ok(payload)
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
    decode(path, Kind::Model, bytes)
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
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    decode(path, Kind::Snapshot, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::History;
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
            "ab".to_owned(),
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
        }
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
        other[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
        let err = decode::<OnlineSnapshot>(p, Kind::Snapshot, &other).expect_err("version");
        assert!(
            matches!(
                err,
                ArtifactError::Version { expected, got, .. }
                    if expected == FORMAT_VERSION && got == FORMAT_VERSION + 1
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

    #[test]
    fn tables_carry_and_check_their_schema() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.parquet");
        let mut df = DataFrame::new(
            2,
            vec![
                Column::new("a".into(), [1.0f64, 2.0]),
                Column::new("b".into(), ["x", "y"]),
            ],
        )
        .expect("frame");
        write_table(&path, &mut df).expect("write");
        let back = read_table(&path, &[("a", DataType::Float64), ("b", DataType::String)]).expect("read");
        assert_eq!(back, df);
        let err = read_table(&path, &[("a", DataType::String)]).expect_err("type");
        assert!(err.to_string().contains("column `a` has type"), "{err}");
        let err = read_table(&path, &[("c", DataType::Float64)]).expect_err("missing");
        assert!(err.to_string().contains("column `c` is missing"), "{err}");
    }

    /// A table written in parts reads back as the whole, byte-compatible
    /// with the one-shot writer's format (schema version included), and
    /// nothing is at the path until it is finished.
    #[test]
    fn tables_written_in_parts_read_back_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("parts.parquet");
        let part = |from: i64| {
            DataFrame::new(
                3,
                vec![
                    Column::new("a".into(), [from, from + 1, from + 2]),
                    Column::new("b".into(), ["x", "y", "z"]),
                ],
            )
            .expect("frame")
        };
        let mut writer = TableWriter::create(&path, part(0).schema()).expect("create");
        writer.write(&mut part(0)).expect("write");
        writer.write(&mut part(3)).expect("write");
        assert!(!path.exists());
        writer.finish().expect("finish");
        let back = read_table(&path, &[("a", DataType::Int64), ("b", DataType::String)]).expect("read");
        let mut whole = part(0);
        whole.vstack_mut(&part(3)).expect("stack");
        assert!(back.equals(&whole));
    }
}
