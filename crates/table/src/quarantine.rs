//! The quarantine file: raw rows that could not be parsed, kept aside with
//! the file, line, field and reason, as a UTF-8 CSV.

use std::path::Path;

use revspend_core::artifact::write_atomic;
use revspend_core::schema::QUARANTINE;
use serde::{Deserialize, Serialize};

use crate::error::{TableError, io_err};

/// A raw row that could not be parsed, kept aside with where it came from.
/// Its fields, in order, are the quarantine CSV's columns
/// (`revspend_core::schema::QUARANTINE`; a test holds the two equal).
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

/// Writes quarantined rows as a UTF-8 CSV (`file,line,field,reason,raw`),
/// atomically; an empty quarantine is the header alone.
pub fn write_quarantine(path: &Path, rows: &[QuarantinedRow]) -> Result<(), TableError> {
    let csv_err = |source| TableError::Csv {
        path: path.to_owned(),
        source,
    };
    let mut w = csv::Writer::from_writer(Vec::new());
    if rows.is_empty() {
        w.write_record(QUARANTINE).map_err(csv_err)?;
    }
    for r in rows {
        w.serialize(r).map_err(csv_err)?;
    }
    let bytes = w.into_inner().map_err(|e| TableError::Io {
        path: path.to_owned(),
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok(write_atomic(path, &bytes)?)
}

/// Reads a quarantine file back.
pub fn read_quarantine(path: &Path) -> Result<Vec<QuarantinedRow>, TableError> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    csv::Reader::from_reader(bytes.as_slice())
        .deserialize()
        .collect::<Result<_, _>>()
        .map_err(|source| TableError::Csv {
            path: path.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarantined_rows_round_trip_and_an_empty_file_has_its_header() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("q.csv");
        write_quarantine(&path, &[]).expect("write empty");
        let header = format!("{}\n", QUARANTINE.join(","));
        assert_eq!(std::fs::read_to_string(&path).expect("read"), header);
        assert!(read_quarantine(&path).expect("read back").is_empty());

        let rows = vec![QuarantinedRow {
            file: "a.csv".into(),
            line: 7,
            field: " valor ".into(),
            reason: "not an amount: \"1,2,3\"".into(),
            raw: "1;2;x;\"quoted\"".into(),
        }];
        write_quarantine(&path, &rows).expect("write");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(
            text.starts_with(&header),
            "the serialised fields are the schema's columns: {text}"
        );
        assert_eq!(read_quarantine(&path).expect("read back"), rows);
    }
}
