//! Where the stage writes: the output layout. Every path is a CLI flag;
//! [`Outputs::under`] is the default layout (the paths `dvc.yaml` passes),
//! which `main.rs`'s flag defaults and the test fixtures both take from
//! here.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::layers;

/// Where the stage writes; every path is a CLI flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outputs {
    /// The staged layer (kept between runs: only new files are parsed).
    pub staged_dir: PathBuf,
    /// The feature layer (kept between runs).
    pub features_dir: PathBuf,
    /// The master table: one parquet file per split (`train.parquet`, …),
    /// every row in exactly one of them.
    pub splits_dir: PathBuf,
    /// The ordered feature list the model uses (JSON).
    pub feature_list: PathBuf,
    /// The online snapshot: each customer's history after the last purchase.
    pub snapshot: PathBuf,
    /// Every quarantined raw row, with file, line and reason (CSV).
    pub quarantine: PathBuf,
    /// The stage report (row accounting, splits, layers).
    pub report: PathBuf,
    pub leakage_report: PathBuf,
    pub selection_report: PathBuf,
    /// Reference distribution profile of the train split (for drift checks).
    pub profile: PathBuf,
    pub quality_report: PathBuf,
}

impl Outputs {
    /// The default layout under `root` (the project directory; `""` gives
    /// the relative paths `dvc.yaml` passes).
    pub fn under(root: &Path) -> Outputs {
        Outputs {
            staged_dir: root.join("data/staged"),
            features_dir: root.join("data/features"),
            splits_dir: root.join("data/splits"),
            feature_list: root.join("data/features.json"),
            snapshot: root.join("data/online/snapshot.bin"),
            quarantine: root.join("data/quarantine.csv"),
            report: root.join("reports/build_features.json"),
            leakage_report: root.join("reports/leakage.json"),
            selection_report: root.join("reports/feature_selection.json"),
            profile: root.join("data/profile/train.json"),
            quality_report: root.join("reports/quality.json"),
        }
    }
}

impl Outputs {
    /// The directories the stage writes files into (not the layers: see
    /// [`crate::layers::remove_temp_files`]).
    pub fn file_dirs(&self) -> BTreeSet<PathBuf> {
        let parent = |p: &Path| match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        let mut dirs = BTreeSet::from([self.splits_dir.clone()]);
        for file in [
            &self.feature_list,
            &self.snapshot,
            &self.quarantine,
            &self.report,
            &self.leakage_report,
            &self.selection_report,
            &self.profile,
            &self.quality_report,
        ] {
            dirs.insert(parent(file));
        }
        dirs
    }

    /// Removes the temporary files (`.tmp-…`, the prefix of
    /// `revspend_core::artifact::temp_beside`) that a run killed during an
    /// atomic write left in the output directories and the layers. Only
    /// those files, directly in each directory the stage writes to, are
    /// touched; the layers were checked to be the layers' before.
    pub fn remove_temp_files(&self) -> anyhow::Result<()> {
        for dir in self.file_dirs() {
            for path in revspend_core::artifact::remove_temp_files(&dir)? {
                log::info!("removed {}, left by an interrupted run", path.display());
            }
        }
        layers::remove_temp_files(&self.staged_dir, layers::LayerKind::Staged)?;
        layers::remove_temp_files(&self.features_dir, layers::LayerKind::Features)?;
        Ok(())
    }
}

impl Default for Outputs {
    /// The default layout, relative to the working directory.
    fn default() -> Outputs {
        Outputs::under(Path::new(""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default layout is the one `dvc.yaml` passes to the stage: every
    /// path of the layout appears in the stage's command.
    #[test]
    fn the_default_layout_is_the_one_dvc_passes() {
        let dvc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dvc.yaml"))
            .expect("dvc.yaml");
        let stage = dvc
            .split("\n  build_features:")
            .nth(1)
            .and_then(|s| s.split("\n  train:").next())
            .expect("build_features stage");
        let o = Outputs::default();
        let flags = [
            ("--staged-dir", &o.staged_dir),
            ("--features-dir", &o.features_dir),
            ("--splits-dir", &o.splits_dir),
            ("--feature-list", &o.feature_list),
            ("--snapshot", &o.snapshot),
            ("--quarantine", &o.quarantine),
            ("--report", &o.report),
            ("--leakage-report", &o.leakage_report),
            ("--selection-report", &o.selection_report),
            ("--profile", &o.profile),
        ];
        for (flag, path) in flags {
            let passed = format!("{flag} {}", path.display());
            assert!(stage.contains(&passed), "dvc.yaml does not pass `{passed}`");
        }
        // Tracked by dvc.yaml (the flag is the lead's to add to its command).
        assert!(stage.contains(&o.quality_report.display().to_string()));
    }
}
