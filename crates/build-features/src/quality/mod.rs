//! Data quality suite: expectations declared in a YAML file the user edits
//! (`config/quality.yaml`), in the spirit of Great Expectations, checked on
//! the header of every raw file and on the staged rows (one per parsed raw
//! row, before any feature is computed; quarantined rows are not in it).
//!
//! The suite's `ranges` are not expectations: they are applied while each
//! raw file is staged, and a row with a value outside its range is
//! quarantined (not seen here) instead of failing the stage
//! (`revspend_core::contract::ValueRanges`).
//!
//! Every expectation runs every time: a failure never hides the ones after
//! it. Each result gives the number of elements looked at, how many were
//! unexpected (and what percent), and up to [`MAX_EXAMPLES`] unexpected
//! values with the file and line they came from. An expectation of severity
//! `error` that fails makes [`QualityReport::success`] false; `warn` only
//! reports.
//!
//! Semantics shared by all kinds, chosen to match the data contract:
//!
//! - On a String column an empty string is null: the contract writes a
//!   missing value as an empty field, and the parser keeps it as `""`.
//! - `in_set`, `between` and `matches_pattern` do not count nulls as
//!   unexpected (as in Great Expectations): they are reported as
//!   `missing_count`, and `unexpected_percent` and `mostly` are relative to
//!   the non-null values. `not_null` is the expectation that counts nulls.
//! - `mostly` is the fraction of elements that must meet the expectation
//!   (default 1: all of them).
//! - `matches_pattern` is a regex *search* (like `re.search`): anchor the
//!   pattern with `^…$` to match the whole value.
//! - `unique` treats null as a value: two rows with the same key, nulls
//!   included, are both unexpected.

mod checks;
mod codes;
mod report;
mod runner;
mod tally;
#[cfg(test)]
mod testkit;

pub use report::{Example, ExpectationResult, FileHeader, QualityReport, Statistics};
pub use runner::run_suite;

use std::fmt;
use std::path::Path;

use anyhow::{Context, Result, bail};
use chrono::NaiveDate;
use polars::prelude::{InitHashMaps, PlHashSet};
use regex::Regex;
use revspend_core::artifact::CUSTOMER_COLUMN;
use revspend_core::contract::ValueRanges;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Each result keeps at most this many unexpected values.
pub const MAX_EXAMPLES: usize = 5;

/// Staged column holding the raw file name of each row.
pub const FILE_COLUMN: &str = revspend_core::schema::FILE;
/// Staged column holding the line number of each row in its file.
pub const LINE_COLUMN: &str = revspend_core::schema::LINE;

/// What a failed expectation does to the stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// A failure fails the stage.
    #[default]
    Error,
    /// A failure is reported and logged; the stage goes on.
    Warn,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warn => "warn",
        })
    }
}

/// The kinds of expectation, as written after `expect:` in the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    ColumnsInOrder,
    NotNull,
    InSet,
    Between,
    Unique,
    MatchesPattern,
    RowCountBetween,
    ConstantPerCustomer,
}

impl Kind {
    /// The name written in the suite file.
    pub fn name(self) -> &'static str {
        match self {
            Kind::ColumnsInOrder => "columns_in_order",
            Kind::NotNull => "not_null",
            Kind::InSet => "in_set",
            Kind::Between => "between",
            Kind::Unique => "unique",
            Kind::MatchesPattern => "matches_pattern",
            Kind::RowCountBetween => "row_count_between",
            Kind::ConstantPerCustomer => "constant_per_customer",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A suite of expectations read from a YAML file the user edits.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Suite {
    pub expectations: Vec<Expectation>,
    /// The values a row may hold: a row with a value outside its range is
    /// quarantined when its file is staged (the field, value and range in
    /// the reason), not the stage failed. A field left out keeps the
    /// default documented on [`ValueRanges`].
    #[serde(default)]
    pub ranges: ValueRanges,
}

/// A number, or text. Dates (bounds of `between` on a Date column) are
/// written as ISO text: `2020-01-31`.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Number(f64),
    Text(String),
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Number(n) => write!(f, "{n}"),
            Scalar::Text(s) => write!(f, "{s:?}"),
        }
    }
}

