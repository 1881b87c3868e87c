//! train as a real process on the fixture tables.

use std::path::Path;
use std::process::{Command, Output};

use revspend_core::artifact;
use revspend_core::registry::Registry;

use crate::fixture;

fn train(dir: &Path, threads: &str, model: &str, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_train"))
        .current_dir(dir)
        .args(["--params", "params.yaml"])
        .args(["--train", "data/splits/train.parquet"])
        .args(["--test", "data/splits/test.parquet"])
        .args(["--calibration", "data/splits/calibration.parquet"])
        .args(["--feature-list", "data/features.json"])
        .args(["--model", model])
        .args(["--report", "reports/train.json"])
        .args(["--search-report", "reports/search.csv"])
        .args(["--threads", threads])
        .args(extra)
        .env("REVSPEND_USER", "tester")
        .env("REVSPEND_GIT_COMMIT", "0123456789abcdef")
        .output()
        .expect("run train")
}

#[test]
fn the_model_is_deterministic_whatever_the_thread_count() {
    let dir = tempfile::tempdir().expect("tempdir");
    fixture::build(dir.path());
    let one = train(dir.path(), "1", "models/one.bin", &["--no-register"]);
    assert!(one.status.success(), "{}", String::from_utf8_lossy(&one.stderr));
    let report_one = std::fs::read(dir.path().join("reports/train.json")).expect("report");
    let two = train(dir.path(), "2", "models/two.bin", &["--no-register"]);
    assert!(two.status.success(), "{}", String::from_utf8_lossy(&two.stderr));
    let a = std::fs::read(dir.path().join("models/one.bin")).expect("model one");
    let b = std::fs::read(dir.path().join("models/two.bin")).expect("model two");
    assert!(a == b, "models differ between 1 and 2 threads");
    let report_two = std::fs::read(dir.path().join("reports/train.json")).expect("report");
    assert!(report_one == report_two, "reports differ");
    assert!(
        !dir.path().join("models/registry").exists(),
        "--no-register registered"
    );
}

#[test]
fn the_artifact_is_selected_calibrated_registered_and_beats_the_prior() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (outputs, params) = fixture::build(dir.path());
    let out = train(dir.path(), "2", "models/model.bin", &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let model = artifact::read_model(&dir.path().join("models/model.bin")).expect("model reads back");
    let list: artifact::FeatureList = artifact::read_json(&outputs.feature_list).expect("feature list");
    let names: Vec<&str> = model.features.iter().map(|f| f.name()).collect();
    assert_eq!(names, list.features);
    assert!(model.features.iter().all(|f| !f.is_label_input()));
    // The params are stored as their JSON text, which reads back as the
    // section the run used, and the hash is of exactly that text.
    let stored: revspend_core::params::TrainParams =
        serde_json::from_str(&model.train_params).expect("stored params are JSON");
    assert_eq!(stored, params.train);
    assert_eq!(
        model.params_hash,
        artifact::sha256_hex(model.train_params.as_bytes())
    );
    assert_eq!(
        model.data_hash,
        artifact::file_sha256(&outputs.splits_dir.join("train.parquet")).expect("hash")
    );
    assert!(model.model_version.starts_with(&format!("{}-", model.algorithm)));
    // Issue 12: the key fingerprint of the data, from the feature list, and
    // which kind of key it is in the report.
    assert_eq!(model.key_fingerprint, fixture::KEY_FINGERPRINT);
    let report: serde_json::Value =
        artifact::read_json(&dir.path().join("reports/train.json")).expect("report");
    assert_eq!(report["pseudonym_key"], "a secret key");
    assert_ne!(model.algorithm, "prior");
    assert!(model.threshold > 0.0 && model.threshold < 1.0);
    assert!(["platt", "isotonic"].contains(&model.calibrator.name()));
    assert_eq!(model.reliability.after.len(), 10);

    let test = revspend_table::read_labelled(&outputs.splits_dir.join("test.parquet"), &model.features)
        .expect("test");
    let scores = model.predict_proba(&test.x).expect("predict");
    assert!(scores.iter().all(|s| (0.0..=1.0).contains(s)));
    let prevalence = test.y.iter().filter(|y| **y).count() as f64 / test.y.len() as f64;
    assert!(
        model.test_metrics.pr_auc > prevalence + 0.2,
        "PR-AUC {} does not beat the prior {prevalence}",
        model.test_metrics.pr_auc
    );

    // Every candidate is in the search table at the first rung; the prior
    // baseline among them.
    let csv = std::fs::read_to_string(dir.path().join("reports/search.csv")).expect("search.csv");
    for algorithm in ["prior", "logistic", "naive_bayes", "tree", "forest", "gbm"] {
        assert!(
            csv.lines()
                .any(|l| l.starts_with("0,") && l.split(',').nth(4) == Some(algorithm)),
            "{algorithm} missing"
        );
    }

    // Registered as v0001, candidate and (bootstrap) production.
    let registry = Registry::new(dir.path().join("models/registry"));
    let index = registry.index().expect("index");
    assert_eq!(index.versions.len(), 1);
    let v = &index.versions[0];
    assert_eq!(v.model_version, model.model_version);
    assert_eq!(v.git_commit.as_deref(), Some("0123456789abcdef"));
    assert_eq!(index.aliases["candidate"], "v0001");
    assert_eq!(index.aliases["production"], "v0001");
    assert!(index.alias_log.iter().all(|c| c.who == "tester"));
    let copy = std::fs::read(registry.model_path("production").expect("path")).expect("copy");
    assert_eq!(
        copy,
        std::fs::read(dir.path().join("models/model.bin")).expect("model")
    );

    // A second run: a new candidate, production stays.
    let again = train(dir.path(), "2", "models/model.bin", &[]);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let index = registry.index().expect("index");
    assert_eq!(index.aliases["candidate"], "v0002");
    assert_eq!(index.aliases["production"], "v0001");
    let log = registry.experiments().expect("experiments");
    assert_eq!(log.len(), 2);
    assert_eq!(log[1]["version"], "v0002");
    assert!(log[1]["timings_s"]["search"].is_number());
    assert!(log[1]["cv"]["trials"].as_array().is_some_and(|t| t.len() >= 6));
}

