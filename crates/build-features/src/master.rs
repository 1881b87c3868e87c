//! The master table: the month tables written into one parquet file per
//! split, with the split column after the lineage columns.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use polars::prelude::*;
use rayon::prelude::*;
use revspend_core::artifact::{SPLIT_COLUMN, TARGET_COLUMN};

use crate::{SPLITS, in_order};

/// What writing the master table counted.
pub(crate) struct MasterWritten {
    /// Rows and positives per split, in [`SPLITS`] order.
    pub(crate) rows: Vec<(u64, u64)>,
    /// Null values per column.
    pub(crate) nulls: BTreeMap<String, u64>,
}

/// Where the split column sits in the master table (after the lineage
/// columns), found by name in the schema.
fn split_position() -> Result<usize> {
    revspend_core::schema::position(&revspend_core::schema::master(), SPLIT_COLUMN)
        .context("the master-table schema has no split column")
}

/// The schema of every split file, from the master table's columns.
pub(crate) fn master_file_schema() -> Schema {
    crate::layers::master_schema()
        .into_iter()
        .map(|(name, dtype)| Field::new(name.into(), dtype))
        .collect()
}

/// Writes the master table a month at a time (one row group each) into one
/// file per split (`writers` in [`SPLITS`] order), the splits in
/// parallel; `codes` holds each month row's split (a row after the training
/// period is in none, and is neither written nor counted). The files are
/// left to be finished by the caller.
pub(crate) fn write_master(
    frames: &[DataFrame],
    codes: &[Vec<u8>],
    writers: &mut [revspend_table::TableWriter],
) -> Result<MasterWritten> {
    let split_at = split_position()?;
    let mut written = MasterWritten {
        rows: vec![(0, 0); SPLITS.len()],
        nulls: BTreeMap::from([(SPLIT_COLUMN.to_owned(), 0)]),
    };
    for (frame, codes) in frames.iter().zip(codes) {
        // Nulls of the rows written: a month with rows after the training
        // period counts over its rows in the period alone.
        let in_period;
        let counted = if codes.iter().all(|&c| usize::from(c) < SPLITS.len()) {
            frame
        } else {
            let mask = BooleanChunked::from_iter_values(
                "".into(),
                codes.iter().map(|&c| usize::from(c) < SPLITS.len()),
            );
            in_period = frame.filter(&mask)?;
            &in_period
        };
        for c in counted.columns() {
            *written.nulls.entry(c.name().to_string()).or_insert(0) += c.null_count() as u64;
        }
        // Each split's rows are taken and written on its own job, so one
        // split's copy is made while another's is encoded. The split column
        // is one value per part, added as a constant.
        let counts = SPLITS
            .par_iter()
            .zip(writers.par_iter_mut())
            .enumerate()
            .map(|(i, (name, w))| -> Result<(u64, u64)> {
                let mask =
                    BooleanChunked::from_iter_values("".into(), codes.iter().map(|c| usize::from(*c) == i));
                let mut part = frame.filter(&mask)?;
                let counts = (
                    part.height() as u64,
                    part.column(TARGET_COLUMN)?.bool()?.sum().unwrap_or(0) as u64,
                );
                let split = Column::new_scalar(
                    SPLIT_COLUMN.into(),
                    Scalar::new(DataType::String, AnyValue::StringOwned((*name).into())),
                    part.height(),
                );
                part.insert_column(split_at, split)?;
                w.write(&mut part)
                    .with_context(|| format!("writing split {name}"))?;
                Ok(counts)
            })
            .collect();
        for (total, (rows, positives)) in written.rows.iter_mut().zip(in_order(counts)?) {
            total.0 += rows;
            total.1 += positives;
        }
    }
    Ok(written)
}