impl Serialize for Scalar {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            // Whole numbers as integers, so that `min: 16` reads back as written.
            Scalar::Number(n) if n.fract() == 0.0 && n.abs() < 9e15 => serializer.serialize_i64(*n as i64),
            Scalar::Number(n) => serializer.serialize_f64(*n),
            Scalar::Text(s) => serializer.serialize_str(s),
        }
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;

        impl Visitor<'_> for ScalarVisitor {
            type Value = Scalar;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number or text (quote `true`/`false` to mean text)")
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Number(v as f64))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar::Number(v as f64))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar::Number(v))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Text(v.to_owned()))
            }
        }

        deserializer.deserialize_any(ScalarVisitor)
    }
}

pub(super) fn all() -> f64 {
    1.0
}

pub(super) fn is_all(mostly: &f64) -> bool {
    *mostly == 1.0
}

/// One expectation as the user writes it, tagged by `expect:`. Every kind
/// takes `severity` (default `error`); those that look at rows take
/// `mostly` (default 1.0).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "expect", rename_all = "snake_case", deny_unknown_fields)]
pub enum Expectation {
    /// The header of every raw file is exactly `columns`, in order.
    /// Elements are files; an unexpected file's example names its first
    /// differing column (line 1).
    ColumnsInOrder {
        columns: Vec<String>,
        #[serde(default)]
        severity: Severity,
    },
    /// `column` has no null (on a String column: no empty string either).
    NotNull {
        column: String,
        #[serde(default = "all", skip_serializing_if = "is_all")]
        mostly: f64,
        #[serde(default)]
        severity: Severity,
    },
    /// Non-null values of `column` (String or numeric) are among `values`.
    InSet {
        column: String,
        values: Vec<Scalar>,
        #[serde(default = "all", skip_serializing_if = "is_all")]
        mostly: f64,
        #[serde(default)]
        severity: Severity,
    },
    /// Non-null values of `column` lie in `[min, max]` (either bound may be
    /// left out). Numbers for numeric columns, ISO dates for Date columns.
    Between {
        column: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min: Option<Scalar>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<Scalar>,
        #[serde(default = "all", skip_serializing_if = "is_all")]
        mostly: f64,
        #[serde(default)]
        severity: Severity,
    },
    /// The compound key `columns` identifies each row: rows whose key occurs
    /// more than once are all unexpected.
    Unique {
        columns: Vec<String>,
        #[serde(default = "all", skip_serializing_if = "is_all")]
        mostly: f64,
        #[serde(default)]
        severity: Severity,
    },
    /// Non-null values of String `column` contain a match of `pattern`
    /// (a search: anchor it with `^…$` for a full match).
    MatchesPattern {
        column: String,
        pattern: String,
        #[serde(default = "all", skip_serializing_if = "is_all")]
        mostly: f64,
        #[serde(default)]
        severity: Severity,
    },
    /// The number of staged rows lies in `[min, max]`.
    RowCountBetween {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<u64>,
        #[serde(default)]
        severity: Severity,
    },
    /// Each customer has at most one distinct non-null value in each of
    /// `columns`. Unexpected: every row of a customer who has more.
    ConstantPerCustomer {
        columns: Vec<String>,
        #[serde(default = "all", skip_serializing_if = "is_all")]
        mostly: f64,
        #[serde(default)]
        severity: Severity,
    },
}

impl Expectation {
    pub fn kind(&self) -> Kind {
        match self {
            Expectation::ColumnsInOrder { .. } => Kind::ColumnsInOrder,
            Expectation::NotNull { .. } => Kind::NotNull,
            Expectation::InSet { .. } => Kind::InSet,
            Expectation::Between { .. } => Kind::Between,
            Expectation::Unique { .. } => Kind::Unique,
            Expectation::MatchesPattern { .. } => Kind::MatchesPattern,
            Expectation::RowCountBetween { .. } => Kind::RowCountBetween,
            Expectation::ConstantPerCustomer { .. } => Kind::ConstantPerCustomer,
        }
    }

    pub fn severity(&self) -> Severity {
        match self {
            Expectation::ColumnsInOrder { severity, .. }
            | Expectation::NotNull { severity, .. }
            | Expectation::InSet { severity, .. }
            | Expectation::Between { severity, .. }
            | Expectation::Unique { severity, .. }
            | Expectation::MatchesPattern { severity, .. }
            | Expectation::RowCountBetween { severity, .. }
            | Expectation::ConstantPerCustomer { severity, .. } => *severity,
        }
    }

