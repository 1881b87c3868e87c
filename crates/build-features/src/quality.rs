//! Data quality suite: expectations declared in a YAML file the user edits
//! (`config/quality.yaml`), in the spirit of Great Expectations, checked on
//! the header of every raw file and on the staged rows (one per parsed raw
//! row, before any feature is computed; quarantined rows are not in it).
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

use std::fmt;
use std::path::Path;

use anyhow::{Context, Result, bail};
use chrono::NaiveDate;
use polars::prelude::*;
use regex::Regex;
use revspend_core::artifact::CUSTOMER_COLUMN;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Each result keeps at most this many unexpected values.
pub const MAX_EXAMPLES: usize = 5;

/// Staged column holding the raw file name of each row.
pub const FILE_COLUMN: &str = "file";
/// Staged column holding the line number of each row in its file.
pub const LINE_COLUMN: &str = "line";

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

fn all() -> f64 {
    1.0
}

fn is_all(mostly: &f64) -> bool {
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

fn non_empty<T>(key: &str, list: &[T]) -> Result<(), String> {
    if list.is_empty() {
        return Err(format!("`{key}` is empty"));
    }
    Ok(())
}

fn column_name(column: &str) -> Result<(), String> {
    if column.trim().is_empty() {
        return Err("`column` is empty".into());
    }
    Ok(())
}

fn distinct_columns(columns: &[String]) -> Result<(), String> {
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
enum Bounds {
    Number(Option<f64>, Option<f64>),
    Date(Option<NaiveDate>, Option<NaiveDate>),
}

fn bounds(min: Option<&Scalar>, max: Option<&Scalar>) -> Result<Bounds, String> {
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
        let suite = Suite { expectations };
        suite.validate()?;
        Ok(suite)
    }
}

/// [`Expectation::id`] of an expectation that did not parse, as far as it
/// can be read.
fn raw_id(value: &serde_norway::Value) -> String {
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

/// The header of one raw file, as read (decoded from cp1252).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct FileHeader {
    pub file: String,
    pub columns: Vec<String>,
}

/// One unexpected value and where it was read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Example {
    pub value: String,
    pub file: String,
    pub line: u64,
}

/// The outcome of one expectation.
#[derive(Debug, Clone, Serialize)]
pub struct ExpectationResult {
    /// Position of the expectation in the suite (from 0).
    pub index: usize,
    /// Human-readable id, e.g. `not_null(data)`.
    pub expectation: String,
    pub kind: Kind,
    pub severity: Severity,
    pub success: bool,
    /// Rows looked at (files for `columns_in_order`; for
    /// `row_count_between` the row count, with an unexpected count of 0 or
    /// 1 and a percent of 0 or 100).
    pub element_count: u64,
    /// Nulls skipped by `in_set`, `between` and `matches_pattern`.
    pub missing_count: u64,
    pub unexpected_count: u64,
    /// Percent (0–100) of the non-missing elements that are unexpected.
    pub unexpected_percent: f64,
    pub mostly: f64,
    /// A short summary of what was seen, where a count says too little
    /// (e.g. the row count, the observed range).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed: Option<String>,
    /// At most [`MAX_EXAMPLES`] unexpected values, in row order.
    pub examples: Vec<Example>,
    /// The expectation as configured.
    pub config: Expectation,
}

/// Counts over the results.
#[derive(Debug, Clone, Serialize)]
pub struct Statistics {
    pub evaluated: usize,
    pub successful: usize,
    pub failed_error: usize,
    pub failed_warn: usize,
    pub success_percent: f64,
}

/// The suite's outcome (`reports/quality.json`).
#[derive(Debug, Clone, Serialize)]
pub struct QualityReport {
    /// No expectation of severity `error` failed.
    pub success: bool,
    pub rows: u64,
    pub files: u64,
    pub statistics: Statistics,
    pub results: Vec<ExpectationResult>,
}

impl QualityReport {
    /// The failed expectations of one severity, in suite order.
    pub fn failed(&self, severity: Severity) -> Vec<&ExpectationResult> {
        self.results
            .iter()
            .filter(|r| !r.success && r.severity == severity)
            .collect()
    }

    /// Logs every failed `warn` expectation, then fails naming every failed
    /// `error` expectation (with its unexpected count and first example).
    pub fn ensure_success(&self) -> Result<()> {
        for r in self.failed(Severity::Warn) {
            log::warn!("data quality (warn): {}", describe(r));
        }
        let errors = self.failed(Severity::Error);
        if !errors.is_empty() {
            let names: Vec<String> = errors.iter().map(|r| describe(r)).collect();
            bail!(
                "data quality: {} error-severity expectation(s) failed:\n  {}",
                errors.len(),
                names.join("\n  ")
            );
        }
        Ok(())
    }
}

fn describe(r: &ExpectationResult) -> String {
    if let Expectation::RowCountBetween { min, max, .. } = &r.config {
        let bound = |b: &Option<u64>| b.map_or_else(|| "-".to_owned(), |b| b.to_string());
        return format!(
            "expectations[{}] {}: {} rows, expected between {} and {}",
            r.index,
            r.expectation,
            r.element_count,
            bound(min),
            bound(max)
        );
    }
    let mut text = format!(
        "expectations[{}] {}: {} of {} unexpected ({:.2}%, mostly {})",
        r.index,
        r.expectation,
        r.unexpected_count,
        r.element_count - r.missing_count,
        r.unexpected_percent,
        r.mostly
    );
    if let Some(o) = &r.observed {
        text.push_str(&format!("; {o}"));
    }
    if let Some(e) = r.examples.first() {
        text.push_str(&format!("; e.g. {:?} at {}:{}", e.value, e.file, e.line));
    }
    text
}

