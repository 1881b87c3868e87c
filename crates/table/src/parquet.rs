//! Parquet tables: LZ4, the schema version in the key-value metadata,
//! written atomically and checked column by column on read.

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use polars::prelude::*;
use revspend_core::artifact::{persist, temp_beside};
use sha2::{Digest, Sha256};

use crate::error::{TableError, io_err};

/// Version of the parquet table schemas, stored under [`SCHEMA_VERSION_KEY`].
pub const TABLE_SCHEMA_VERSION: &str = "1";
pub const SCHEMA_VERSION_KEY: &str = "revspend.schema_version";

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

fn parquet_err(path: &Path) -> impl FnOnce(PolarsError) -> TableError + '_ {
    move |source| TableError::Parquet {
        path: path.to_owned(),
        source,
    }
}

/// Writes a table as LZ4 parquet with the schema version in its metadata;
/// returns the SHA-256 of the bytes written (the writer is deterministic, so
/// equal tables give equal hashes).
///
/// LZ4 rather than zstd: on the 1M-row benchmark zstd made the files a third
/// smaller but cost about 1.5 s more CPU per million rows across the layers,
/// master table and splits (see `scripts/bench-build-features.sh`).
pub fn write_table(path: &Path, df: &mut DataFrame) -> Result<String, TableError> {
    let tmp = temp_beside(path)?;
    let sink = Sink::new(tmp.reopen().map_err(io_err(path))?, true);
    parquet_writer(sink.clone())
        .finish(df)
        .map_err(parquet_err(path))?;
    let sha256 = sink.finish().map_err(io_err(path))?.unwrap_or_default();
    persist(tmp, path)?;
    Ok(sha256)
}

/// A buffered file and, when the caller needs it, the running hash of what
/// went into it.
type SinkState = (std::io::BufWriter<std::fs::File>, Option<Sha256>);

/// Where a table's bytes go: a buffered file, hashed on the way when the
/// caller needs the hash. polars' parquet writer issues a write per page
/// header and per page (over a hundred thousand syscalls for the 1M-row
/// benchmark unbuffered). Shared, so that after the writer is done with its
/// handle the buffer is flushed here, where a failure is seen, not on drop.
#[derive(Clone)]
struct Sink(Arc<Mutex<SinkState>>);

impl Sink {
    fn new(file: std::fs::File, hashed: bool) -> Sink {
        Sink(Arc::new(Mutex::new((
            std::io::BufWriter::with_capacity(1 << 20, file),
            hashed.then(Sha256::new),
        ))))
    }

    fn lock(&self) -> MutexGuard<'_, SinkState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Flushes the buffer; returns the SHA-256 of everything written, when
    /// hashed.
    fn finish(self) -> std::io::Result<Option<String>> {
        let mut inner = self.lock();
        inner.0.flush()?;
        Ok(inner.1.clone().map(|h| revspend_core::hex(&h.finalize())))
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
    pub fn create(path: &Path, schema: &Schema) -> Result<TableWriter, TableError> {
        let tmp = temp_beside(path)?;
        // Hashed on the way: the feature list records each split's hash,
        // which the readers check (a rerun's splits beside an older run's
        // other outputs are refused), and re-reading the file to hash it
        // would cost a second pass over the largest output.
        let sink = Sink::new(tmp.reopen().map_err(io_err(path))?, true);
        let writer = parquet_writer(sink.clone())
            .batched(schema)
            .map_err(parquet_err(path))?;
        Ok(TableWriter {
            path: path.to_owned(),
            tmp,
            sink,
            writer,
        })
    }

    /// Appends the rows of `df` (same schema).
    pub fn write(&mut self, df: &mut DataFrame) -> Result<(), TableError> {
        df.align_chunks_par();
        self.writer.write_batch(df).map_err(parquet_err(&self.path))
    }

    /// Writes the footer and moves the file into place; returns the
    /// SHA-256 of the file's bytes.
    pub fn finish(self) -> Result<String, TableError> {
        self.writer.finish().map_err(parquet_err(&self.path))?;
        drop(self.writer);
        let sha256 = self
            .sink
            .finish()
            .map_err(io_err(&self.path))?
            .unwrap_or_default();
        persist(self.tmp, &self.path)?;
        Ok(sha256)
    }
}

/// Reads a table written by [`write_table`], checking its schema version and
/// that each `(column, dtype)` in `expected` is present with that type.
pub fn read_table(path: &Path, expected: &[(&str, DataType)]) -> Result<DataFrame, TableError> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    parse_table(path, bytes, expected)
}

