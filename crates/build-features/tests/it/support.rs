//! A temporary project directory with params pointing at its own raw files.

use std::path::{Path, PathBuf};
use std::process::Output;

pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    /// A project whose params are the shipped ones with `raw_glob` pointing
    /// at `<dir>/raw/*.csv`.
    pub fn new() -> Project {
        let dir = tempfile::tempdir().expect("tempdir");
        let shipped =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../params.yaml"))
                .expect("shipped params");
        let glob = dir.path().join("raw/*.csv");
        let params = shipped.replace(
            "raw_glob: data/raw/*.csv",
            &format!("raw_glob: {}", glob.display()),
        );
        assert_ne!(params, shipped, "raw_glob line not found in params.yaml");
        std::fs::create_dir_all(dir.path().join("raw")).expect("raw dir");
        std::fs::write(dir.path().join("params.yaml"), params).expect("params");
        Project { dir }
    }

    /// Replaces `from` with `to` in the project's params (which must change).
    pub fn edit_params(&self, from: &str, to: &str) {
        let path = self.path("params.yaml");
        let text = std::fs::read_to_string(&path).expect("params");
        assert!(text.contains(from), "{from:?} not in params.yaml");
        std::fs::write(path, text.replace(from, to)).expect("params");
    }

    /// Writes a small generated dataset into the project's raw directory.
    pub fn generate(&self) {
        let text = std::fs::read_to_string(self.path("params.yaml")).expect("params");
        let mut params: revspend_core::params::Params = serde_norway::from_str(&text).expect("params parse");
        params.generate.customers = 300;
        params.generate.rows = 6_000;
        params.generate.files = 2;
        let checked = revspend_core::params::Check::check(params.generate).expect("generate params");
        generate::run(&checked, &self.path("raw")).expect("generate");
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
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

    fn build_features_cmd(&self, command: &[&str], suite: &Path, key: &str) -> Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_build-features"))
            .current_dir(self.dir.path())
            .env("REVSPEND_PSEUDONYM_KEY", key)
            .args(command)
            .args(["--params", "params.yaml"])
            .args(["--staged-dir", "out/staged"])
            .args(["--features-dir", "out/features"])
            .arg("--quality-suite")
            .arg(suite)
            .args(["--splits-dir", "out/splits"])
            .args(["--feature-list", "out/features.json"])
            .args(["--snapshot", "out/snapshot.bin"])
            .args(["--quarantine", "out/quarantine.csv"])
            .args(["--report", "out/report.json"])
            .args(["--leakage-report", "out/leakage.json"])
            .args(["--selection-report", "out/selection.json"])
            .args(["--profile", "out/profile.json"])
            .args(["--quality-report", "out/quality.json"])
            .output()
            .expect("run build-features")
    }

    /// The master table: every split file, in split order.
    pub fn master(&self) -> polars::prelude::DataFrame {
        let mut master: Option<polars::prelude::DataFrame> = None;
        for split in ["train", "test", "holdout", "calibration"] {
            let path = self.path(&format!("out/splits/{split}.parquet"));
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
        self.json("out/report.json")
    }

    pub fn json(&self, rel: &str) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.path(rel)).expect(rel)).expect("json")
    }
}

pub fn shipped_suite() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/quality.yaml")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