/// Runs every expectation (never stops at the first failure).
///
/// Errors only when the suite cannot run at all: it is invalid, it names a
/// column the staged table lacks or one of a type the kind cannot check
/// (all such problems are listed together), or `staged` lacks `file`/`line`.
pub fn run_suite(suite: &Suite, staged: &DataFrame, headers: &[FileHeader]) -> Result<QualityReport> {
    suite.validate()?;
    let rows = Rows::new(staged)?;
    let misfits: Vec<String> = suite
        .expectations
        .iter()
        .enumerate()
        .filter_map(|(i, e)| {
            fit(e, staged)
                .err()
                .map(|m| format!("expectations[{i}] ({}): {m}", e.id()))
        })
        .collect();
    if !misfits.is_empty() {
        bail!(
            "the quality suite does not fit the staged table (columns: {}):\n  {}",
            staged
                .get_column_names()
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            misfits.join("\n  ")
        );
    }

    let mut results = Vec::with_capacity(suite.expectations.len());
    for (index, e) in suite.expectations.iter().enumerate() {
        let tally = evaluate(e, &rows, headers)
            .with_context(|| format!("running expectations[{index}] ({})", e.id()))?;
        results.push(tally.into_result(index, e));
    }

    let failed = |s| results.iter().filter(|r| !r.success && r.severity == s).count();
    let (failed_error, failed_warn) = (failed(Severity::Error), failed(Severity::Warn));
    let evaluated = results.len();
    let successful = evaluated - failed_error - failed_warn;
    Ok(QualityReport {
        success: failed_error == 0,
        rows: staged.height() as u64,
        files: headers.len() as u64,
        statistics: Statistics {
            evaluated,
            successful,
            failed_error,
            failed_warn,
            success_percent: if evaluated == 0 {
                100.0
            } else {
                100.0 * successful as f64 / evaluated as f64
            },
        },
        results,
    })
}

/// Checks that the columns an expectation reads exist with a type it can
/// check.
fn fit(e: &Expectation, staged: &DataFrame) -> Result<(), String> {
    for name in e.staged_columns() {
        if staged.column(name).is_err() {
            return Err(format!("no column `{name}` in the staged table"));
        }
    }
    let dtype = |name: &str| {
        staged
            .column(name)
            .map(|c| c.dtype().clone())
            .unwrap_or(DataType::Null)
    };
    match e {
        Expectation::InSet { column, values, .. } => {
            let dt = dtype(column);
            let numbers = values.iter().all(|v| matches!(v, Scalar::Number(_)));
            if is_text(&dt) && numbers {
                Err(format!("`{column}` is text: quote the `values`"))
            } else if dt.is_primitive_numeric() && !numbers {
                Err(format!("`{column}` is {dt}: `values` must be numbers"))
            } else if !is_text(&dt) && !dt.is_primitive_numeric() {
                Err(format!(
                    "`{column}` is {dt}; in_set checks String or numeric columns"
                ))
            } else {
                Ok(())
            }
        }
        Expectation::Between { column, min, max, .. } => {
            let dt = dtype(column);
            let dated = matches!(bounds(min.as_ref(), max.as_ref()), Ok(Bounds::Date(..)));
            if dt == DataType::Date && !dated {
                Err(format!("`{column}` is Date: give `min`/`max` as ISO dates"))
            } else if dt.is_primitive_numeric() && dated {
                Err(format!("`{column}` is {dt}: `min`/`max` must be numbers"))
            } else if dt != DataType::Date && !dt.is_primitive_numeric() {
                Err(format!(
                    "`{column}` is {dt}; between checks numeric or Date columns"
                ))
            } else {
                Ok(())
            }
        }
        Expectation::MatchesPattern { column, .. } => match dtype(column) {
            dt if is_text(&dt) => Ok(()),
            dt => Err(format!(
                "`{column}` is {dt}; matches_pattern checks String columns"
            )),
        },
        Expectation::ConstantPerCustomer { .. } => match dtype(CUSTOMER_COLUMN) {
            dt if is_text(&dt) => Ok(()),
            dt => Err(format!("`{CUSTOMER_COLUMN}` is {dt}, not String")),
        },
        _ => Ok(()),
    }
}

/// The staged table with the lineage of each row, for examples.
struct Rows<'a> {
    df: &'a DataFrame,
    /// String or Categorical (see [`is_text`]).
    file: &'a Column,
    line: &'a UInt64Chunked,
}

impl<'a> Rows<'a> {
    fn new(df: &'a DataFrame) -> Result<Self> {
        // `.ok()`: polars' own `with_context` would clash with anyhow's.
        let lineage = |name: &str| {
            df.column(name)
                .ok()
                .map(Column::as_materialized_series)
                .with_context(|| format!("the staged table has no `{name}` column"))
        };
        Ok(Self {
            df,
            file: df
                .column(FILE_COLUMN)
                .ok()
                .filter(|c| is_text(c.dtype()))
                .with_context(|| {
                    format!("the staged table needs a String or Categorical `{FILE_COLUMN}` column")
                })?,
            line: lineage(LINE_COLUMN)?
                .u64()
                .ok()
                .with_context(|| format!("staged `{LINE_COLUMN}` must be UInt64"))?,
        })
    }

    fn height(&self) -> u64 {
        self.df.height() as u64
    }

    fn series(&self, name: &str) -> Result<&'a Series> {
        Ok(self.df.column(name)?.as_materialized_series())
    }

    /// The file name of row `row`.
    fn file(&self, row: usize) -> String {
        self.file
            .get(row)
            .ok()
            .and_then(|v| v.get_str().map(str::to_owned))
            .unwrap_or_default()
    }

    fn example(&self, row: usize, value: String) -> Example {
        Example {
            value,
            file: self.file(row),
            line: self.line.get(row).unwrap_or_default(),
        }
    }
}

/// Counts gathered by one expectation.
#[derive(Debug, Default)]
struct Tally {
    elements: u64,
    missing: u64,
    unexpected: u64,
    examples: Vec<Example>,
    observed: Option<String>,
}

impl Tally {
    fn over(elements: u64) -> Self {
        Self {
            elements,
            ..Self::default()
        }
    }

    /// Counts an unexpected row; its value is rendered only while examples
    /// are still wanted.
    fn hit(&mut self, rows: &Rows<'_>, row: usize, value: impl FnOnce() -> String) {
        self.unexpected += 1;
        if self.examples.len() < MAX_EXAMPLES {
            self.examples.push(rows.example(row, value()));
        }
    }

    fn into_result(self, index: usize, e: &Expectation) -> ExpectationResult {
        let considered = self.elements - self.missing;
        let mostly = e.mostly();
        let (unexpected_percent, success) = if e.kind() == Kind::RowCountBetween {
            (100.0 * self.unexpected as f64, self.unexpected == 0)
        } else if considered == 0 {
            // Nothing to look at: vacuously met (the row count says if that is bad).
            (0.0, true)
        } else {
            let share = self.unexpected as f64 / considered as f64;
            // Tolerance: 0.98 × 100 rows must accept exactly 2 unexpected.
            (100.0 * share, 1.0 - share + 1e-12 >= mostly)
        };
        ExpectationResult {
            index,
            expectation: e.id(),
            kind: e.kind(),
            severity: e.severity(),
            success,
            element_count: self.elements,
            missing_count: self.missing,
            unexpected_count: self.unexpected,
            unexpected_percent,
            mostly,
            observed: self.observed,
            examples: self.examples,
            config: e.clone(),
        }
    }
}

