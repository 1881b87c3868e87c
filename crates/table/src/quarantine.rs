//! The quarantine file: raw rows that could not be parsed, kept aside with
//! the file, line, field and reason, as a UTF-8 CSV.
//!
//! No raw customer id is stored (issue 12): [`quarantined_row`] replaces the
//! row's id field by its pseudonym, never quotes the id (or the whole row)
//! in the reason, and pseudonymises any other run of
//! [`ID_LIKE_DIGITS`] or more digits, which may be an id shifted out of its
//! column by a stray separator. The file and line stay, so a person with
//! access to the raw file finds the row there.

use std::path::Path;

use revspend_core::artifact::write_atomic;
use revspend_core::contract::FieldError;
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

/// The field name of a quarantine entry standing for a whole file that
/// could not be read (line 0; its rows are counted in the stage report).
pub const WHOLE_FILE: &str = "file";

/// A run of this many digits outside the id field may be a customer id
/// (ids are 11 digits or more in the real file; no other field of a valid
/// row has so many digits in a row): it is pseudonymised too.
pub const ID_LIKE_DIGITS: usize = 8;

/// The quarantine entry of a raw row that failed `error`, with no raw
/// customer id in it. `raw` is the decoded row (fields joined by `;`);
/// `pseudonym` maps an id (or id-like text) to its pseudonym.
pub fn quarantined_row(
    file: &str,
    line: u64,
    error: &FieldError,
    raw: &str,
    pseudonym: &dyn Fn(&str) -> String,
) -> QuarantinedRow {
    let field = error.field.trim();
    let reason = match field {
        // The value of these is the id itself, or the whole row with it.
        "id" | "row" => format!("field `{field}`: {}", error.reason),
        _ => format!(
            "field `{field}`: {} (got {:?})",
            error.reason,
            pseudonymise_digit_runs(&error.value, pseudonym)
        ),
    };
    QuarantinedRow {
        file: file.to_owned(),
        line,
        field: field.to_owned(),
        reason,
        raw: pseudonymise_raw(raw, pseudonym),
    }
}

/// The quarantine entry of a whole file that could not be read: no raw
/// row, and digit runs in the reason (a header that is really a data row
/// holds an id) pseudonymised.
pub fn rejected_file(file: &str, reason: &str, pseudonym: &dyn Fn(&str) -> String) -> QuarantinedRow {
    QuarantinedRow {
        file: file.to_owned(),
        line: 0,
        field: WHOLE_FILE.to_owned(),
        reason: pseudonymise_digit_runs(reason, pseudonym),
        raw: String::new(),
    }
}

/// A raw row with its first field (the id) replaced by its pseudonym and
/// id-like digit runs elsewhere pseudonymised.
pub fn pseudonymise_raw(raw: &str, pseudonym: &dyn Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(raw.len() + 32);
    for (i, field) in raw.split(';').enumerate() {
        if i > 0 {
            out.push(';');
            out.push_str(&pseudonymise_digit_runs(field, pseudonym));
        } else if field.trim().is_empty() {
            out.push_str(field);
        } else {
            // Even an id that does not parse (`X123`) is someone's id.
            out.push_str(&pseudonym(field.trim()));
        }
    }
    out
}

/// `text` with every run of [`ID_LIKE_DIGITS`] or more ASCII digits
/// replaced by its pseudonym.
pub fn pseudonymise_digit_runs(text: &str, pseudonym: &dyn Fn(&str) -> String) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if i - start >= ID_LIKE_DIGITS {
                // Digits are ASCII: both cuts are character boundaries.
                out.push_str(&text[copied..start]);
                out.push_str(&pseudonym(&text[start..i]));
                copied = i;
            }
        } else {
            i += 1;
        }
    }
    out.push_str(&text[copied..]);
    out
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

    fn fake(id: &str) -> String {
        format!("p({})", id.len())
    }

    /// Issue 12: no raw customer id in what the quarantine stores.
    #[test]
    fn a_quarantined_row_holds_no_raw_customer_id() {
        let raw = "35466972063;201405;SAO PAULO;SP;34;X;4700.0;612.0;02.07.2020; 1,00 ;VAREJO;SAO PAULO;BR";
        let err = FieldError {
            field: "sexo",
            value: "X".into(),
            reason: "expected F or M".into(),
        };
        let q = quarantined_row("a.csv", 7, &err, raw, &fake);
        assert_eq!((q.file.as_str(), q.line, q.field.as_str()), ("a.csv", 7, "sexo"));
        assert!(q.raw.starts_with("p(11);201405;SAO PAULO;"), "{}", q.raw);
        assert!(
            q.reason.contains("expected F or M") && q.reason.contains("\"X\""),
            "{}",
            q.reason
        );

        // The id that does not parse, and a wrong field count, are not quoted.
        let err = FieldError {
            field: "id",
            value: "X35466972063".into(),
            reason: "expected a customer id of digits".into(),
        };
        let q = quarantined_row("a.csv", 8, &err, "X35466972063;201405", &fake);
        assert_eq!(q.raw, "p(12);201405");
        assert!(!q.reason.contains("3546697"), "{}", q.reason);
        let err = FieldError {
            field: "row",
            value: raw.into(),
            reason: "expected 13 fields, got 14".into(),
        };
        // A stray leading separator shifts the id into the second field.
        let shifted = format!(";{raw}");
        let q = quarantined_row("a.csv", 9, &err, &shifted, &fake);
        assert_eq!(q.reason, "field `row`: expected 13 fields, got 14");
        assert!(q.raw.starts_with(";p(11);201405;"), "{}", q.raw);
        // Amounts and dates keep their digits.
        assert!(q.raw.contains("02.07.2020; 1,00 ;"), "{}", q.raw);

        let q = rejected_file("b.csv", "line 1: header column 1 is \"35466972063\"", &fake);
        assert_eq!((q.line, q.field.as_str(), q.raw.as_str()), (0, WHOLE_FILE, ""));
        assert_eq!(q.reason, "line 1: header column 1 is \"p(11)\"");
    }

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
