//! Where the stage writes: the output layout, every path a CLI flag.

use std::path::PathBuf;

/// Where the stage writes; every path is a CLI flag.
#[derive(Debug, Clone)]
pub struct Outputs {
    /// The staged layer (kept between runs: only new files are parsed).
    pub staged_dir: PathBuf,
    /// The feature layer (kept between runs).
    pub features_dir: PathBuf,
    /// The master table: one parquet file per split (`train.parquet`, …),
    /// every row in exactly one of them.
    pub splits_dir: PathBuf,
    pub feature_list: PathBuf,
    pub snapshot: PathBuf,
    pub quarantine: PathBuf,
    pub report: PathBuf,
    pub leakage_report: PathBuf,
    pub selection_report: PathBuf,
    /// Reference distribution profile of the train split (for drift checks).
    pub profile: PathBuf,
    pub quality_report: PathBuf,
}