fn evaluate(e: &Expectation, rows: &Rows<'_>, headers: &[FileHeader]) -> Result<Tally> {
    match e {
        Expectation::ColumnsInOrder { columns, .. } => Ok(columns_in_order(columns, headers)),
        Expectation::NotNull { column, .. } => not_null(rows, column),
        Expectation::InSet { column, values, .. } => in_set(rows, column, values),
        Expectation::Between { column, min, max, .. } => {
            let checked = bounds(min.as_ref(), max.as_ref()).map_err(anyhow::Error::msg)?;
            between(rows, column, checked)
        }
        Expectation::Unique { columns, .. } => unique(rows, columns),
        Expectation::MatchesPattern { column, pattern, .. } => matches_pattern(rows, column, pattern),
        Expectation::RowCountBetween { min, max, .. } => Ok(row_count_between(rows, *min, *max)),
        Expectation::ConstantPerCustomer { columns, .. } => constant_per_customer(rows, columns),
    }
}

fn columns_in_order(expected: &[String], headers: &[FileHeader]) -> Tally {
    let mut t = Tally::over(headers.len() as u64);
    for h in headers {
        let Some(pos) =
            (0..expected.len().max(h.columns.len())).find(|&i| expected.get(i) != h.columns.get(i))
        else {
            continue;
        };
        t.unexpected += 1;
        if t.examples.len() < MAX_EXAMPLES {
            let shown = |c: Option<&String>| c.map_or_else(|| "nothing".to_owned(), |c| format!("{c:?}"));
            t.examples.push(Example {
                value: format!(
                    "column {}: expected {}, found {}",
                    pos + 1,
                    shown(expected.get(pos)),
                    shown(h.columns.get(pos))
                ),
                file: h.file.clone(),
                line: 1,
            });
        }
    }
    t.observed = Some(format!("{} of {} files differ", t.unexpected, headers.len()));
    t
}

fn not_null(rows: &Rows<'_>, column: &str) -> Result<Tally> {
    let s = rows.series(column)?;
    let mut t = Tally::over(rows.height());
    if is_text(s.dtype()) {
        let text = Codes::new(s)?;
        let empty = text.verdicts(str::is_empty);
        for (row, code) in text.codes.iter().enumerate() {
            match code {
                None => t.hit(rows, row, || "null".to_owned()),
                Some(c) if empty[c as usize] => t.hit(rows, row, String::new),
                Some(_) => {}
            }
        }
    } else if s.null_count() > 0 {
        for (row, null) in s.is_null().iter().enumerate() {
            if null == Some(true) {
                t.hit(rows, row, || "null".to_owned());
            }
        }
    }
    Ok(t)
}

fn in_set(rows: &Rows<'_>, column: &str, values: &[Scalar]) -> Result<Tally> {
    let s = rows.series(column)?;
    let mut t = Tally::over(rows.height());
    if is_text(s.dtype()) {
        let set: PlHashSet<&str> = values
            .iter()
            .filter_map(|v| match v {
                Scalar::Text(s) => Some(s.as_str()),
                Scalar::Number(_) => None,
            })
            .collect();
        tally_text(rows, s, |v| set.contains(v), &mut t)?;
    } else {
        let set: Vec<f64> = values
            .iter()
            .filter_map(|v| match v {
                Scalar::Number(n) => Some(*n),
                Scalar::Text(_) => None,
            })
            .collect();
        let numbers = s.cast(&DataType::Float64)?;
        for (row, v) in numbers.f64()?.iter().enumerate() {
            match v {
                None => t.missing += 1,
                Some(v) if !set.contains(&v) => t.hit(rows, row, || cell_text(s, row)),
                Some(_) => {}
            }
        }
    }
    Ok(t)
}

fn between(rows: &Rows<'_>, column: &str, bounds: Bounds) -> Result<Tally> {
    let s = rows.series(column)?;
    let mut t = Tally::over(rows.height());
    match bounds {
        Bounds::Number(min, max) => {
            let numbers = s.cast(&DataType::Float64)?;
            let outside = |v: f64| v.is_nan() || min.is_some_and(|lo| v < lo) || max.is_some_and(|hi| v > hi);
            let mut seen: Option<(f64, f64)> = None;
            for (row, v) in numbers.f64()?.iter().enumerate() {
                let Some(v) = v else {
                    t.missing += 1;
                    continue;
                };
                seen = Some(seen.map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v))));
                if outside(v) {
                    t.hit(rows, row, || cell_text(s, row));
                }
            }
            t.observed = seen.map(|(lo, hi)| format!("min {lo}, max {hi}"));
        }
        Bounds::Date(min, max) => {
            let (min, max) = (min.map(epoch_days), max.map(epoch_days));
            let mut seen: Option<(i32, i32)> = None;
            for (row, v) in s.date()?.physical().iter().enumerate() {
                let Some(v) = v else {
                    t.missing += 1;
                    continue;
                };
                seen = Some(seen.map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v))));
                if min.is_some_and(|lo| v < lo) || max.is_some_and(|hi| v > hi) {
                    t.hit(rows, row, || cell_text(s, row));
                }
            }
            t.observed = seen.map(|(lo, hi)| format!("min {}, max {}", date_text(lo), date_text(hi)));
        }
    }
    Ok(t)
}

fn unique(rows: &Rows<'_>, columns: &[String]) -> Result<Tally> {
    let key = rows.df.select(columns.iter().map(String::as_str))?;
    let mut t = Tally::over(rows.height());
    if distinct_hashes(&key)? {
        return Ok(t);
    }
    let duplicated = key.is_duplicated()?;
    for (row, dup) in duplicated.iter().enumerate() {
        if dup == Some(true) {
            t.hit(rows, row, || {
                key.columns()
                    .iter()
                    .map(|c| cell_text(c.as_materialized_series(), row))
                    .collect::<Vec<_>>()
                    .join(", ")
            });
        }
    }
    Ok(t)
}

/// Whether every row of `key` hashes differently, which proves the rows
/// distinct. The usual case (a unique key) then costs a hash and a sort
/// instead of polars' exact group-by on row-encoded keys, which is several
/// times slower on 1M rows; any shared hash falls back to the exact check.
fn distinct_hashes(key: &DataFrame) -> Result<bool> {
    let seed = PlSeedableRandomStateQuality::seed_from_u64(0);
    let mut hashes = Vec::with_capacity(key.height());
    let mut columns = key.columns().iter();
    if let Some(first) = columns.next() {
        first.vec_hash(seed.clone(), &mut hashes)?;
    }
    for c in columns {
        c.vec_hash_combine(seed.clone(), &mut hashes)?;
    }
    hashes.sort_unstable();
    Ok(hashes.windows(2).all(|w| w[0] != w[1]))
}

