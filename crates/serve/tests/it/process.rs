//! The `serve` binary as a real process.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serve::Prediction;

use revspend_core::pseudonym::Pseudonymiser;
use revspend_core::registry::{NewVersion, Registry};

use crate::common::{self, Fixture, KEY, KNOWN_ID, MODEL_VERSION, http, raw_request};

pub fn serve(args: &[&str], cwd: &Path) -> Command {
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
        .env_remove("REVSPEND_ALLOW_DEVELOPMENT_KEY")
        .env_remove("REVSPEND_ADMIN_TOKEN")
        .env_remove("REVSPEND_RELOAD_INTERVAL_SECS")
        .env_remove("REVSPEND_ROUTING")
        .env_remove("REVSPEND_STATE_DIR")
        .env_remove("REVSPEND_PREDICTION_LOG")
        .env_remove("REVSPEND_NO_PREDICTION_LOG")
        .env_remove("REVSPEND_DRIFT_PROFILE")
        .env_remove("REVSPEND_NO_DRIFT")
        .env_remove("REVSPEND_DRIFT_WINDOW_SECS")
        .env("RUST_LOG", "info");
    command
}

pub fn failed_start(args: &[&str], cwd: &Path) -> String {
    failed(serve(args, cwd))
}

/// Runs a command that must fail at start-up; returns its stderr. Should the
/// server start instead, its `listening on` line ends the test (and the
/// server) rather than leaving the test waiting for an exit.
fn failed(mut command: Command) -> String {
    let mut child = Running(
        command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn serve"),
    );
    let stdout = child.0.stdout.take().expect("stdout");
    let mut first = String::new();
    let _ = BufReader::new(stdout).read_line(&mut first);
    assert!(!first.starts_with("listening on"), "the server started: {first}");
    let mut stderr = String::new();
    if let Some(mut pipe) = child.0.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
    }
    let status = child.0.wait().expect("wait for serve");
    assert_eq!(status.code(), Some(1), "{stderr}");
    stderr
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
#[derive(Debug)]
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary and reads the address from its `listening on` line.
pub fn start(args: &[&str], cwd: &Path) -> (Running, SocketAddr) {
    start_command(serve(args, cwd))
}