    /// The fraction of elements that must meet the expectation (1 for the
    /// kinds that take no `mostly`).
    pub fn mostly(&self) -> f64 {
        match self {
            Expectation::NotNull { mostly, .. }
            | Expectation::InSet { mostly, .. }
            | Expectation::Between { mostly, .. }
            | Expectation::Unique { mostly, .. }
            | Expectation::MatchesPattern { mostly, .. }
            | Expectation::ConstantPerCustomer { mostly, .. } => *mostly,
            Expectation::ColumnsInOrder { .. } | Expectation::RowCountBetween { .. } => 1.0,
        }
    }

    /// The staged columns the expectation reads (none for the header and
    /// the row count).
    fn staged_columns(&self) -> Vec<&str> {
        match self {
            Expectation::NotNull { column, .. }
            | Expectation::InSet { column, .. }
            | Expectation::Between { column, .. }
            | Expectation::MatchesPattern { column, .. } => vec![column.as_str()],
            Expectation::Unique { columns, .. } => columns.iter().map(String::as_str).collect(),
            Expectation::ConstantPerCustomer { columns, .. } => std::iter::once(CUSTOMER_COLUMN)
                .chain(columns.iter().map(String::as_str))
                .collect(),
            Expectation::ColumnsInOrder { .. } | Expectation::RowCountBetween { .. } => Vec::new(),
        }
    }

    /// A human-readable id: the kind and the columns it looks at, e.g.
    /// `not_null(data)` or `unique(file, line)`.
    pub fn id(&self) -> String {
        match self {
            Expectation::NotNull { column, .. }
            | Expectation::InSet { column, .. }
            | Expectation::Between { column, .. }
            | Expectation::MatchesPattern { column, .. } => format!("{}({column})", self.kind()),
            Expectation::Unique { columns, .. } | Expectation::ConstantPerCustomer { columns, .. } => {
                format!("{}({})", self.kind(), columns.join(", "))
            }
            Expectation::ColumnsInOrder { .. } | Expectation::RowCountBetween { .. } => {
                self.kind().name().to_owned()
            }
        }
    }

    /// Checks what can be checked without data: `mostly` in [0, 1], bounds
    /// present and ordered, dates and patterns that parse, non-empty lists.
    fn validate(&self) -> Result<(), String> {
        let mostly = self.mostly();
        if !(0.0..=1.0).contains(&mostly) {
            return Err(format!("`mostly` must be in [0, 1], got {mostly}"));
        }
        match self {
            Expectation::ColumnsInOrder { columns, .. } => non_empty("columns", columns),
            Expectation::NotNull { column, .. } => column_name(column),
            Expectation::InSet { column, values, .. } => {
                column_name(column)?;
                non_empty("values", values)?;
                if values.iter().any(|v| matches!(v, Scalar::Number(_)))
                    && values.iter().any(|v| matches!(v, Scalar::Text(_)))
                {
                    return Err("`values` mixes numbers and text; quote them all or none".into());
                }
                Ok(())
            }
            Expectation::Between { column, min, max, .. } => {
                column_name(column)?;
                bounds(min.as_ref(), max.as_ref()).map(|_| ())
            }
            Expectation::Unique { columns, .. } => distinct_columns(columns),
            Expectation::MatchesPattern { column, pattern, .. } => {
                column_name(column)?;
                Regex::new(pattern)
                    .map(|_| ())
                    .map_err(|e| format!("`pattern` {pattern:?} does not compile: {e}"))
            }
            Expectation::RowCountBetween { min, max, .. } => match (min, max) {
                (None, None) => Err("give `min`, `max` or both".into()),
                (Some(lo), Some(hi)) if lo > hi => Err(format!("`min` {lo} is above `max` {hi}")),
                _ => Ok(()),
            },
            Expectation::ConstantPerCustomer { columns, .. } => {
                distinct_columns(columns)?;
                if columns.iter().any(|c| c == CUSTOMER_COLUMN) {
                    return Err(format!(
                        "`columns` cannot hold the customer column `{CUSTOMER_COLUMN}`"
                    ));
                }
                Ok(())
            }
        }
    }
}

