//! The registry: promote, rollback, the alias log and the atomic index,
//! through the library and the `registry` binary; the experiment report in
//! its module.

mod experiment_report;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use revspend_core::artifact;
use revspend_core::calibration::Calibrator;
use revspend_core::features::Feature;
use revspend_core::metrics::BinaryMetrics;
use revspend_core::model::{Classifier, ModelArtifact, Reliability};
use revspend_core::registry::{Index, NewVersion, Registry, RegistryError};
use revspend_core::target::TargetRule;

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

/// The bytes of a real (tiny) model file whose model version is
/// `model_version`: what `train` registers.
fn model_bytes(model_version: &str) -> Vec<u8> {
    let train_params = "{}".to_owned();
    let model = ModelArtifact {
        model_version: model_version.into(),
        algorithm: "prior".into(),
        hyperparameters: "{}".into(),
        features: vec![Feature::Valor],
        rule: TargetRule {
            threshold_pct: 20.0,
            vital_groups: vec!["SERVICO".into()],
        },
        classifier: Classifier::Prior { probability: 0.1 },
        calibrator: Calibrator::Identity,
        threshold: 0.5,
        threshold_source: "params".into(),
        training_prior: 0.1,
        params_hash: artifact::sha256_hex(train_params.as_bytes()),
        train_params,
        data_hash: "d".repeat(64),
        test_metrics: BinaryMetrics::compute(&[0.2, 0.8], &[false, true], 0.5),
        reliability: Reliability {
            before: Vec::new(),
            after: Vec::new(),
            ece_before: 0.0,
            ece_after: 0.0,
        },
        written_by: "registry tests".into(),
        key_fingerprint: "0".repeat(32),
    };
    artifact::encode_model(&model).expect("encode model")
}

/// Registers `n` real models `gbm-1` … `gbm-n` as v0001 … v000n.
fn registry_of(dir: &Path, n: usize) -> Registry {
    let reg = Registry::new(dir);
    for i in 1..=n {
        let name = format!("gbm-{i}");
        reg.register(&model_bytes(&name), new(&name), "alice")
            .expect("register");
    }
    reg
}

/// Rewrites the index through a closure (what a hand edit or a tampering
/// would do).
fn edit_index(reg: &Registry, edit: impl FnOnce(&mut Index)) {
    let mut index = reg.index().expect("index");
    edit(&mut index);
    artifact::write_json(&reg.index_path(), &index).expect("write index");
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
    let reg = registry_of(dir.path(), 3);
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
    let reg = registry_of(dir.path(), 1);
    // Only the index, the lock file and the versions remain: no temporary
    // file is left behind by the atomic write.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, [".lock", "index.json", "versions"]);
    let before = std::fs::read(reg.index_path()).expect("index");

    // Another open of the lock file holding its kernel lock: a live writer.
    let held = std::fs::File::options()
        .write(true)
        .open(dir.path().join(".lock"))
        .expect("open the lock file");
    held.lock().expect("hold the lock");
    let err = reg.promote("v0001", "shadow", "bob").expect_err("locked");
    assert!(matches!(err, RegistryError::Locked { .. }), "{err}");
    assert!(err.to_string().contains(".lock"), "{err}");
    assert_eq!(
        std::fs::read(reg.index_path()).expect("index"),
        before,
        "untouched"
    );
    drop(held);
    reg.promote("v0001", "shadow", "bob")
        .expect("the lock is free once its holder lets go");
}

/// Kills the helper process when the test ends, even by a panic.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Marker the lock-holding helper process prints once it holds the lock.
const LOCK_HELD: &str = "REGISTRY-LOCK-HELD";

