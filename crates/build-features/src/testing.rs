//! Small end-to-end fixtures for the other stages' tests: generated raw
//! data run through this stage into a temporary directory.

use std::path::{Path, PathBuf};

use anyhow::Result;
use revspend_core::params::{Check, Params};
use revspend_core::pseudonym::Pseudonymiser;

use crate::Outputs;

/// Key the fixtures pseudonymise with.
pub const KEY: &[u8] = b"fixture-key";

/// The shipped `params.yaml`, with `build_features.raw_glob` pointing at
/// `<dir>/raw/*.csv` and a small generated dataset.
pub fn params(dir: &Path) -> Params {
    let mut p: Params = serde_norway::from_str(include_str!("../../../params.yaml"))
        .unwrap_or_else(|e| panic!("shipped params.yaml does not parse: {e}"));
    p.generate.customers = 300;
    p.generate.rows = 6_000;
    p.generate.days = 90;
    p.generate.files = 2;
    p.build_features.raw_glob = dir.join("raw/*.csv").display().to_string();
    p.train.n_trees = 12;
    p.train.max_depth = 8;
    p
}

/// Generates raw files and builds the tables under `dir`; returns the
/// outputs and the params used (also written to `<dir>/params.yaml`).
pub fn build(dir: &Path) -> Result<(Outputs, Params)> {
    let p = params(dir);
    std::fs::write(dir.join("params.yaml"), serde_norway::to_string(&p)?)?;
    generate_raw(&p, &dir.join("raw"))?;
    let outputs = Outputs {
        staged_dir: dir.join("data/staged"),
        features_dir: dir.join("data/features"),
        splits_dir: dir.join("data/splits"),
        feature_list: dir.join("data/features.json"),
        snapshot: dir.join("data/snapshot.bin"),
        quarantine: dir.join("data/quarantine.csv"),
        report: dir.join("reports/build_features.json"),
        leakage_report: dir.join("reports/leakage.json"),
        selection_report: dir.join("reports/feature_selection.json"),
        profile: dir.join("data/profile.json"),
        quality_report: dir.join("reports/quality.json"),
    };
    let suite = crate::quality::Suite::from_yaml(include_str!("../../../config/quality.yaml"))?;
    crate::run(
        &p.build_features.clone().check()?,
        &suite,
        &outputs,
        &Pseudonymiser::new(KEY),
        crate::Mode::Update,
        2,
    )?;
    Ok((outputs, p))
}

fn generate_raw(p: &Params, dir: &Path) -> Result<Vec<PathBuf>> {
    Ok(generate::run(&p.generate.clone().check()?, dir)?.files)
}