fn start_command(mut command: Command) -> (Running, SocketAddr) {
    let mut child = Running(
        command
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

pub fn new_version(model_version: &str) -> NewVersion {
    NewVersion {
        model_version: model_version.into(),
        algorithm: "forest".into(),
        hyperparameters: serde_json::json!({}),
        calibration: "none".into(),
        threshold: 0.5,
        params_hash: "p".into(),
        data_hash: "d".into(),
        git_commit: None,
        test_metrics: common::history_model().test_metrics,
    }
}

/// Issue 4: serve loads the version a registry alias points to.
#[test]
fn the_binary_serves_the_version_a_registry_alias_points_to() {
    let fixture = Fixture::new();
    let registry = Registry::new(fixture.dir.path().join("models/registry"));
    let bytes = std::fs::read(&fixture.model).expect("model bytes");
    let new = new_version;
    registry
        .register(&bytes, new(MODEL_VERSION), "test")
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
    // Issue 15: /version names the registry version and the alias followed.
    let (status, body) = http(addr, "GET", "/version", None);
    assert_eq!(status, 200, "{body}");
    let version: serde_json::Value = serde_json::from_str(&body).expect("version JSON");
    assert_eq!(version["origin"]["registry_alias"], "production", "{body}");
    assert!(
        version["origin"]["registry_version"]
            .as_str()
            .is_some_and(|v| v.starts_with('v')),
        "{body}"
    );

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

/// Issue 12 item 10: without REVSPEND_PSEUDONYM_KEY the server does not fall
/// back to the public development key on its own: it stops and says how to
/// set the key or opt in. With the opt-in it serves data made with that key
/// (and only that data).
#[test]
fn without_a_key_the_binary_refuses_to_start_unless_the_development_key_is_allowed() {
    let fixture = Fixture::new();
    let mut command = serve(&["--bind", "127.0.0.1:0"], fixture.dir.path());
    command.env_remove("REVSPEND_PSEUDONYM_KEY");
    let stderr = failed(command);
    assert!(
        stderr.contains("REVSPEND_PSEUDONYM_KEY is not set") && stderr.contains("--allow-development-key"),
        "{stderr}"
    );

    // Opted in, but the files were made with the fixture's secret key.
    let mut command = serve(
        &["--bind", "127.0.0.1:0", "--allow-development-key"],
        fixture.dir.path(),
    );
    command.env_remove("REVSPEND_PSEUDONYM_KEY");
    let stderr = failed(command);
    assert!(
        stderr.contains("the public development key") && stderr.contains("a secret key"),
        "{stderr}"
    );

    // Files made with the development key, and the opt-in through the
    // environment, as docker/compose.yaml sets it.
    let dev = Fixture::keyed(&Pseudonymiser::development());
    let mut command = serve(&["--bind", "127.0.0.1:0"], dev.dir.path());
    command
        .env_remove("REVSPEND_PSEUDONYM_KEY")
        .env("REVSPEND_ALLOW_DEVELOPMENT_KEY", "true");
    let (_child, addr) = start_command(command);
    let (status, body) = http(addr, "POST", "/predict", Some(&raw_request(KNOWN_ID).to_string()));
    assert_eq!(status, 200, "{body}");
    let p: Prediction = serde_json::from_str(&body).expect("prediction JSON");
    assert!(!p.cold_start, "the development-keyed snapshot is used");
}

/// Issue 12 item 11: started with a different key, the binary refuses to
/// start, naming the key's fingerprint and the snapshot's and model's,
/// instead of serving every customer as a cold start.
#[test]
fn a_wrong_key_is_a_start_up_error_naming_both_fingerprints() {
    let fixture = Fixture::new();
    let mut command = serve(&["--bind", "127.0.0.1:0"], fixture.dir.path());
    command.env("REVSPEND_PSEUDONYM_KEY", "not the key build-features used");
    let stderr = failed(command);
    let wrong = Pseudonymiser::new(b"not the key build-features used").key_fingerprint();
    let right = common::pseudonymiser().key_fingerprint();
    assert!(stderr.contains(&wrong) && stderr.contains(&right), "{stderr}");
    assert!(
        !stderr.contains("not the key build-features used"),
        "the key is never printed"
    );
}

/// Issue 12 item 12: the server checks what it loads from the registry
/// against the index entry: another model file copied into a version's
/// folder, or an entry whose path leads out of the registry, is refused
/// naming the version.
#[test]
fn the_binary_refuses_a_registry_file_that_is_not_the_one_registered() {
    let fixture = Fixture::new();
    let registry = Registry::new(fixture.dir.path().join("models/registry"));
    let bytes = std::fs::read(&fixture.model).expect("model bytes");
    registry
        .register(&bytes, new_version(MODEL_VERSION), "test")
        .expect("register v1");
    let args = ["--bind", "127.0.0.1:0", "--registry", "models/registry"];
    let (child, _) = start(&args, fixture.dir.path());
    drop(child);

    // A different, valid model copied over the registered file.
    let mut other = common::history_model();
    other.model_version = "forest-another000000".into();
    let version_file = fixture
        .dir
        .path()
        .join("models/registry/versions/v0001/model.bin");
    revspend_core::artifact::write_model(&version_file, &other).expect("replace");
    let stderr = failed_start(&args, fixture.dir.path());
    assert!(stderr.contains("v0001") && stderr.contains("SHA-256"), "{stderr}");

    // The index pointed outside the registry, at the (valid) tracked model.
    std::fs::write(&version_file, &bytes).expect("restore");
    let mut index = registry.index().expect("index");
    index.versions[0].artifact = "../model.bin".into();
    revspend_core::artifact::write_json(&registry.index_path(), &index).expect("edit index");
    let stderr = failed_start(&args, fixture.dir.path());
    assert!(
        stderr.contains("v0001") && stderr.contains("../model.bin") && stderr.contains("inside"),
        "{stderr}"
    );
}

/// Issue 15: the binary follows its registry alias without a restart,
/// noticing the promotion through the file watch (the periodic check is an
/// hour away) or, with the watch off, through the periodic check.
#[test]
fn the_binary_follows_a_promotion_without_a_restart() {
    follows_a_promotion(&["--reload-interval-secs", "3600"]);
    follows_a_promotion(&["--reload-interval-secs", "1", "--no-file-watch"]);
}

fn follows_a_promotion(how: &[&str]) {
    let fixture = Fixture::new();
    let registry = Registry::new(fixture.dir.path().join("models/registry"));
    for version in ["forest-test00000001", "forest-test00000002"] {
        let mut model = common::history_model();
        model.model_version = version.into();
        let path = fixture.dir.path().join(format!("{version}.bin"));
        revspend_core::artifact::write_model(&path, &model).expect("write model");
        let bytes = std::fs::read(&path).expect("bytes");
        registry
            .register(&bytes, new_version(version), "test")
            .expect("register");
    }
    let mut args = vec!["--bind", "127.0.0.1:0", "--registry", "models/registry"];
    args.extend_from_slice(how);
    let (_child, addr) = start(&args, fixture.dir.path());
    let served = || {
        let (status, body) = http(addr, "GET", "/version", None);
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("version JSON");
        v["model_version"].as_str().unwrap_or_default().to_owned()
    };
    assert_eq!(served(), "forest-test00000001");
    registry.promote("v0002", "production", "test").expect("promote");
    // A generous bound for a loaded machine; it normally takes about 1 s.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while served() != "forest-test00000002" {
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not follow the promotion ({how:?})"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, body) = http(addr, "POST", "/predict", Some(&raw_request(KNOWN_ID).to_string()));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("forest-test00000002"), "{body}");
}

/// Issue 15: SIGTERM stops the listener but lets a request in flight finish:
/// a client halfway through sending its body still gets its prediction,
/// new connections are refused, and the process exits 0.
#[test]
fn sigterm_finishes_requests_in_flight_then_exits() {
    use std::io::{Read, Write};
    let fixture = Fixture::new();
    let (mut child, addr) = start(
        &["--bind", "127.0.0.1:0", "--body-timeout-ms", "60000"],
        fixture.dir.path(),
    );
    let body = raw_request(KNOWN_ID).to_string();
    let (half, rest) = body.split_at(body.len() / 2);
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    write!(
        stream,
        "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{half}",
        body.len()
    )
    .expect("send the head and half the body");
    stream.flush().expect("flush");
    // The server has the request in flight before the signal.
    std::thread::sleep(Duration::from_millis(300));
    let pid = child.0.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
    assert!(killed.success());
    // New connections are refused once the listener is closed.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(addr).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "still accepting after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    stream.write_all(rest.as_bytes()).expect("send the rest");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read the answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"prediction_id\""), "{answer}");
    let status = child.0.wait().expect("wait");
    assert_eq!(status.code(), Some(0), "a graceful stop exits 0");
}
