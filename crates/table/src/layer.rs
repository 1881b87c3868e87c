//! The feature layer read back one month at a time, for a reader that
//! scores or profiles new data without holding the whole layer: the
//! manifest build-features writes (`<features>/_manifest.json`: month →
//! partition path, rows, SHA-256) and each month's partition, whose bytes
//! are checked against the manifest before they are parsed.
//!
//! The manifest's types are defined here, for build-features (which writes
//! it) and the monitor alike; a manifest of another layout version is
//! refused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use polars::prelude::*;
use revspend_core::artifact::{self, TARGET_COLUMN};
use revspend_core::features::Feature;
use revspend_core::model::FeatureMatrix;
use revspend_core::schema::DATE;
use serde::{Deserialize, Serialize};

use crate::error::TableError;
use crate::parquet::read_columns_verified;

/// Layout version of the feature layer; a change makes build-features
/// rebuild it from the staged layer.
pub const FEATURE_LAYER_VERSION: u32 = 1;

/// What the feature layer holds (`<features>/_manifest.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureManifest {
    pub version: u32,
    /// Hash of everything besides the staged rows that the features depend
    /// on: the target rule, the feature definitions and the key fingerprint.
    pub fingerprint: String,
    pub months: BTreeMap<String, FeatureMonth>,
}

/// One month of the feature layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureMonth {
    pub path: String,
    pub rows: u64,
    pub sha256: String,
    /// The staged partitions of this month it was built from (path → hash).
    pub built_from: BTreeMap<String, String>,
}

/// A feature layer on disk: its months in calendar order.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureLayer {
    pub dir: PathBuf,
    pub months: Vec<LayerMonth>,
}

/// One month partition of the feature layer.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerMonth {
    /// `YYYY-MM`.
    pub key: String,
    /// The month's first day.
    pub first_day: NaiveDate,
    pub path: PathBuf,
    pub rows: u64,
    pub sha256: String,
}

/// One month's rows, as a model scores them.
#[derive(Debug, Clone)]
pub struct MonthRows {
    /// Purchase date of each row.
    pub dates: Vec<NaiveDate>,
    /// The requested features, row-major in the requested order.
    pub x: FeatureMatrix,
    /// The target of each row (known once the row's available limit is).
    pub labels: Vec<bool>,
}

/// Opens the feature layer in `dir` (reads and checks its manifest).
pub fn open_feature_layer(dir: &Path) -> Result<FeatureLayer, TableError> {
    let path = dir.join("_manifest.json");
    let manifest: FeatureManifest = artifact::read_json(&path)?;
    if manifest.version != FEATURE_LAYER_VERSION {
        return Err(TableError::Manifest {
            path,
            reason: format!(
                "layout version {}, this build reads {FEATURE_LAYER_VERSION}: rerun build-features",
                manifest.version
            ),
        });
    }
    let mut months = Vec::with_capacity(manifest.months.len());
    for (key, m) in manifest.months {
        let first_day = NaiveDate::parse_from_str(&format!("{key}-01"), "%Y-%m-%d").map_err(|_| {
            TableError::Manifest {
                path: path.clone(),
                reason: format!("month `{key}` is not YYYY-MM"),
            }
        })?;
        // The manifest names files inside the layer only.
        if Path::new(&m.path).is_absolute() || m.path.split('/').any(|part| part == "..") {
            return Err(TableError::Manifest {
                path: path.clone(),
                reason: format!("month `{key}`: partition path `{}` leaves the layer", m.path),
            });
        }
        months.push(LayerMonth {
            key,
            first_day,
            path: dir.join(&m.path),
            rows: m.rows,
            sha256: m.sha256,
        });
    }
    Ok(FeatureLayer {
        dir: dir.to_owned(),
        months,
    })
}

/// Reads one month partition (checked against its recorded SHA-256 and row
/// count): dates, the requested features (Float64; a null is an error
/// naming the column) and labels.
pub fn read_month(month: &LayerMonth, features: &[Feature]) -> Result<MonthRows, TableError> {
    let path = &month.path;
    let mut expected: Vec<(&str, DataType)> =
        vec![(DATE, DataType::Date), (TARGET_COLUMN, DataType::Boolean)];
    expected.extend(features.iter().map(|f| (f.name(), DataType::Float64)));
    let df = read_columns_verified(path, &expected, &month.sha256)?;
    let pq = |source| TableError::Parquet {
        path: path.clone(),
        source,
    };
    let rows = df.height();
    if rows as u64 != month.rows {
        return Err(TableError::Manifest {
            path: path.clone(),
            reason: format!("{rows} rows, the manifest records {}", month.rows),
        });
    }
    let dates = df
        .column(DATE)
        .map_err(pq)?
        .date()
        .map_err(pq)?
        .as_date_iter()
        .enumerate()
        .map(|(i, d)| {
            d.ok_or_else(|| TableError::ColumnType {
                path: path.clone(),
                column: DATE.to_owned(),
                expected: "a date on every row".into(),
                got: format!("null at row {i}"),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let p = features.len();
    let mut values = vec![0f64; rows * p];
    for (j, f) in features.iter().enumerate() {
        let c = df.column(f.name()).map_err(pq)?.f64().map_err(pq)?;
        if c.null_count() > 0 {
            return Err(TableError::ColumnType {
                path: path.clone(),
                column: f.name().to_owned(),
                expected: "f64 without nulls".into(),
                got: format!("{} nulls", c.null_count()),
            });
        }
        for (i, v) in c.into_no_null_iter().enumerate() {
            values[i * p + j] = v;
        }
    }
    let labels = df
        .column(TARGET_COLUMN)
        .map_err(pq)?
        .bool()
        .map_err(pq)?
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.ok_or_else(|| TableError::ColumnType {
                path: path.clone(),
                column: TARGET_COLUMN.to_owned(),
                expected: "a label on every row".into(),
                got: format!("null at row {i}"),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(MonthRows {
        dates,
        x: FeatureMatrix::new(rows, p, values),
        labels,
    })
}
