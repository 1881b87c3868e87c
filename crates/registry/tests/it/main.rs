//! The registry: promote, rollback, the alias log and the atomic index,
//! through the library and the `registry` binary.

use std::path::Path;
use std::process::Command;

use revspend_core::metrics::BinaryMetrics;
use revspend_core::registry::{NewVersion, Registry, RegistryError};

fn new(model_version: &str) -> NewVersion {
    NewVersion {
        model_version: model_version.into(),
        algorithm: "gbm".into(),
        hyperparameters: serde_json::json!({"learning_rate": 0.1}),
        calibration: "platt".into(),
        threshold: 0.4,
        params_hash: "p".repeat(64),
        data_hash: "d".repeat(64),
        git_commit: Some("abc".into()),
        test_metrics: BinaryMetrics::compute(&[0.2, 0.8], &[false, true], 0.5),
    }
}

fn cli(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_registry"))
        .arg("--registry")
        .arg(dir)
        .args(args)
        .env("REVSPEND_USER", "cli-user")
        .output()
        .expect("run registry");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_first_version_bootstraps_production_and_later_ones_are_candidates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reg = Registry::new(dir.path().join("registry"));
    let v1 = reg.register(b"one", new("gbm-1"), "alice").expect("v1");
    let v2 = reg.register(b"two", new("gbm-2"), "alice").expect("v2");
    assert_eq!((v1.version.as_str(), v2.version.as_str()), ("v0001", "v0002"));
    let index = reg.index().expect("index");
    assert_eq!(index.aliases["production"], "v0001");
    assert_eq!(index.aliases["candidate"], "v0002");
    let reasons: Vec<&str> = index.alias_log.iter().map(|c| c.reason.as_str()).collect();
    assert_eq!(reasons, ["register", "bootstrap", "register"]);
    assert_eq!(
        std::fs::read(reg.model_path("candidate").expect("path")).expect("bytes"),
        b"two"
    );
    assert_eq!(
        std::fs::read(reg.model_path("v0001").expect("path")).expect("bytes"),
        b"one"
    );
}

#[test]
fn promote_and_rollback_move_production_and_are_logged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reg = Registry::new(dir.path());
    for i in 1..=3 {
        reg.register(format!("m{i}").as_bytes(), new(&format!("gbm-{i}")), "alice")
            .expect("register");
    }
    let change = reg.promote("candidate", "production", "bob").expect("promote");
    assert_eq!(
        (change.from.as_deref(), change.to.as_str()),
        (Some("v0001"), "v0003")
    );
    reg.promote("v0002", "production", "bob").expect("promote v2");
    assert_eq!(reg.resolve("production").expect("production").version, "v0002");

    let back = reg.rollback("production", "carol").expect("rollback");
    assert_eq!((back.from.as_deref(), back.to.as_str()), (Some("v0002"), "v0003"));
    let back = reg.rollback("production", "carol").expect("second rollback");
    assert_eq!(back.to, "v0001", "rollbacks step further back");
    let err = reg.rollback("production", "carol").expect_err("nothing earlier");
    assert!(matches!(err, RegistryError::NoPrevious { .. }), "{err}");

    let log = reg.index().expect("index").alias_log;
    let last = log.last().expect("entry");
    assert_eq!((last.who.as_str(), last.reason.as_str()), ("carol", "rollback"));
    assert!(log.iter().all(|c| !c.time.is_empty()));

    let err = reg.promote("v0009", "production", "bob").expect_err("unknown");
    assert!(
        err.to_string().contains("v0009") && err.to_string().contains("v0001"),
        "{err}"
    );
    assert!(
        reg.promote("v0001", "v2", "bob").is_err(),
        "an alias that reads as a version"
    );
}

#[test]
fn the_index_is_replaced_whole_and_a_held_lock_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reg = Registry::new(dir.path());
    reg.register(b"m", new("gbm-1"), "alice").expect("register");
    // Only the index, the lock-free directory and the versions remain: no
    // temporary file is left behind by the atomic write.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["index.json", "versions"]);
    let before = std::fs::read(reg.index_path()).expect("index");

    std::fs::write(dir.path().join(".lock"), "999999\n").expect("hold the lock");
    let err = reg.promote("v0001", "shadow", "bob").expect_err("locked");
    assert!(matches!(err, RegistryError::Locked { .. }), "{err}");
    assert_eq!(
        std::fs::read(reg.index_path()).expect("index"),
        before,
        "untouched"
    );
}

#[test]
fn the_cli_lists_shows_promotes_rolls_back_and_prints_experiments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reg = Registry::new(dir.path());
    reg.register(b"m1", new("gbm-1"), "alice").expect("v1");
    reg.register(b"m2", new("gbm-2"), "alice").expect("v2");
    reg.append_experiment(&serde_json::json!({
        "time": "2026-01-01T00:00:00Z", "version": "v0001",
        "chosen": {"algorithm": "gbm", "cv_mean": 0.95},
        "cv": {"metric": "pr_auc", "trials": [1, 2, 3]},
        "test": {"pr_auc": 0.951, "roc_auc": 0.99, "brier": 0.02, "ece": 0.004},
        "timings_s": {"total": 12.5}, "peak_rss_mb": 300.0,
        "params_hash": "0123456789", "data_hash": "abcdef0123"
    }))
    .expect("experiment");

    let (ok, out, err) = cli(dir.path(), &["list"]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with("version") && lines[1].contains("production"));
    assert!(lines[2].contains("candidate"));

    let (ok, out, err) = cli(dir.path(), &["promote", "candidate"]);
    assert!(ok, "{err}");
    assert_eq!(out, "production: v0001 -> v0002\n");
    let (ok, out, _) = cli(dir.path(), &["show", "production"]);
    assert!(ok);
    let shown: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(shown["version"], "v0002");
    let (ok, out, _) = cli(dir.path(), &["rollback"]);
    assert!(ok);
    assert_eq!(out, "production rolled back: v0002 -> v0001\n");
    let (_, out, _) = cli(dir.path(), &["log"]);
    assert!(
        out.lines()
            .last()
            .is_some_and(|l| l.contains("cli-user") && l.contains("rollback")),
        "{out}"
    );
    let (ok, out, _) = cli(dir.path(), &["experiments"]);
    assert!(ok);
    assert!(
        out.contains("pr_auc=0.9500") && out.contains("0.9510") && out.contains("01234567"),
        "{out}"
    );

    let (ok, _, err) = cli(dir.path(), &["show", "nope"]);
    assert!(!ok && err.contains("nope"), "{err}");
}
