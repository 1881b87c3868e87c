//! A split table read for modelling.

use std::path::Path;

use polars::prelude::*;
use revspend_core::artifact::{CUSTOMER_COLUMN, TARGET_COLUMN};
use revspend_core::features::Feature;
use revspend_core::model::FeatureMatrix;

use crate::error::TableError;
use crate::parquet::{read_table_hashed, read_table_verified};

/// A split read for modelling: features in the requested order, labels and
/// the customer of each row.
#[derive(Debug, Clone)]
pub struct LabelledRows {
    pub x: FeatureMatrix,
    pub y: Vec<bool>,
    pub customers: Vec<String>,
}

/// Reads a split table, checking every requested feature column (Float64,
/// no nulls), the customer and the target columns.
pub fn read_labelled(path: &Path, features: &[Feature]) -> Result<LabelledRows, TableError> {
    read_labelled_hashed(path, features).map(|(rows, _)| rows)
}

/// [`read_labelled`], also returning the SHA-256 of the file's bytes (read
/// once), which a reader checks against the feature list's record.
pub fn read_labelled_hashed(path: &Path, features: &[Feature]) -> Result<(LabelledRows, String), TableError> {
    let mut expected: Vec<(&str, DataType)> = vec![
        (CUSTOMER_COLUMN, DataType::String),
        (TARGET_COLUMN, DataType::Boolean),
    ];
    expected.extend(features.iter().map(|f| (f.name(), DataType::Float64)));
    let (df, sha256) = read_table_hashed(path, &expected)?;
    let pq = |source| TableError::Parquet {
        path: path.to_owned(),
        source,
    };
    let rows = df.height();
    let p = features.len();
    let mut columns = Vec::with_capacity(p);
    for f in features {
        let c = df.column(f.name()).map_err(pq)?.f64().map_err(pq)?;
        if c.null_count() > 0 {
            return Err(TableError::ColumnType {
                path: path.to_owned(),
                column: f.name().to_owned(),
                expected: "f64 without nulls".into(),
                got: format!("{} nulls", c.null_count()),
            });
        }
        columns.push(c.into_no_null_iter());
    }
    // Row-major, straight from the columns, a block of rows at a time (the
    // block stays in cache while every column writes its stripe): no
    // column-major copy in between, which at 6M rows was another 1.1 GB of
    // fresh pages.
    const BLOCK: usize = 4_096;
    let mut values = vec![0f64; rows * p];
    for block in values.chunks_mut(BLOCK * p.max(1)) {
        let n = block.len() / p.max(1);
        for (j, column) in columns.iter_mut().enumerate() {
            for (slot, v) in block.iter_mut().skip(j).step_by(p).zip(column.by_ref().take(n)) {
                *slot = v;
            }
        }
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
    Ok((
        LabelledRows {
            x: FeatureMatrix::new(rows, features.len(), values),
            y,
            customers,
        },
        sha256,
    ))
}

/// What a split's rows are besides the model's inputs, for metrics by
/// slice: the month of each row (`yyyy-mm`, from the lineage date) and
/// named Float64 columns of the master table (nulls read as NaN).
#[derive(Debug, Clone, PartialEq)]
pub struct RowDescriptions {
    pub months: Vec<String>,
    /// One vector per requested column, in the requested order.
    pub columns: Vec<Vec<f64>>,
}

/// Reads [`RowDescriptions`] from a split table whose bytes must still hash
/// to `sha256` (the hash [`read_labelled_hashed`] returned), so the
/// descriptions belong to the rows scored.
pub fn read_row_descriptions(
    path: &Path,
    columns: &[&str],
    sha256: &str,
) -> Result<RowDescriptions, TableError> {
    let mut expected: Vec<(&str, DataType)> = vec![(revspend_core::schema::DATE, DataType::Date)];
    expected.extend(columns.iter().map(|c| (*c, DataType::Float64)));
    let df = read_table_verified(path, &expected, sha256)?;
    let pq = |source| TableError::Parquet {
        path: path.to_owned(),
        source,
    };
    // Days since 1970-01-01 (polars' Date), as chrono's days since 0001-01-01.
    const UNIX_EPOCH_FROM_CE: i32 = 719_163;
    let months = df
        .column(revspend_core::schema::DATE)
        .map_err(pq)?
        .date()
        .map_err(pq)?
        .physical()
        .iter()
        .map(|d| {
            d.and_then(|d| chrono::NaiveDate::from_num_days_from_ce_opt(d + UNIX_EPOCH_FROM_CE))
                .map_or_else(|| "unknown".to_owned(), |d| d.format("%Y-%m").to_string())
        })
        .collect();
    let mut out = Vec::with_capacity(columns.len());
    for c in columns {
        let values = df.column(c).map_err(pq)?.f64().map_err(pq)?;
        out.push(values.iter().map(|v| v.unwrap_or(f64::NAN)).collect());
    }
    Ok(RowDescriptions { months, columns: out })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parquet::write_table;

    #[test]
    fn features_come_back_row_major_in_the_requested_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("split.parquet");
        let (a, b) = (Feature::ALL[0], Feature::ALL[1]);
        let mut df = DataFrame::new(
            2,
            vec![
                Column::new(CUSTOMER_COLUMN.into(), ["c1", "c2"]),
                Column::new(TARGET_COLUMN.into(), [true, false]),
                Column::new(a.name().into(), [1.0f64, 2.0]),
                Column::new(b.name().into(), [10.0f64, 20.0]),
            ],
        )
        .expect("frame");
        write_table(&path, &mut df).expect("write");
        let rows = read_labelled(&path, &[b, a]).expect("read");
        assert_eq!(rows.x.values, vec![10.0, 1.0, 20.0, 2.0]);
        assert_eq!(rows.y, vec![true, false]);
        assert_eq!(rows.customers, vec!["c1", "c2"]);
    }

    #[test]
    fn a_null_feature_value_is_refused_naming_the_column() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("split.parquet");
        let a = Feature::ALL[0];
        let mut df = DataFrame::new(
            2,
            vec![
                Column::new(CUSTOMER_COLUMN.into(), ["c1", "c2"]),
                Column::new(TARGET_COLUMN.into(), [true, false]),
                Column::new(a.name().into(), [Some(1.0f64), None]),
            ],
        )
        .expect("frame");
        write_table(&path, &mut df).expect("write");
        let err = read_labelled(&path, &[a]).expect_err("null");
        assert!(err.to_string().contains(a.name()), "{err}");
        assert!(err.to_string().contains("1 nulls"), "{err}");
    }
}
