//! The suite's outcome: one result per expectation, their counts, and the
//! message a failed run gives.

use anyhow::{Result, bail};
use serde::Serialize;

use super::{Expectation, Kind, Severity};

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

#[cfg(test)]
mod tests {
    use super::super::run_suite;
    use super::super::testkit::*;

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
}
