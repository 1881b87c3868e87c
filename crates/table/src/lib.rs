//! `revspend-table`: the pipeline's tables on disk, for the stages that read
//! and write them (`build-features`, `train`, `evaluate`; later `monitor`).
//!
//! - [`parquet`]: parquet tables written atomically with the schema version in
//!   their key-value metadata, read back with every expected column checked
//!   by name and dtype; [`TableWriter`] writes one table in parts.
//! - [`labelled`]: a split table read as the feature matrix, labels and
//!   customers a model is fitted or scored on.
//! - [`layer`]: the feature layer read back one month partition at a time.
//! - [`quarantine`]: the CSV of rows that could not be parsed.
//! - [`profile`]: distribution profiles of a dataframe's columns (the
//!   statistics themselves are `revspend_core::profile`'s).
//!
//! It holds the data stack (polars, csv) so that `revspend-core`, which the
//! server shares, does not. Every write goes through core's atomic-write
//! primitives: a temporary file in the destination directory, fsync, rename.

pub mod labelled;
pub mod layer;
pub mod parquet;
pub mod profile;
pub mod quarantine;

mod error;

pub use error::TableError;
pub use labelled::{
    LabelledRows, RowDescriptions, read_labelled, read_labelled_hashed, read_row_descriptions,
};
pub use parquet::{
    SCHEMA_VERSION_KEY, TABLE_SCHEMA_VERSION, TableWriter, check_columns, read_table, read_table_hashed,
    read_table_verified, write_table,
};
pub use quarantine::{QuarantinedRow, read_quarantine, write_quarantine};
