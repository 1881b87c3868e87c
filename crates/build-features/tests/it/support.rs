//! A temporary project directory with params pointing at its own raw files.

use std::path::{Path, PathBuf};
use std::process::Output;

use build_features::Outputs;

/// The project's retrain request file, relative to its directory (the
/// stage's working directory).
pub const RETRAIN_REQUEST: &str = "retrain.json";

pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    /// A project whose params are the fixture's (tests/fixture-params.yaml,
    /// not the live params.yaml) with `raw_glob` pointing at
    /// `<dir>/raw/*.csv`, and a retrain request file holding no request
    /// (`<dir>/retrain.json`, as the pipeline ships it).
    pub fn new() -> Project {
        let dir = tempfile::tempdir().expect("tempdir");
        let shipped = include_str!("../fixture-params.yaml");
        let glob = dir.path().join("raw/*.csv");
        let params = shipped.replace(
            "raw_glob: data/raw/*.csv",
            &format!("raw_glob: {}", glob.display()),
        );
        assert_ne!(params, shipped, "raw_glob line not found in the fixture params");
        std::fs::create_dir_all(dir.path().join("raw")).expect("raw dir");
        std::fs::write(dir.path().join("params.yaml"), params).expect("params");
        revspend_core::artifact::write_retrain_request(&dir.path().join(RETRAIN_REQUEST), None)
            .expect("retrain request");
        Project { dir }
    }

    /// Replaces `from` with `to` in the project's params (which must change).
    pub fn edit_params(&self, from: &str, to: &str) {
        let path = self.path("params.yaml");
        let text = std::fs::read_to_string(&path).expect("params");
        assert!(text.contains(from), "{from:?} not in params.yaml");
        std::fs::write(path, text.replace(from, to)).expect("params");
    }

    /// Writes the fixture's small generated dataset into the project's raw
    /// directory.
    pub fn generate(&self) {
        let text = std::fs::read_to_string(self.path("params.yaml")).expect("params");
        let params: revspend_core::params::Params = serde_norway::from_str(&text).expect("params parse");
        let checked = revspend_core::params::Check::check(params.generate).expect("generate params");
        generate::run(&checked, &self.path("raw")).expect("generate");
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Where the stage writes in this project: the default layout under
    /// `<dir>/out`.
    pub fn out(&self) -> Outputs {
        Outputs::under(&self.path("out"))
    }

    pub fn write_raw(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.path("raw").join(name), bytes).expect("raw file");
    }

    /// Runs build-features with every output inside the project.
    pub fn build_features(&self) -> Output {
        self.build_features_with_suite(&shipped_suite())
    }

    /// Runs build-features with another quality suite.
    pub fn build_features_with_suite(&self, suite: &Path) -> Output {
        self.build_features_cmd(&[], suite, "test-key")
    }

    /// Runs `build-features backfill --from FROM --to TO`.
    pub fn backfill(&self, from: &str, to: &str) -> Output {
        self.build_features_cmd(
            &["backfill", "--from", from, "--to", to],
            &shipped_suite(),
            "test-key",
        )
    }

    /// Runs build-features on `threads` worker threads.
    pub fn build_features_on_threads(&self, threads: usize) -> Output {
        self.build_features_cmd(&["--threads", &threads.to_string()], &shipped_suite(), "test-key")
    }

    /// Runs build-features with another pseudonymisation key.
    pub fn build_features_with_key(&self, key: &str) -> Output {
        self.build_features_cmd(&[], &shipped_suite(), key)
    }

    /// Runs build-features with the layout `out` (e.g. a directory flag
    /// pointed somewhere else).
    pub fn build_features_into(&self, out: &Outputs) -> Output {
        self.build_features_cmd_into(&[], &shipped_suite(), "test-key", out)
    }

    fn build_features_cmd(&self, command: &[&str], suite: &Path, key: &str) -> Output {
        self.build_features_cmd_into(command, suite, key, &self.out())
    }

    fn build_features_cmd_into(&self, command: &[&str], suite: &Path, key: &str, out: &Outputs) -> Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_build-features"))
            .current_dir(self.dir.path())
            .env("REVSPEND_PSEUDONYM_KEY", key)
            .args(command)
            .args(["--params", "params.yaml"])
            .args(["--retrain-request", RETRAIN_REQUEST])
            .arg("--quality-suite")
            .arg(suite)
            .arg("--staged-dir")
            .arg(&out.staged_dir)
            .arg("--features-dir")
            .arg(&out.features_dir)
            .arg("--splits-dir")
            .arg(&out.splits_dir)
            .arg("--feature-list")
            .arg(&out.feature_list)
            .arg("--snapshot")
            .arg(&out.snapshot)
            .arg("--quarantine")
            .arg(&out.quarantine)
            .arg("--report")
            .arg(&out.report)
            .arg("--leakage-report")
            .arg(&out.leakage_report)
            .arg("--selection-report")
            .arg(&out.selection_report)
            .arg("--profile")
            .arg(&out.profile)
            .arg("--quality-report")
            .arg(&out.quality_report)
            .output()
            .expect("run build-features")
    }

    /// The master table: every split file, in split order.
    pub fn master(&self) -> polars::prelude::DataFrame {
        let mut master: Option<polars::prelude::DataFrame> = None;
        for split in build_features::SPLITS {
            let path = self.out().splits_dir.join(format!("{split}.parquet"));
            let part = revspend_table::read_table(&path, &[]).expect("split file");
            match &mut master {
                Some(m) => {
                    m.vstack_mut(&part).expect("same schema");
                }
                None => master = Some(part),
            }
        }
        master.expect("four splits")
    }

    pub fn report(&self) -> serde_json::Value {
        self.json_at(&self.out().report)
    }

    pub fn json_at(&self, path: &Path) -> serde_json::Value {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_slice(&bytes).expect("json")
    }
}

pub fn shipped_suite() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/quality.yaml")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
