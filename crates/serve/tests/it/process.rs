//! The `serve` binary as a real process.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serve::Prediction;

use crate::common::{Fixture, KEY, KNOWN_ID, http, raw_request};

fn serve(args: &[&str], cwd: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_serve"));
    command
        .args(args)
        .current_dir(cwd)
        .env("REVSPEND_PSEUDONYM_KEY", KEY)
        .env_remove("REVSPEND_BIND")
        .env_remove("REVSPEND_MODEL")
        .env_remove("REVSPEND_REGISTRY")
        .env_remove("REVSPEND_MODEL_ALIAS")
        .env_remove("REVSPEND_SNAPSHOT")
        .env_remove("REVSPEND_NO_SNAPSHOT")
        .env("RUST_LOG", "info");
    command
}

fn failed_start(args: &[&str], cwd: &Path) -> String {
    let Output { status, stderr, .. } = serve(args, cwd).output().expect("run serve");
    assert_eq!(status.code(), Some(1));
    String::from_utf8_lossy(&stderr).into_owned()
}

#[test]
fn a_corrupted_model_is_a_start_up_error_naming_the_file() {
    let fixture = Fixture::new();
    let mut bytes = std::fs::read(&fixture.model).expect("read model");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&fixture.model, bytes).expect("corrupt model");
    let stderr = failed_start(&["--bind", "127.0.0.1:0"], fixture.dir.path());
    assert!(
        stderr.contains("models/model.bin") && stderr.contains("checksum"),
        "{stderr}"
    );

    std::fs::write(&fixture.model, b"not a model").expect("overwrite model");
    let stderr = failed_start(&["--bind", "127.0.0.1:0"], fixture.dir.path());
    assert!(
        stderr.contains("models/model.bin") && stderr.contains("magic"),
        "{stderr}"
    );
}

#[test]
fn a_missing_snapshot_is_a_start_up_error_unless_waived() {
    let fixture = Fixture::new();
    std::fs::remove_file(&fixture.snapshot).expect("remove snapshot");
    let stderr = failed_start(&["--bind", "127.0.0.1:0"], fixture.dir.path());
    assert!(
        stderr.contains("data/online/snapshot.bin") && stderr.contains("--no-snapshot"),
        "{stderr}"
    );
}

/// Kills the child when the test ends, even by a panic.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary and reads the address from its `listening on` line.
fn start(args: &[&str], cwd: &Path) -> (Running, SocketAddr) {
    let mut child = Running(
        serve(args, cwd)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn"),
    );
    let stdout = child.0.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("a listening line");
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    (child, addr)
}

#[test]
fn the_binary_serves_on_the_port_it_prints() {
    let fixture = Fixture::new();
    let (_child, addr) = start(&["--bind", "127.0.0.1:0", "--workers", "1"], fixture.dir.path());
    let (status, body) = http(addr, "POST", "/predict", Some(&raw_request(KNOWN_ID).to_string()));
    assert_eq!(status, 200, "{body}");
    let p: Prediction = serde_json::from_str(&body).expect("prediction JSON");
    // The key came from the environment, as in production.
    assert!(!p.cold_start);
}

#[test]
fn the_binary_serves_cold_starts_without_a_snapshot() {
    let fixture = Fixture::new();
    std::fs::remove_file(&fixture.snapshot).expect("remove snapshot");
    let (_child, addr) = start(&["--bind", "127.0.0.1:0", "--no-snapshot"], fixture.dir.path());
    let (status, body) = http(addr, "POST", "/predict", Some(&raw_request(KNOWN_ID).to_string()));
    assert_eq!(status, 200, "{body}");
    let p: Prediction = serde_json::from_str(&body).expect("prediction JSON");
    assert!(p.cold_start);
}

/// Issue 4: serve loads the version a registry alias points to.
#[test]
fn the_binary_serves_the_version_a_registry_alias_points_to() {
    use revspend_core::registry::{NewVersion, Registry};

    let fixture = Fixture::new();
    let registry = Registry::new(fixture.dir.path().join("models/registry"));
    let bytes = std::fs::read(&fixture.model).expect("model bytes");
    let new = |model_version: &str| NewVersion {
        model_version: model_version.into(),
        algorithm: "forest".into(),
        hyperparameters: serde_json::json!({}),
        calibration: "none".into(),
        threshold: 0.5,
        params_hash: "p".into(),
        data_hash: "d".into(),
        git_commit: None,
        test_metrics: crate::common::history_model().test_metrics,
    };
    registry
        .register(&bytes, new("first"), "test")
        .expect("register v1");
    // A second version whose file is not a model: serving it must fail, so
    // a successful start proves the alias, not the newest version, was read.
    registry
        .register(b"not a model", new("second"), "test")
        .expect("register v2");
    let (_child, addr) = start(
        &[
            "--bind",
            "127.0.0.1:0",
            "--registry",
            "models/registry",
            "--model",
            "missing.bin",
        ],
        fixture.dir.path(),
    );
    let (status, body) = http(addr, "GET", "/health", None);
    assert_eq!(status, 200, "{body}");

    let stderr = failed_start(
        &[
            "--bind",
            "127.0.0.1:0",
            "--registry",
            "models/registry",
            "--alias",
            "candidate",
        ],
        fixture.dir.path(),
    );
    assert!(stderr.contains("v0002") && stderr.contains("magic"), "{stderr}");
    let stderr = failed_start(
        &[
            "--bind",
            "127.0.0.1:0",
            "--registry",
            "models/registry",
            "--alias",
            "nope",
        ],
        fixture.dir.path(),
    );
    assert!(stderr.contains("nope") && stderr.contains("v0001"), "{stderr}");
}