pub(super) fn non_empty<T>(key: &str, list: &[T]) -> Result<(), String> {
    if list.is_empty() {
        return Err(format!("`{key}` is empty"));
    }
    Ok(())
}

pub(super) fn column_name(column: &str) -> Result<(), String> {
    if column.trim().is_empty() {
        return Err("`column` is empty".into());
    }
    Ok(())
}

pub(super) fn distinct_columns(columns: &[String]) -> Result<(), String> {
    non_empty("columns", columns)?;
    let mut seen = PlHashSet::new();
    for c in columns {
        column_name(c)?;
        if !seen.insert(c) {
            return Err(format!("`columns` names `{c}` twice"));
        }
    }
    Ok(())
}

/// The bounds of a `between`, checked: both numbers or both ISO dates, and
/// `min <= max`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Bounds {
    Number(Option<f64>, Option<f64>),
    Date(Option<NaiveDate>, Option<NaiveDate>),
}

pub(super) fn bounds(min: Option<&Scalar>, max: Option<&Scalar>) -> Result<Bounds, String> {
    fn number(key: &str, s: Option<&Scalar>) -> Result<Option<f64>, String> {
        match s {
            None => Ok(None),
            Some(Scalar::Number(n)) if n.is_finite() => Ok(Some(*n)),
            Some(other) => Err(format!("`{key}` must be a finite number, got {other}")),
        }
    }
    fn date(key: &str, s: Option<&Scalar>) -> Result<Option<NaiveDate>, String> {
        match s {
            None => Ok(None),
            Some(Scalar::Text(t)) => NaiveDate::parse_from_str(t, "%Y-%m-%d")
                .map(Some)
                .map_err(|_| format!("`{key}` must be an ISO date (yyyy-mm-dd) or a number, got {t:?}")),
            Some(other) => Err(format!("`{key}` must be an ISO date like its pair, got {other}")),
        }
    }
    let dated = matches!(min, Some(Scalar::Text(_))) || matches!(max, Some(Scalar::Text(_)));
    let checked = if dated {
        Bounds::Date(date("min", min)?, date("max", max)?)
    } else {
        Bounds::Number(number("min", min)?, number("max", max)?)
    };
    let ordered = match checked {
        Bounds::Number(None, None) | Bounds::Date(None, None) => {
            return Err("give `min`, `max` or both".into());
        }
        Bounds::Number(Some(lo), Some(hi)) => lo <= hi,
        Bounds::Date(Some(lo), Some(hi)) => lo <= hi,
        _ => true,
    };
    if !ordered {
        return Err(format!(
            "`min` is above `max` ({} > {})",
            min.map_or(String::new(), Scalar::to_string),
            max.map_or(String::new(), Scalar::to_string)
        ));
    }
    Ok(checked)
}

impl Suite {
    /// Checks every expectation, and reports all the bad ones at once, each
    /// named by its index and id.
    pub fn validate(&self) -> Result<()> {
        let problems: Vec<String> = self
            .expectations
            .iter()
            .enumerate()
            .filter_map(|(i, e)| {
                e.validate()
                    .err()
                    .map(|m| format!("expectations[{i}] ({}): {m}", e.id()))
            })
            .collect();
        let problems: Vec<String> = problems.into_iter().chain(self.ranges.validate().err()).collect();
        if !problems.is_empty() {
            bail!("invalid quality suite:\n  {}", problems.join("\n  "));
        }
        Ok(())
    }

    /// Parses and validates a suite. Unknown keys are rejected; every bad
    /// expectation is reported at once, named by its index and id.
    pub fn from_yaml(text: &str) -> Result<Suite> {
        // Each expectation is typed on its own so that an error can name it:
        // through the tagged enum serde would only say `expectations`.
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct RawSuite {
            expectations: Vec<serde_norway::Value>,
            #[serde(default)]
            ranges: ValueRanges,
        }
        let raw: RawSuite = serde_norway::from_str(text)?;
        let mut expectations = Vec::with_capacity(raw.expectations.len());
        let mut problems = Vec::new();
        for (i, value) in raw.expectations.into_iter().enumerate() {
            let id = raw_id(&value);
            match serde_norway::from_value::<Expectation>(value) {
                Ok(e) => expectations.push(e),
                Err(e) => problems.push(format!("expectations[{i}] ({id}): {e}")),
            }
        }
        if !problems.is_empty() {
            bail!("invalid quality suite:\n  {}", problems.join("\n  "));
        }
        let suite = Suite {
            expectations,
            ranges: raw.ranges,
        };
        suite.validate()?;
        Ok(suite)
    }
}