/// Not a test of its own: the child process of
/// `a_lock_left_by_a_killed_process_blocks_neither_rollback_nor_registration`,
/// which takes the registry's kernel lock as a registry command does and
/// waits to be killed.
#[test]
#[ignore = "helper process, run by the stale-lock test"]
fn helper_hold_the_registry_lock_until_killed() {
    let Ok(path) = std::env::var("REVSPEND_TEST_LOCK_FILE") else {
        return;
    };
    let mut file = std::fs::File::options()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .expect("open the lock file");
    file.lock().expect("take the lock");
    std::io::Write::write_all(&mut file, format!("{}\n", std::process::id()).as_bytes()).expect("write pid");
    println!("{LOCK_HELD}");
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

/// Issue 12 item 14: a registry command killed while it held the lock
/// leaves `.lock` behind; that file must not block the rollback an
/// incident needs, nor the next registration (the kernel lock died with
/// its process). A lock file of the old kind (a pid, no process) neither.
#[test]
fn a_lock_left_by_a_killed_process_blocks_neither_rollback_nor_registration() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reg = registry_of(dir.path(), 2);
    reg.promote("v0002", "production", "bob").expect("promote");
    let lock = dir.path().join(".lock");

    let mut child = KillOnDrop(
        Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--ignored",
                "--exact",
                "helper_hold_the_registry_lock_until_killed",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("REVSPEND_TEST_LOCK_FILE", &lock)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the lock holder"),
    );
    let stdout = child.0.stdout.take().expect("stdout");
    let held = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|l| l.contains(LOCK_HELD));
    assert!(held, "the helper did not take the lock");
    // While it lives, it holds the lock: the same lock the registry takes.
    let err = reg
        .rollback("production", "carol")
        .expect_err("held by a live process");
    assert!(matches!(err, RegistryError::Locked { .. }), "{err}");

    child.0.kill().expect("kill -9 the holder");
    child.0.wait().expect("reap the holder");
    assert!(lock.exists(), "the killed process left its lock file");
    let back = reg
        .rollback("production", "carol")
        .expect("rollback after the kill");
    assert_eq!(back.to, "v0001");
    reg.register(&model_bytes("gbm-3"), new("gbm-3"), "alice")
        .expect("register after the kill");

    // What a killed process of an older build left: a pid in the file.
    std::fs::write(&lock, "999999\n").expect("old-style leftover");
    reg.promote("v0003", "production", "bob")
        .expect("an old leftover lock file does not block either");
}

/// Issue 12 item 13: promote and rollback check the target's file first
/// (present, a valid model, the SHA-256 and model version registered) and
/// refuse a bad one, leaving the alias (and the whole index) unchanged.
#[test]
fn promote_and_rollback_refuse_a_missing_corrupt_or_replaced_target_leaving_the_alias() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reg = registry_of(dir.path(), 4);
    let file = |v: &str| dir.path().join(format!("versions/{v}/model.bin"));
    // v0002 missing, v0003 garbage (registered so: its SHA-256 matches),
    // v0004's file replaced by another valid model.
    std::fs::remove_file(file("v0002")).expect("remove");
    reg.register(b"not a model", new("gbm-5"), "alice")
        .expect("v0005 garbage");
    std::fs::copy(file("v0001"), file("v0004")).expect("replace v0004");
    let before = std::fs::read(reg.index_path()).expect("index");

    for (version, why) in [("v0002", "cannot read"), ("v0005", "magic"), ("v0004", "SHA-256")] {
        let err = reg.promote(version, "production", "bob").expect_err(version);
        assert!(matches!(err, RegistryError::Unverified { .. }), "{err}");
        let message = format!("{:#}", anyhow::Error::from(err));
        assert!(
            message.contains(version) && message.contains(why),
            "{version}: {message}"
        );
        assert_eq!(
            std::fs::read(reg.index_path()).expect("index"),
            before,
            "{version}: the index changed"
        );
    }
    let (ok, _, err) = cli(dir.path(), &["promote", "v0005"]);
    assert!(!ok && err.contains("v0005") && err.contains("magic"), "{err}");
    assert_eq!(reg.resolve("production").expect("production").version, "v0001");

    // Rollback: production v0001 -> v0003, then v0001's file goes bad.
    reg.promote("v0003", "production", "bob")
        .expect("promote a good one");
    std::fs::write(file("v0001"), b"garbage").expect("corrupt v0001");
    let err = reg.rollback("production", "carol").expect_err("bad previous");
    assert!(err.to_string().contains("v0001"), "{err}");
    assert_eq!(reg.resolve("production").expect("production").version, "v0003");
    let (ok, _, err) = cli(dir.path(), &["rollback"]);
    assert!(!ok && err.contains("v0001") && err.contains("SHA-256"), "{err}");
    assert_eq!(reg.resolve("production").expect("production").version, "v0003");
}

/// Issue 12 item 12: loading a version checks the file against its index
/// entry (SHA-256, model version), naming the version.
#[test]
fn loading_a_version_checks_its_sha256_and_model_version_against_the_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reg = registry_of(dir.path(), 2);
    let loaded = reg.load("production").expect("load");
    assert_eq!(loaded.model.model_version, "gbm-1");
    assert_eq!(loaded.entry.version, "v0001");

    // Another (valid) model copied into v0001's folder.
    std::fs::copy(
        dir.path().join("versions/v0002/model.bin"),
        dir.path().join("versions/v0001/model.bin"),
    )
    .expect("copy");
    let err = reg.load("production").expect_err("replaced file");
    assert!(matches!(err, RegistryError::ArtifactSha256 { .. }), "{err}");
    assert!(err.to_string().contains("v0001"), "{err}");

    // The index edited to the copied file's hash: the model version differs.
    let sha = artifact::file_sha256(&dir.path().join("versions/v0001/model.bin")).expect("sha");
    edit_index(&reg, |index| index.versions[0].artifact_sha256 = sha);
    let err = reg.load("production").expect_err("other model");
    assert!(matches!(err, RegistryError::ModelVersion { .. }), "{err}");
    assert!(
        err.to_string().contains("gbm-1") && err.to_string().contains("gbm-2"),
        "{err}"
    );
}