/// [`read_table`], also returning the SHA-256 of the bytes read: the file
/// is read once, hashed in memory and parsed from there.
pub fn read_table_hashed(
    path: &Path,
    expected: &[(&str, DataType)],
) -> Result<(DataFrame, String), TableError> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    let sha256 = revspend_core::artifact::sha256_hex(&bytes);
    Ok((parse_table(path, bytes, expected)?, sha256))
}

/// [`read_table`] of a file whose SHA-256 was recorded when it was
/// written: a file whose bytes do not hash to `sha256` is refused with
/// [`TableError::Checksum`] before it is parsed (a flipped byte inside a
/// page can still parse, into wrong values).
pub fn read_table_verified(
    path: &Path,
    expected: &[(&str, DataType)],
    sha256: &str,
) -> Result<DataFrame, TableError> {
    parse_table(path, read_verified(path, sha256)?, expected)
}

/// [`read_table_verified`] that decodes only the `expected` columns (a
/// reader of a few columns of a wide table holds only those in memory).
pub fn read_columns_verified(
    path: &Path,
    expected: &[(&str, DataType)],
    sha256: &str,
) -> Result<DataFrame, TableError> {
    let columns = expected.iter().map(|(name, _)| (*name).to_owned()).collect();
    parse_with(path, read_verified(path, sha256)?, expected, Some(columns))
}

/// The file's bytes, refused unless they hash to `sha256`.
fn read_verified(path: &Path, sha256: &str) -> Result<Vec<u8>, TableError> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    let got = revspend_core::artifact::sha256_hex(&bytes);
    if got != sha256 {
        return Err(TableError::Checksum {
            path: path.to_owned(),
            expected: sha256.to_owned(),
            got,
        });
    }
    Ok(bytes)
}

/// Parses a table read into memory, checking its schema version and columns.
fn parse_table(path: &Path, bytes: Vec<u8>, expected: &[(&str, DataType)]) -> Result<DataFrame, TableError> {
    parse_with(path, bytes, expected, None)
}

fn parse_with(
    path: &Path,
    bytes: Vec<u8>,
    expected: &[(&str, DataType)],
    columns: Option<Vec<String>>,
) -> Result<DataFrame, TableError> {
    let mut reader = ParquetReader::new(Cursor::new(bytes));
    let version = reader
        .get_metadata()
        .map_err(parquet_err(path))?
        .key_value_metadata()
        .as_ref()
        .and_then(|kv| kv.iter().find(|k| k.key == SCHEMA_VERSION_KEY))
        .and_then(|k| k.value.clone());
    if version.as_deref() != Some(TABLE_SCHEMA_VERSION) {
        return Err(TableError::SchemaVersion {
            path: path.to_owned(),
            expected: TABLE_SCHEMA_VERSION,
            got: version,
        });
    }
    // A missing column is named by check_columns below, not by the reader.
    let present: Option<Vec<String>> = columns.map(|wanted| {
        let schema = reader.schema().ok();
        wanted
            .into_iter()
            .filter(|c| schema.as_ref().is_none_or(|s| s.contains(c)))
            .collect()
    });
    let df = reader.with_columns(present).finish().map_err(parquet_err(path))?;
    check_columns(path, &df, expected)?;
    Ok(df)
}

/// Checks that each `(column, dtype)` is present with that type.
pub fn check_columns(path: &Path, df: &DataFrame, expected: &[(&str, DataType)]) -> Result<(), TableError> {
    for (name, dtype) in expected {
        let col = df.column(name).map_err(|_| TableError::MissingColumn {
            path: path.to_owned(),
            column: (*name).to_owned(),
        })?;
        if col.dtype() != dtype {
            return Err(TableError::ColumnType {
                path: path.to_owned(),
                column: (*name).to_owned(),
                expected: dtype.to_string(),
                got: col.dtype().to_string(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// The hash `write_table` returns is the SHA-256 of the file's bytes.
    #[test]
    fn the_returned_hash_is_that_of_the_bytes_on_disk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("h.parquet");
        let mut df = DataFrame::new(3, vec![Column::new("a".into(), [1i64, 2, 3])]).expect("frame");
        let sha = write_table(&path, &mut df).expect("write");
        let bytes = std::fs::read(&path).expect("read");
        assert_eq!(sha, revspend_core::artifact::sha256_hex(&bytes));
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

    #[test]
    fn a_table_without_the_schema_version_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("foreign.parquet");
        let mut df = DataFrame::new(1, vec![Column::new("a".into(), [1i64])]).expect("frame");
        let file = std::fs::File::create(&path).expect("create");
        ParquetWriter::new(file).finish(&mut df).expect("write");
        let err = read_table(&path, &[]).expect_err("no version");
        assert!(
            matches!(err, TableError::SchemaVersion { got: None, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("foreign.parquet"), "{err}");
    }
}
