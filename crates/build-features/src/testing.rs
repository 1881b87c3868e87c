//! Small end-to-end fixtures for the other stages' tests: generated raw
//! data run through this stage into a temporary directory.

use std::path::{Path, PathBuf};

use anyhow::Result;
use revspend_core::params::{Check, Params};
use revspend_core::pseudonym::Pseudonymiser;

use crate::Outputs;

/// Key the fixtures pseudonymise with.
pub const KEY: &[u8] = b"fixture-key";

/// The fixtures' own params (`tests/fixture-params.yaml`: a small dataset
/// and model, not the live `params.yaml`), over 90 days, with
/// `build_features.raw_glob` pointing at `<dir>/raw/*.csv`.
pub fn params(dir: &Path) -> Params {
    let mut p: Params = serde_norway::from_str(include_str!("../tests/fixture-params.yaml"))
        .unwrap_or_else(|e| panic!("fixture params do not parse: {e}"));
    // Shorter than the process tests' data: the other stages' tests train
    // on it and stay quick.
    p.generate.days = 90;
    p.build_features.raw_glob = dir.join("raw/*.csv").display().to_string();
    p
}

/// Generates raw files and builds the tables under `dir`; returns the
/// outputs and the params used (also written to `<dir>/params.yaml`).
pub fn build(dir: &Path) -> Result<(Outputs, Params)> {
    let p = params(dir);
    std::fs::write(dir.join("params.yaml"), serde_norway::to_string(&p)?)?;
    generate_raw(&p, &dir.join("raw"))?;
    let outputs = Outputs::under(dir);
    let suite = crate::quality::Suite::from_yaml(include_str!("../../../config/quality.yaml"))?;
    crate::run(
        &p.build_features.clone().check()?,
        &suite,
        &outputs,
        &Pseudonymiser::new(KEY),
        crate::Mode::Update,
    )?;
    Ok((outputs, p))
}

fn generate_raw(p: &Params, dir: &Path) -> Result<Vec<PathBuf>> {
    Ok(generate::run(&p.generate.clone().check()?, dir)?.files)
}
