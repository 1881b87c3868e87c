//! Prints a model's calibrated holdout probabilities as f64 bit patterns
//! (`{:016x}`), one per line in row order, to compare models bit for bit
//! across builds (issue 11: the model format changed, the predictions must
//! not).
//!
//!     cargo run -p train --example dump_predictions -- MODEL HOLDOUT_PARQUET

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use revspend_core::artifact;

fn main() -> Result<()> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [model, holdout] = args.as_slice() else {
        bail!("usage: dump_predictions MODEL HOLDOUT_PARQUET");
    };
    let model = artifact::read_model(model).with_context(|| format!("reading {}", model.display()))?;
    let rows = revspend_table::read_labelled(holdout, &model.features)
        .with_context(|| format!("reading {}", holdout.display()))?;
    for p in model.predict_proba(&rows.x)? {
        println!("{:016x}", p.to_bits());
    }
    Ok(())
}