fn matches_pattern(rows: &Rows<'_>, column: &str, pattern: &str) -> Result<Tally> {
    let regex = Regex::new(pattern).with_context(|| format!("compiling pattern {pattern:?}"))?;
    let mut t = Tally::over(rows.height());
    tally_text(rows, rows.series(column)?, |v| regex.is_match(v), &mut t)?;
    Ok(t)
}

/// Tallies a text column against `expected`, decided once per distinct
/// value: null and empty text are missing, the rest expected or not.
fn tally_text(rows: &Rows<'_>, s: &Series, expected: impl Fn(&str) -> bool, t: &mut Tally) -> Result<()> {
    let text = Codes::new(s)?;
    let verdict = text.verdicts(|v| match v {
        "" => Verdict::Missing,
        v if expected(v) => Verdict::Expected,
        _ => Verdict::Unexpected,
    });
    for (row, code) in text.codes.iter().enumerate() {
        match code.map(|c| (c, verdict[c as usize])) {
            None | Some((_, Verdict::Missing)) => t.missing += 1,
            Some((c, Verdict::Unexpected)) => t.hit(rows, row, || text.text(c).to_owned()),
            Some((_, Verdict::Expected)) => {}
        }
    }
    Ok(())
}

fn row_count_between(rows: &Rows<'_>, min: Option<u64>, max: Option<u64>) -> Tally {
    // Elements are the rows, but the table is what is unexpected (count 0
    // or 1, percent 0 or 100: see `Tally::into_result`).
    let n = rows.height();
    let mut t = Tally::over(n);
    if min.is_some_and(|lo| n < lo) || max.is_some_and(|hi| n > hi) {
        t.unexpected = 1;
    }
    t.observed = Some(format!("{n} rows"));
    t
}

/// One pass over the rows in order: each customer's first non-null value
/// per column is remembered, and any later different value marks the
/// customer (an example is its first change, with where the first value
/// was read). Every row of a marked customer is unexpected.
fn constant_per_customer(rows: &Rows<'_>, columns: &[String]) -> Result<Tally> {
    const NONE: usize = usize::MAX;
    let customers = Codes::new(rows.series(CUSTOMER_COLUMN)?)?;
    let series: Vec<&Series> = columns.iter().map(|c| rows.series(c)).collect::<Result<_>>()?;
    let keys: Vec<Keys<'_>> = series.iter().map(|s| Keys::new(s)).collect::<Result<_>>()?;
    let mut iters: Vec<_> = keys.iter().map(Keys::iter).collect();
    // Null customers share the last slot.
    let n = customers.len() + 1;
    let k = columns.len();
    let mut row_count = vec![0u64; n];
    let mut first = vec![NONE; n * k];
    let mut first_key = vec![0u64; n * k];
    let mut varies = vec![false; n * k];
    let mut bad = vec![false; n];
    let mut examples = Vec::new();
    for (row, customer) in customers.codes.iter().enumerate() {
        let c = customer.map_or(n - 1, |c| c as usize);
        row_count[c] += 1;
        let mut changed = None;
        for (j, keys) in iters.iter_mut().enumerate() {
            let Some(key) = keys.next().flatten() else {
                continue;
            };
            let slot = c * k + j;
            if first[slot] == NONE {
                (first[slot], first_key[slot]) = (row, key);
            } else if first_key[slot] != key {
                varies[slot] = true;
                changed = changed.or(Some(j));
            }
        }
        if let Some(j) = changed {
            if !bad[c] && examples.len() < MAX_EXAMPLES {
                let r0 = first[c * k + j];
                let value = format!(
                    "customer {}: {} {} (was {} at {}:{})",
                    customer.map_or("null", |c| customers.text(c)),
                    columns[j],
                    cell_text(series[j], row),
                    cell_text(series[j], r0),
                    rows.file(r0),
                    rows.line.get(r0).unwrap_or_default()
                );
                examples.push(rows.example(row, value));
            }
            bad[c] = true;
        }
    }

    let mut t = Tally::over(rows.height());
    t.unexpected = (0..n).filter(|&c| bad[c]).map(|c| row_count[c]).sum();
    let per_column: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(j, name)| {
            let customers = (0..n).filter(|&c| varies[c * k + j]).count();
            format!("{name}: {customers}")
        })
        .collect();
    t.observed = Some(format!(
        "{} customer(s) with more than one value ({})",
        bad.iter().filter(|b| **b).count(),
        per_column.join(", ")
    ));
    t.examples = examples;
    Ok(t)
}

/// Whether a column holds text: String, or Categorical (the stage passes
/// its text columns that way: a code per row over few distinct values).
fn is_text(dtype: &DataType) -> bool {
    matches!(dtype, DataType::String | DataType::Categorical(..))
}

/// What a value-only check says of one distinct value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Expected,
    Unexpected,
    /// Empty text: null.
    Missing,
}

/// A text column as a code per row (null stays null) and the text of each
/// code, so that a check of the value alone runs once per distinct value.
struct Codes<'a> {
    codes: UInt32Chunked,
    texts: Texts<'a>,
}

enum Texts<'a> {
    /// Built from a String column.
    Listed(Vec<&'a str>),
    /// A Categorical column's own mapping.
    Mapping(&'a CategoricalMapping),
}

impl<'a> Codes<'a> {
    fn new(s: &'a Series) -> Result<Self> {
        match s.dtype() {
            DataType::Categorical(_, mapping) => {
                let codes = s.to_physical_repr().cast(&DataType::UInt32)?.u32()?.clone();
                Ok(Self {
                    codes,
                    texts: Texts::Mapping(mapping),
                })
            }
            _ => {
                let mut index: PlHashMap<&'a str, u32> = PlHashMap::new();
                let mut listed = Vec::new();
                let codes = s
                    .str()?
                    .iter()
                    .map(|v| {
                        v.map(|v| {
                            *index.entry(v).or_insert_with(|| {
                                listed.push(v);
                                (listed.len() - 1) as u32
                            })
                        })
                    })
                    .collect();
                Ok(Self {
                    codes,
                    texts: Texts::Listed(listed),
                })
            }
        }
    }

    /// Number of codes (an upper bound for a Categorical mapping).
    fn len(&self) -> usize {
        match &self.texts {
            Texts::Listed(v) => v.len(),
            Texts::Mapping(m) => m.num_cats_upper_bound(),
        }
    }

    fn text(&self, code: u32) -> &'a str {
        match &self.texts {
            Texts::Listed(v) => v.get(code as usize).copied().unwrap_or_default(),
            Texts::Mapping(m) => m.cat_to_str(code).unwrap_or_default(),
        }
    }

    /// `f` of every code's text, indexed by code.
    fn verdicts<V>(&self, f: impl Fn(&str) -> V) -> Vec<V> {
        (0..self.len()).map(|c| f(self.text(c as u32))).collect()
    }
}