#[test]
fn fit_once_times_one_fit_and_scores_the_holdout() {
    let dir = tempfile::tempdir().expect("tempdir");
    fixture::build(dir.path());
    let out = Command::new(env!("CARGO_BIN_EXE_train"))
        .current_dir(dir.path())
        .args(["fit-once", "--algorithm", "gbm", "--params", "params.yaml"])
        .args(["--train", "data/splits/train.parquet"])
        .args(["--calibration", "data/splits/calibration.parquet"])
        .args(["--holdout", "data/splits/holdout.parquet"])
        .args(["--feature-list", "data/features.json", "--threads", "2"])
        .output()
        .expect("run fit-once");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(v["algorithm"], "gbm");
    assert!(v["fit_seconds"].as_f64().is_some_and(|s| s > 0.0));
    assert!(v["holdout"]["pr_auc"].as_f64().is_some_and(|p| p > 0.3));
    assert!(v["holdout"]["ece"].is_number());
}

#[test]
fn bad_params_are_refused_naming_the_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    fixture::build(dir.path());
    let params = std::fs::read_to_string(dir.path().join("params.yaml")).expect("params");
    let params = params.replace("folds: 4", "folds: 1");
    std::fs::write(dir.path().join("params.yaml"), params).expect("write params");
    let out = train(dir.path(), "1", "models/model.bin", &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("train.cv.folds"));
    assert!(!dir.path().join("models/model.bin").exists());
}

/// Issue 12 item 14: a lock file left behind by a killed registry or train
/// process (here one of the older kind, holding a dead pid) does not block
/// training nor its registration: the lock is the kernel's, not the file's.
#[test]
fn a_leftover_lock_file_does_not_block_training() {
    let dir = tempfile::tempdir().expect("tempdir");
    fixture::build(dir.path());
    let registry = dir.path().join("models/registry");
    std::fs::create_dir_all(&registry).expect("registry dir");
    std::fs::write(registry.join(".lock"), "999999\n").expect("leftover lock file");
    let out = train(dir.path(), "2", "models/model.bin", &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let index = Registry::new(&registry).index().expect("index");
    assert_eq!(index.aliases["candidate"], "v0001");
}

/// Issue 12 item 14: when the registry cannot take the new version (here an
/// index that does not parse), the tracked model file and the reports keep
/// their previous contents: the model on disk is always a registered one.
#[test]
fn a_registry_that_cannot_be_written_leaves_the_model_and_reports_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    fixture::build(dir.path());
    let previous = [
        ("models/model.bin", "the previous model"),
        ("reports/train.json", "the previous report"),
        ("reports/search.csv", "the previous search"),
    ];
    for (path, text) in previous {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
        std::fs::write(path, text).expect("previous file");
    }
    let index = dir.path().join("models/registry/index.json");
    std::fs::create_dir_all(index.parent().expect("registry dir")).expect("registry dir");
    std::fs::write(&index, "{ not json").expect("broken index");

    let out = train(dir.path(), "2", "models/model.bin", &[]);
    assert!(!out.status.success(), "training registered into a broken index");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("index.json") && stderr.contains("left as they were"),
        "{stderr}"
    );
    for (path, text) in previous {
        assert_eq!(
            std::fs::read_to_string(dir.path().join(path)).expect("file"),
            text,
            "{path} was overwritten"
        );
    }
}
