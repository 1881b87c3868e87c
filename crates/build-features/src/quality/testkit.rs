//! Small staged tables and one-expectation runs shared by the suite's unit tests.

use chrono::NaiveDate;
use polars::prelude::*;
use revspend_core::contract::COLUMNS;

use super::codes::epoch_days;
use super::{ExpectationResult, FILE_COLUMN, FileHeader, LINE_COLUMN, Suite, run_suite};

/// A staged frame: every row read from `a.csv`, row `i` at line `i + 2`
/// (line 1 is the header), plus the given columns.
pub(super) fn staged(columns: Vec<Column>) -> DataFrame {
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

pub(super) fn header(file: &str) -> FileHeader {
    FileHeader {
        file: file.into(),
        columns: COLUMNS.iter().map(|c| c.to_string()).collect(),
    }
}

pub(super) fn suite(yaml: &str) -> Suite {
    Suite::from_yaml(yaml).expect("suite parses")
}

/// Runs a one-expectation suite and returns its result, after checking
/// that the same table with its text columns Categorical (as the stage
/// passes them) gives the same result.
pub(super) fn one(yaml: &str, df: &DataFrame) -> ExpectationResult {
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
pub(super) fn categorical(df: &DataFrame) -> DataFrame {
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

pub(super) fn lines(r: &ExpectationResult) -> Vec<u64> {
    r.examples.iter().map(|e| e.line).collect()
}

pub(super) fn values(r: &ExpectationResult) -> Vec<&str> {
    r.examples.iter().map(|e| e.value.as_str()).collect()
}

pub(super) fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

pub(super) fn strings(name: &str, v: &[Option<&str>]) -> Column {
    Column::new(name.into(), v.to_vec())
}

pub(super) fn ints(name: &str, v: &[Option<i32>]) -> Column {
    Column::new(name.into(), v.to_vec())
}

pub(super) fn dates(name: &str, v: &[&str]) -> Column {
    let days: Vec<i32> = v
        .iter()
        .map(|d| epoch_days(NaiveDate::parse_from_str(d, "%Y-%m-%d").expect("date")))
        .collect();
    Column::new(name.into(), days)
        .cast(&DataType::Date)
        .expect("date column")
}