/// A column's values as comparable keys: text codes (empty text is null),
/// or the bits of the value as a number.
enum Keys<'a> {
    Text(Codes<'a>, Vec<bool>),
    Number(Float64Chunked),
}

impl<'a> Keys<'a> {
    fn new(s: &'a Series) -> Result<Self> {
        if is_text(s.dtype()) {
            let codes = Codes::new(s)?;
            let empty = codes.verdicts(str::is_empty);
            Ok(Keys::Text(codes, empty))
        } else {
            Ok(Keys::Number(
                s.to_physical_repr().cast(&DataType::Float64)?.f64()?.clone(),
            ))
        }
    }

    fn iter(&self) -> Box<dyn Iterator<Item = Option<u64>> + '_> {
        match self {
            Keys::Text(codes, empty) => Box::new(
                codes
                    .codes
                    .iter()
                    .map(|c| c.filter(|c| !empty[*c as usize]).map(u64::from)),
            ),
            Keys::Number(values) => Box::new(values.iter().map(|v| v.map(f64::to_bits))),
        }
    }
}

const EPOCH: NaiveDate = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");

fn epoch_days(d: NaiveDate) -> i32 {
    (d - EPOCH).num_days() as i32
}

fn date_text(days: i32) -> String {
    EPOCH
        .checked_add_signed(chrono::TimeDelta::days(days.into()))
        .map_or_else(|| format!("day {days}"), |d| d.to_string())
}