/// [`Expectation::id`] of an expectation that did not parse, as far as it
/// can be read.
pub(super) fn raw_id(value: &serde_norway::Value) -> String {
    let text = |key: &str| value.get(key).and_then(serde_norway::Value::as_str);
    let kind = text("expect").unwrap_or("?");
    if let Some(column) = text("column") {
        return format!("{kind}({column})");
    }
    match value.get("columns").and_then(serde_norway::Value::as_sequence) {
        Some(columns) if kind != Kind::ColumnsInOrder.name() => {
            let names: Vec<&str> = columns.iter().filter_map(serde_norway::Value::as_str).collect();
            format!("{kind}({})", names.join(", "))
        }
        _ => kind.to_owned(),
    }
}

/// Reads, parses and validates a suite file; errors name the file.
pub fn load_suite(path: &Path) -> Result<Suite> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading quality suite {}", path.display()))?;
    Suite::from_yaml(&text).with_context(|| format!("loading quality suite {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_error(yaml: &str) -> String {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("quality.yaml");
        std::fs::write(&path, yaml).expect("write");
        format!("{:#}", load_suite(&path).expect_err("rejected"))
    }

    #[test]
    fn load_suite_rejects_unknown_keys() {
        let message = load_error(
            "expectations:\n  - {expect: not_null, column: data}\n  - {expect: not_null, colum: data}\n",
        );
        assert!(message.contains("quality.yaml"), "{message}");
        assert!(
            message.contains("expectations[1] (not_null): unknown field `colum`"),
            "{message}"
        );

        let message = load_error("expectations: []\nexpectation: []\n");
        assert!(message.contains("unknown field `expectation`"), "{message}");
        let message = load_error("expectations: [{expect: not_empty, column: data}]\n");
        assert!(
            message.contains("expectations[0] (not_empty(data)): unknown variant"),
            "{message}"
        );
        let message = load_error("expectations: [{expect: in_set, column: sexo, values: [true]}]\n");
        assert!(
            message.contains("expectations[0] (in_set(sexo)): invalid type"),
            "{message}"
        );
        // `mostly` means nothing for a row count.
        let message = load_error("expectations: [{expect: row_count_between, min: 1, mostly: 0.5}]\n");
        assert!(
            message.contains("expectations[0] (row_count_between): unknown field `mostly`"),
            "{message}"
        );
    }

    #[test]
    fn load_suite_rejects_bad_values_naming_the_expectation() {
        let message = load_error(
            "expectations:
  - {expect: not_null, column: data}
  - {expect: matches_pattern, column: estado, pattern: '^[A-Z'}
  - {expect: not_null, column: valor, mostly: 1.5}
  - {expect: between, column: idade, min: 110, max: 16}
  - {expect: between, column: data, min: 2020-13-01}
  - {expect: unique, columns: []}
  - {expect: in_set, column: sexo, values: []}
  - {expect: row_count_between}
",
        );
        assert!(message.contains("quality.yaml"), "{message}");
        assert!(
            message.contains("expectations[1] (matches_pattern(estado)): `pattern`"),
            "{message}"
        );
        assert!(message.contains("expectations[2] (not_null(valor)): `mostly` must be in [0, 1], got 1.5"));
        assert!(
            message.contains("expectations[3] (between(idade)): `min` is above `max`"),
            "{message}"
        );
        assert!(
            message.contains("expectations[4] (between(data)): `min` must be an ISO date"),
            "{message}"
        );
        assert!(
            message.contains("expectations[5] (unique()): `columns` is empty"),
            "{message}"
        );
        assert!(
            message.contains("expectations[6] (in_set(sexo)): `values` is empty"),
            "{message}"
        );
        assert!(
            message.contains("expectations[7] (row_count_between): give"),
            "{message}"
        );
        assert!(!message.contains("expectations[0]"), "{message}");
    }
}