/// Issue 12 item 12: an index entry's artifact path may not lead out of the
/// registry: `..`, an absolute path and a symlink out are refused, naming
/// the entry.
#[test]
fn an_artifact_path_leading_out_of_the_registry_is_refused_naming_the_entry() {
    let outer = tempfile::tempdir().expect("tempdir");
    let dir = outer.path().join("registry");
    let reg = registry_of(&dir, 1);
    let outside = outer.path().join("outside.bin");
    std::fs::write(&outside, model_bytes("gbm-1")).expect("outside file");
    let sha = artifact::file_sha256(&outside).expect("sha");
    for artifact_path in ["../outside.bin", outside.to_str().expect("utf-8")] {
        edit_index(&reg, |index| {
            index.versions[0].artifact = artifact_path.to_owned();
            index.versions[0].artifact_sha256 = sha.clone();
        });
        for err in [
            reg.load("production").expect_err(artifact_path),
            reg.model_path("v0001").map(|_| ()).expect_err(artifact_path),
            reg.promote("v0001", "shadow", "bob")
                .map(|_| ())
                .expect_err(artifact_path),
        ] {
            let message = format!("{:#}", anyhow::Error::from(err));
            assert!(
                message.contains("v0001") && message.contains(artifact_path),
                "{message}"
            );
        }
    }
    // A symlink inside the registry that points out of it.
    edit_index(&reg, |index| {
        index.versions[0].artifact = "versions/v0001/model.bin".to_owned();
    });
    let link = dir.join("versions/v0001/model.bin");
    std::fs::remove_file(&link).expect("remove");
    std::os::unix::fs::symlink(&outside, &link).expect("symlink");
    let err = reg.load("production").expect_err("symlink out");
    assert!(matches!(err, RegistryError::ArtifactOutside { .. }), "{err}");
    assert!(err.to_string().contains("symlink"), "{err}");
}

/// Issue 12 item 15: each alias change records the operating-system user
/// beside the name the caller claimed, and `registry log` shows both.
#[test]
fn the_alias_log_records_the_os_user_beside_the_claimed_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reg = registry_of(dir.path(), 2);
    let (ok, _, err) = cli(dir.path(), &["promote", "candidate"]);
    assert!(ok, "{err}");
    let me = revspend_core::registry::os_user();
    let log = reg.index().expect("index").alias_log;
    assert!(
        log.iter().all(|c| c.os_user.as_deref() == Some(me.as_str())),
        "{log:?}"
    );
    let last = log.last().expect("entry");
    assert_eq!(last.who, "cli-user", "the claim is kept");
    assert!(me.contains("uid "), "{me}");
    let (_, out, _) = cli(dir.path(), &["log"]);
    assert!(out.lines().next().is_some_and(|h| h.contains("os_user")), "{out}");
    assert!(
        out.lines()
            .last()
            .is_some_and(|l| l.contains("cli-user") && l.contains(&me)),
        "{out}"
    );
    // An index written before the field existed still reads.
    let text = std::fs::read_to_string(reg.index_path()).expect("index");
    let old: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("\"os_user\""))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(reg.index_path(), old).expect("old index");
    assert!(
        reg.index().expect("old index reads").alias_log[0]
            .os_user
            .is_none()
    );
}

#[test]
fn the_cli_lists_shows_promotes_rolls_back_and_prints_experiments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reg = registry_of(dir.path(), 2);
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

/// Issue 12: a registry write killed half-way leaves a temporary file
/// beside the index or in the version folder it was writing; the next
/// writer (holding the lock) removes it, and leaves everything else.
#[test]
fn temporary_files_of_a_killed_registry_write_are_removed_by_the_next_writer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reg = registry_of(&dir.path().join("registry"), 2);
    let root = reg.dir().to_owned();
    std::fs::create_dir_all(root.join("versions/v0003")).expect("mkdir");
    for leftover in [".tmp-AbC123", "versions/v0003/.tmp-XyZ789"] {
        std::fs::write(root.join(leftover), b"half").expect("plant");
    }
    std::fs::write(root.join("notes.tmp-keep"), b"mine").expect("plant");
    reg.promote("v0002", "production", "alice").expect("promote");
    assert!(!root.join(".tmp-AbC123").exists());
    assert!(root.join("notes.tmp-keep").exists());
    let v3 = reg
        .register(&model_bytes("gbm-3"), new("gbm-3"), "alice")
        .expect("v3");
    assert_eq!(v3.version, "v0003");
    let left: Vec<_> = std::fs::read_dir(root.join("versions/v0003"))
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(left, ["model.bin"]);
    reg.load("v0003")
        .expect("the version registered over the leftover loads");
}