/// A cell as text for an example: strings as they are, dates ISO, null as
/// `null`.
fn cell_text(s: &Series, row: usize) -> String {
    match s.get(row) {
        Ok(AnyValue::Null) => "null".to_owned(),
        Ok(v @ (AnyValue::Categorical(..) | AnyValue::CategoricalOwned(..))) => {
            v.get_str().unwrap_or_default().to_owned()
        }
        Ok(AnyValue::String(v)) => v.to_owned(),
        Ok(AnyValue::StringOwned(v)) => v.to_string(),
        Ok(AnyValue::Date(days)) => date_text(days),
        Ok(v) => v.to_string(),
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use revspend_core::contract::COLUMNS;
    use revspend_core::features::KNOWN_GROUPS;

    use super::*;

    /// A staged frame: every row read from `a.csv`, row `i` at line `i + 2`
    /// (line 1 is the header), plus the given columns.
    fn staged(columns: Vec<Column>) -> DataFrame {
        let n = columns.first().map_or(0, Column::len);
        let mut all = vec![
            Column::new(FILE_COLUMN.into(), vec!["a.csv"; n]),
            Column::new(
                LINE_COLUMN.into(),
                (0..n as u64).map(|i| i + 2).collect::<Vec<_>>(),
            ),
        ];
        all.extend(columns);
        DataFrame::new(n, all).expect("frame")
    }

    fn header(file: &str) -> FileHeader {
        FileHeader {
            file: file.into(),
            columns: COLUMNS.iter().map(|c| c.to_string()).collect(),
        }
    }

    fn suite(yaml: &str) -> Suite {
        Suite::from_yaml(yaml).expect("suite parses")
    }

    /// Runs a one-expectation suite and returns its result, after checking
    /// that the same table with its text columns Categorical (as the stage
    /// passes them) gives the same result.
    fn one(yaml: &str, df: &DataFrame) -> ExpectationResult {
        let report = run_suite(&suite(yaml), df, &[header("a.csv")]).expect("suite runs");
        assert_eq!(report.results.len(), 1);
        let coded = run_suite(&suite(yaml), &categorical(df), &[header("a.csv")]).expect("suite runs");
        assert_eq!(
            serde_json::to_value(&coded).expect("json"),
            serde_json::to_value(&report).expect("json"),
            "String and Categorical text columns disagree"
        );
        report.results.into_iter().next().expect("one result")
    }

    /// `df` with every String column cast to Categorical.
    fn categorical(df: &DataFrame) -> DataFrame {
        let columns = df
            .columns()
            .iter()
            .map(|c| match c.dtype() {
                DataType::String => c
                    .cast(&DataType::from_categories(Categories::random(
                        "test".into(),
                        CategoricalPhysical::U32,
                    )))
                    .expect("cast to Categorical"),
                _ => c.clone(),
            })
            .collect();
        DataFrame::new(df.height(), columns).expect("frame")
    }

    fn lines(r: &ExpectationResult) -> Vec<u64> {
        r.examples.iter().map(|e| e.line).collect()
    }

    fn values(r: &ExpectationResult) -> Vec<&str> {
        r.examples.iter().map(|e| e.value.as_str()).collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    fn strings(name: &str, v: &[Option<&str>]) -> Column {
        Column::new(name.into(), v.to_vec())
    }

    fn ints(name: &str, v: &[Option<i32>]) -> Column {
        Column::new(name.into(), v.to_vec())
    }

    fn dates(name: &str, v: &[&str]) -> Column {
        let days: Vec<i32> = v
            .iter()
            .map(|d| epoch_days(NaiveDate::parse_from_str(d, "%Y-%m-%d").expect("date")))
            .collect();
        Column::new(name.into(), days)
            .cast(&DataType::Date)
            .expect("date column")
    }

    const COLUMNS_IN_ORDER: &str = "
expectations:
  - expect: columns_in_order
    columns: [id, safra_abertura, cidade, estado, idade, sexo, limite_total, limite_disp, data,
              ' valor ', grupo_estabelecimento, cidade_estabelecimento, pais_estabelecimento]
";

    #[test]
    fn columns_in_order_checks_every_file_header() {
        let df = staged(vec![ints("idade", &[Some(30)])]);
        let mut renamed = header("b.csv");
        renamed.columns[9] = "valor".into();
        let mut short = header("c.csv");
        short.columns.pop();
        let headers = [header("a.csv"), renamed, short, header("d.csv")];

        let report = run_suite(&suite(COLUMNS_IN_ORDER), &df, &headers).expect("runs");
        let r = &report.results[0];
        assert!(!r.success);
        assert_eq!((r.element_count, r.unexpected_count), (4, 2));
        assert!(close(r.unexpected_percent, 50.0));
        assert_eq!(r.examples.len(), 2);
        assert_eq!((r.examples[0].file.as_str(), r.examples[0].line), ("b.csv", 1));
        assert_eq!(
            r.examples[0].value,
            r#"column 10: expected " valor ", found "valor""#
        );
        assert_eq!(r.examples[1].file, "c.csv");
        assert_eq!(
            r.examples[1].value,
            r#"column 13: expected "pais_estabelecimento", found nothing"#
        );

        let report = run_suite(&suite(COLUMNS_IN_ORDER), &df, &[header("a.csv")]).expect("runs");
        assert!(report.success && report.results[0].success);
        assert_eq!(report.results[0].unexpected_count, 0);
    }

    #[test]
    fn not_null_counts_nulls_and_empty_strings() {
        let df = staged(vec![
            strings("cidade", &[Some("RECIFE"), None, Some(""), Some("NATAL")]),
            ints("idade", &[Some(30), Some(40), None, Some(50)]),
        ]);
        let r = one("expectations: [{expect: not_null, column: cidade}]", &df);
        assert!(!r.success);
        assert_eq!((r.element_count, r.unexpected_count, r.missing_count), (4, 2, 0));
        assert!(close(r.unexpected_percent, 50.0));
        assert_eq!(lines(&r), [3, 4]);
        assert_eq!(values(&r), ["null", ""]);
        assert_eq!(r.expectation, "not_null(cidade)");
        assert_eq!(r.examples[0].file, "a.csv");

        let r = one("expectations: [{expect: not_null, column: idade}]", &df);
        assert_eq!(r.unexpected_count, 1);
        assert_eq!(lines(&r), [4]);

        let ok = staged(vec![strings("cidade", &[Some("RECIFE")])]);
        let r = one("expectations: [{expect: not_null, column: cidade}]", &ok);
        assert!(r.success);
        assert_eq!(r.unexpected_count, 0);
    }

    #[test]
    fn in_set_skips_nulls_and_reports_the_other_values() {
        let df = staged(vec![
            strings(
                "sexo",
                &[Some("F"), Some("M"), Some("X"), None, Some(""), Some("F")],
            ),
            ints(
                "safra_abertura",
                &[Some(201901), Some(201902), None, Some(201903), None, None],
            ),
        ]);
        let r = one(
            "expectations: [{expect: in_set, column: sexo, values: [F, M]}]",
            &df,
        );
        assert!(!r.success);
        assert_eq!((r.element_count, r.missing_count, r.unexpected_count), (6, 2, 1));
        assert!(close(r.unexpected_percent, 25.0));
        assert_eq!(values(&r), ["X"]);
        assert_eq!(lines(&r), [4]);

        let r = one(
            "expectations: [{expect: in_set, column: sexo, values: [F, M, X]}]",
            &df,
        );
        assert!(r.success);

        let r = one(
            "expectations: [{expect: in_set, column: safra_abertura, values: [201901, 201902]}]",
            &df,
        );
        assert_eq!((r.missing_count, r.unexpected_count), (3, 1));
        assert_eq!(values(&r), ["201903"]);
        assert_eq!(lines(&r), [5]);
    }

    #[test]
    fn between_checks_numbers_and_dates() {
        let df = staged(vec![
            ints("idade", &[Some(10), Some(20), Some(120), None, Some(110)]),
            dates(
                "data",
                &[
                    "2020-01-01",
                    "2019-12-31",
                    "2020-06-30",
                    "2020-07-01",
                    "2020-03-01",
                ],
            ),
        ]);
        let r = one(
            "expectations: [{expect: between, column: idade, min: 16, max: 110}]",
            &df,
        );
        assert!(!r.success);
        assert_eq!((r.element_count, r.missing_count, r.unexpected_count), (5, 1, 2));
        assert!(close(r.unexpected_percent, 50.0));
        assert_eq!(values(&r), ["10", "120"]);
        assert_eq!(lines(&r), [2, 4]);
        assert_eq!(r.observed.as_deref(), Some("min 10, max 120"));

        let r = one("expectations: [{expect: between, column: idade, max: 200}]", &df);
        assert!(r.success);

        let r = one(
            "expectations: [{expect: between, column: data, min: 2020-01-01, max: '2020-06-30'}]",
            &df,
        );
        assert_eq!(r.unexpected_count, 2);
        assert_eq!(values(&r), ["2019-12-31", "2020-07-01"]);
        assert_eq!(lines(&r), [3, 5]);
    }

    #[test]
    fn unique_flags_every_row_of_a_repeated_key() {
        let mut df = staged(vec![ints("idade", &[Some(1), Some(2), Some(3), Some(4)])]);
        // Lines 2, 3, 3, 5: the two rows at line 3 collide.
        df.replace(LINE_COLUMN, Column::new(LINE_COLUMN.into(), [2u64, 3, 3, 5]))
            .expect("replace");
        let r = one("expectations: [{expect: unique, columns: [file, line]}]", &df);
        assert!(!r.success);
        assert_eq!((r.element_count, r.unexpected_count), (4, 2));
        assert!(close(r.unexpected_percent, 50.0));
        assert_eq!(values(&r), ["a.csv, 3", "a.csv, 3"]);
        assert_eq!(lines(&r), [3, 3]);
        assert_eq!(r.expectation, "unique(file, line)");

        let r = one("expectations: [{expect: unique, columns: [file, idade]}]", &df);
        assert!(r.success);
    }

    #[test]
    fn matches_pattern_is_a_search_skipping_nulls() {
        let df = staged(vec![strings(
            "estado",
            &[
                Some("SP"),
                Some("sp"),
                Some(""),
                Some("S P"),
                Some("RJ"),
                Some("xSPx"),
            ],
        )]);
        let r = one(
            r#"expectations: [{expect: matches_pattern, column: estado, pattern: "^[A-Z]{2}$"}]"#,
            &df,
        );
        assert!(!r.success);
        assert_eq!((r.element_count, r.missing_count, r.unexpected_count), (6, 1, 3));
        assert!(close(r.unexpected_percent, 60.0));
        assert_eq!(values(&r), ["sp", "S P", "xSPx"]);
        assert_eq!(lines(&r), [3, 5, 7]);

        // Unanchored: a search, so "xSPx" matches.
        let r = one(
            r#"expectations: [{expect: matches_pattern, column: estado, pattern: "[A-Z]{2}"}]"#,
            &df,
        );
        assert_eq!(values(&r), ["sp", "S P"]);
    }

    #[test]
    fn row_count_between_counts_the_table() {
        let df = staged(vec![ints("idade", &[Some(1), Some(2), Some(3)])]);
        let r = one("expectations: [{expect: row_count_between, min: 1, max: 3}]", &df);
        assert!(r.success);
        assert_eq!((r.element_count, r.unexpected_count), (3, 0));
        assert!(close(r.unexpected_percent, 0.0));
        assert_eq!(r.observed.as_deref(), Some("3 rows"));

        let r = one("expectations: [{expect: row_count_between, min: 5}]", &df);
        assert!(!r.success);
        assert_eq!(r.unexpected_count, 1);
        assert!(close(r.unexpected_percent, 100.0));

        let empty = staged(vec![ints("idade", &[])]);
        let r = one("expectations: [{expect: row_count_between, min: 1}]", &empty);
        assert!(!r.success);
    }

    #[test]
    fn constant_per_customer_flags_all_rows_of_a_changing_customer() {
        let df = staged(vec![
            strings(
                CUSTOMER_COLUMN,
                &[
                    Some("c1"),
                    Some("c2"),
                    Some("c1"),
                    Some("c2"),
                    Some("c3"),
                    Some("c3"),
                    Some("c3"),
                ],
            ),
            strings(
                "sexo",
                &[
                    Some("F"),
                    Some("F"),
                    Some("F"),
                    Some("M"),
                    Some("M"),
                    None,
                    Some(""),
                ],
            ),
            ints(
                "idade",
                &[Some(30), Some(40), Some(30), Some(40), Some(50), None, Some(50)],
            ),
        ]);
        let r = one(
            "expectations: [{expect: constant_per_customer, columns: [sexo, idade]}]",
            &df,
        );
        assert!(!r.success);
        assert_eq!((r.element_count, r.unexpected_count), (7, 2));
        assert!(close(r.unexpected_percent, 100.0 * 2.0 / 7.0));
        assert_eq!(lines(&r), [5]);
        assert_eq!(values(&r), ["customer c2: sexo M (was F at a.csv:3)"]);
        assert_eq!(
            r.observed.as_deref(),
            Some("1 customer(s) with more than one value (sexo: 1, idade: 0)")
        );

        let r = one(
            "expectations: [{expect: constant_per_customer, columns: [idade]}]",
            &df,
        );
        assert!(r.success);
        assert_eq!(r.unexpected_count, 0);
        assert!(r.examples.is_empty());
    }

    #[test]
    fn examples_stop_at_five_but_the_count_does_not() {
        let df = staged(vec![strings("sexo", &[None; 8])]);
        let r = one("expectations: [{expect: not_null, column: sexo}]", &df);
        assert_eq!(r.unexpected_count, 8);
        assert_eq!(lines(&r), [2, 3, 4, 5, 6]);
    }

    #[test]
    fn mostly_turns_a_small_failure_into_a_success() {
        let mut sexo = vec![Some("F"); 98];
        sexo.extend([None, Some("")]);
        let df = staged(vec![strings("sexo", &sexo)]);
        let strict = one("expectations: [{expect: not_null, column: sexo}]", &df);
        assert!(!strict.success);
        let lenient = one(
            "expectations: [{expect: not_null, column: sexo, mostly: 0.98}]",
            &df,
        );
        assert!(lenient.success);
        assert_eq!(lenient.unexpected_count, 2);
        assert!(close(lenient.unexpected_percent, 2.0));
        assert_eq!(lenient.examples.len(), 2);
        let stricter = one(
            "expectations: [{expect: not_null, column: sexo, mostly: 0.99}]",
            &df,
        );
        assert!(!stricter.success);
    }

    #[test]
    fn every_expectation_runs_after_an_error_failure() {
        let df = staged(vec![
            strings("sexo", &[Some("X"), Some("F")]),
            ints("idade", &[Some(200), Some(30)]),
        ]);
        let yaml = "
expectations:
  - {expect: in_set, column: sexo, values: [F, M]}
  - {expect: between, column: idade, min: 16, max: 110, severity: warn}
  - {expect: row_count_between, min: 10}
  - {expect: not_null, column: sexo}
";
        let report = run_suite(&suite(yaml), &df, &[header("a.csv")]).expect("runs");
        assert!(!report.success);
        assert_eq!(report.results.len(), 4);
        let ok: Vec<bool> = report.results.iter().map(|r| r.success).collect();
        assert_eq!(ok, [false, false, false, true]);
        let ids = |s| {
            report
                .failed(s)
                .iter()
                .map(|r| r.expectation.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(Severity::Error), ["in_set(sexo)", "row_count_between"]);
        assert_eq!(ids(Severity::Warn), ["between(idade)"]);
        assert_eq!(
            (
                report.statistics.failed_error,
                report.statistics.failed_warn,
                report.statistics.successful
            ),
            (2, 1, 1)
        );

        let message = format!("{:#}", report.ensure_success().expect_err("errors fail"));
        assert!(message.contains("expectations[0] in_set(sexo)"), "{message}");
        assert!(
            message.contains("expectations[2] row_count_between: 2 rows, expected between 10 and -"),
            "{message}"
        );
        assert!(!message.contains("between(idade)"), "{message}");
    }

    #[test]
    fn warn_failures_alone_pass() {
        let df = staged(vec![ints("idade", &[Some(200)])]);
        let report = run_suite(
            &suite("expectations: [{expect: between, column: idade, max: 110, severity: warn}]"),
            &df,
            &[],
        )
        .expect("runs");
        assert!(report.success);
        assert_eq!(report.failed(Severity::Warn).len(), 1);
        report.ensure_success().expect("warnings do not fail");
    }

    #[test]
    fn report_serialises_to_json() {
        let df = staged(vec![strings("sexo", &[Some("X")])]);
        let report = run_suite(
            &suite("expectations: [{expect: in_set, column: sexo, values: [F, M], severity: warn}]"),
            &df,
            &[],
        )
        .expect("runs");
        let json = serde_json::to_value(&report).expect("json");
        let r = &json["results"][0];
        assert_eq!(r["expectation"], "in_set(sexo)");
        assert_eq!(r["kind"], "in_set");
        assert_eq!(r["severity"], "warn");
        assert_eq!(r["unexpected_count"], 1);
        assert_eq!(r["examples"][0]["file"], "a.csv");
        assert_eq!(r["examples"][0]["line"], 2);
        assert_eq!(r["config"]["expect"], "in_set");

        // Whole-number bounds read back as written.
        let between = suite("expectations: [{expect: between, column: idade, min: 16, max: 110.5}]");
        let json = serde_json::to_value(&between.expectations[0]).expect("json");
        assert_eq!(json["min"], serde_json::json!(16));
        assert_eq!(json["max"], serde_json::json!(110.5));
        assert_eq!(json["severity"], "error");
        assert!(json.get("mostly").is_none());
    }

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

    #[test]
    fn run_suite_lists_every_column_that_does_not_fit() {
        let df = staged(vec![strings("sexo", &[Some("F")]), ints("idade", &[Some(30)])]);
        let yaml = "
expectations:
  - {expect: not_null, column: sex}
  - {expect: matches_pattern, column: idade, pattern: '^1'}
  - {expect: between, column: idade, min: 2020-01-01}
  - {expect: in_set, column: sexo, values: [1, 2]}
  - {expect: not_null, column: idade}
";
        let message = format!("{:#}", run_suite(&suite(yaml), &df, &[]).expect_err("misfit"));
        assert!(
            message.contains("expectations[0] (not_null(sex)): no column `sex`"),
            "{message}"
        );
        assert!(message.contains("expectations[1]"), "{message}");
        assert!(message.contains("expectations[2]"), "{message}");
        assert!(message.contains("expectations[3]"), "{message}");
        assert!(!message.contains("expectations[4]"), "{message}");
    }

    const SHIPPED: &str = include_str!("../../../config/quality.yaml");

    /// Rows like the generator's: a few customers with constant profiles,
    /// an empty group, a missing amount, a purchase abroad.
    fn generated_like(n: usize, customers: usize) -> DataFrame {
        let groups: Vec<&str> = (0..n)
            .map(|i| {
                if i % 97 == 5 {
                    ""
                } else {
                    KNOWN_GROUPS[i % KNOWN_GROUPS.len()]
                }
            })
            .collect();
        let customer: Vec<String> = (0..n).map(|i| format!("customer-{:08}", i % customers)).collect();
        let profile = |i: usize| i % customers % 60;
        let data: Vec<String> = (0..n)
            .map(|i| format!("2020-0{}-{:02}", 1 + i % 6, 1 + i % 28))
            .collect();
        let data: Vec<&str> = data.iter().map(String::as_str).collect();
        staged(vec![
            Column::new(CUSTOMER_COLUMN.into(), customer),
            ints(
                "safra_abertura",
                &(0..n)
                    .map(|i| Some(201501 + profile(i) as i32))
                    .collect::<Vec<_>>(),
            ),
            Column::new("cidade".into(), vec!["SÃO PAULO"; n]),
            Column::new("estado".into(), vec!["SP"; n]),
            ints(
                "idade",
                &(0..n).map(|i| Some(18 + profile(i) as i32)).collect::<Vec<_>>(),
            ),
            Column::new(
                "sexo".into(),
                (0..n)
                    .map(|i| if profile(i) % 2 == 0 { "F" } else { "M" })
                    .collect::<Vec<_>>(),
            ),
            Column::new("limite_total".into(), vec![5000.0; n]),
            Column::new(
                "limite_disp".into(),
                (0..n).map(|i| 5500.0 - i as f64).collect::<Vec<_>>(),
            ),
            dates("data", &data),
            Column::new(
                "valor".into(),
                (0..n).map(|i| (i % 300 != 7).then_some(12.5)).collect::<Vec<_>>(),
            ),
            Column::new("grupo_estabelecimento".into(), groups),
            Column::new("cidade_estabelecimento".into(), vec!["SAO PAULO"; n]),
            Column::new(
                "pais_estabelecimento".into(),
                (0..n)
                    .map(|i| if i % 150 == 3 { "US" } else { "BR" })
                    .collect::<Vec<_>>(),
            ),
        ])
    }

    #[test]
    fn shipped_suite_loads_and_passes_on_generated_like_data() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/quality.yaml");
        let suite = load_suite(&path).expect("shipped suite loads");
        assert_eq!(suite, Suite::from_yaml(SHIPPED).expect("parses"));
        // The derived Deserialize reads the same suite.
        assert_eq!(
            suite,
            serde_norway::from_str::<Suite>(SHIPPED).expect("derived parse")
        );

        // The header expectation is the contract's, and the group set is core's.
        let contract_header = suite.expectations.iter().find_map(|e| match e {
            Expectation::ColumnsInOrder { columns, .. } => Some(columns.clone()),
            _ => None,
        });
        assert_eq!(
            contract_header,
            Some(COLUMNS.iter().map(|c| c.to_string()).collect())
        );
        let groups = suite.expectations.iter().find_map(|e| match e {
            Expectation::InSet { column, values, .. } if column == "grupo_estabelecimento" => {
                Some(values.clone())
            }
            _ => None,
        });
        let known: Vec<Scalar> = KNOWN_GROUPS.iter().map(|g| Scalar::Text(g.to_string())).collect();
        assert_eq!(groups, Some(known));

        let report = run_suite(
            &suite,
            &generated_like(3000, 50),
            &[header("a.csv"), header("b.csv")],
        )
        .expect("runs");
        let failed: Vec<_> = report
            .results
            .iter()
            .filter(|r| !r.success)
            .map(|r| &r.expectation)
            .collect();
        assert!(failed.is_empty(), "{failed:?}");
        assert!(report.success);
    }

    /// Timing over 1M rows, not an assertion: run with
    /// `cargo test --release -p build-features --lib quality -- --ignored --nocapture`.
    #[test]
    #[ignore = "timing"]
    fn shipped_suite_on_a_million_rows() {
        let suite = Suite::from_yaml(SHIPPED).expect("parses");
        let df = generated_like(1_000_000, 20_000);
        let start = std::time::Instant::now();
        let report = run_suite(&suite, &df, &[header("a.csv")]).expect("runs");
        eprintln!("suite over {} rows: {:?}", df.height(), start.elapsed());
        for e in &suite.expectations {
            let one = Suite {
                expectations: vec![e.clone()],
            };
            let start = std::time::Instant::now();
            run_suite(&one, &df, &[header("a.csv")]).expect("runs");
            eprintln!("  {:45} {:?}", e.id(), start.elapsed());
        }
        assert!(report.success);
    }
}
