//! What one expectation looks at and what it found: the staged rows with
//! the lineage (file, line) of each, for examples, and the tally of
//! elements, missing and unexpected values an expectation builds and the
//! runner turns into its result. The checks and the runner both use them.

use anyhow::{Context, Result};
use polars::prelude::*;

use super::codes::is_text;
use super::report::{Example, ExpectationResult};
use super::{Expectation, FILE_COLUMN, Kind, LINE_COLUMN, MAX_EXAMPLES};

/// The staged table with the lineage of each row, for examples.
pub(super) struct Rows<'a> {
    pub(super) df: &'a DataFrame,
    /// String or Categorical (see [`is_text`]).
    pub(super) file: &'a Column,
    pub(super) line: &'a UInt64Chunked,
}

impl<'a> Rows<'a> {
    pub(super) fn new(df: &'a DataFrame) -> Result<Self> {
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

    pub(super) fn height(&self) -> u64 {
        self.df.height() as u64
    }

    pub(super) fn series(&self, name: &str) -> Result<&'a Series> {
        Ok(self.df.column(name)?.as_materialized_series())
    }

    /// The file name of row `row`.
    pub(super) fn file(&self, row: usize) -> String {
        self.file
            .get(row)
            .ok()
            .and_then(|v| v.get_str().map(str::to_owned))
            .unwrap_or_default()
    }

    pub(super) fn example(&self, row: usize, value: String) -> Example {
        Example {
            value,
            file: self.file(row),
            line: self.line.get(row).unwrap_or_default(),
        }
    }
}

/// Counts gathered by one expectation.
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub(super) elements: u64,
    pub(super) missing: u64,
    pub(super) unexpected: u64,
    pub(super) examples: Vec<Example>,
    pub(super) observed: Option<String>,
}

impl Tally {
    pub(super) fn over(elements: u64) -> Self {
        Self {
            elements,
            ..Self::default()
        }
    }

    /// Counts an unexpected row; its value is rendered only while examples
    /// are still wanted.
    pub(super) fn hit(&mut self, rows: &Rows<'_>, row: usize, value: impl FnOnce() -> String) {
        self.unexpected += 1;
        if self.examples.len() < MAX_EXAMPLES {
            self.examples.push(rows.example(row, value()));
        }
    }

    pub(super) fn into_result(self, index: usize, e: &Expectation) -> ExpectationResult {
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
