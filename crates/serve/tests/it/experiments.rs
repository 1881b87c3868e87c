//! Issue 16: online experiments through the server: sticky A/B variants,
//! shadow scoring that never changes or holds up a response, feedback
//! (unknown and duplicate ids refused), routing changes without a restart
//! under load, and, with the binary as a process, a bandit's state and the
//! feedback index surviving a kill and the prediction log losing nothing on
//! SIGTERM.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::{App, test as actix_test, web};
use revspend_core::artifact::{self, prediction_log};
use revspend_core::registry::Registry;
use serde_json::{Value, json};
use serve::{AppState, Config, ModelSource, build_shared_server, configure};

use crate::common::{Fixture, KNOWN_ID, history_model, http, pseudonymiser, raw_request};
use crate::process::{Running, failed_start, new_version, start};

/// The primary's model version and the candidate's, which flags every
/// purchase (threshold 0) so its answers differ from the primary's.
const PRIMARY: &str = "gbm-primary00000001";
const CANDIDATE: &str = "gbm-candidat0000002";

/// A fixture with a registry: `v0001` (production) and `v0002`
/// (candidate), and a routing file written from `routing`.
struct Experiment {
    fixture: Fixture,
    routing: PathBuf,
}

impl Experiment {
    fn new(routing: &str) -> Experiment {
        let fixture = Fixture::new();
        let registry = Registry::new(fixture.dir.path().join("models/registry"));
        for (version, threshold, alias) in [(PRIMARY, 0.5, "production"), (CANDIDATE, 0.0, "candidate")] {
            let mut model = history_model();
            model.model_version = version.into();
            model.threshold = threshold;
            let path = fixture.dir.path().join(format!("{version}.bin"));
            artifact::write_model(&path, &model).expect("write model");
            let bytes = std::fs::read(&path).expect("model bytes");
            let entry = registry
                .register(&bytes, new_version(version), "test")
                .expect("register");
            registry.promote(&entry.version, alias, "test").expect("alias");
        }
        let path = fixture.dir.path().join("config/routing.yaml");
        std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
        std::fs::write(&path, routing).expect("routing");
        Experiment {
            fixture,
            routing: path,
        }
    }

    fn dir(&self) -> &Path {
        self.fixture.dir.path()
    }

    fn log_dir(&self) -> PathBuf {
        self.dir().join("logs/predictions")
    }

    fn config(&self) -> Config {
        let mut config = self.fixture.config();
        config.model = ModelSource::Registry {
            dir: self.dir().join("models/registry"),
            alias: "production".into(),
        };
        config.routing = Some(self.routing.clone());
        config.state_dir = Some(self.dir().join("logs/state"));
        config.prediction_log = Some(self.log_dir());
        config
    }

    fn state(&self) -> AppState {
        AppState::load(&self.config(), pseudonymiser()).expect("load")
    }

    /// Every record in the prediction log.
    fn records(&self) -> Vec<prediction_log::Record> {
        let mut records = Vec::new();
        let window = prediction_log::Window {
            include_open: true,
            ..Default::default()
        };
        prediction_log::read_records(&self.log_dir(), window, |r| records.push(r)).expect("read log");
        records
    }
}

fn routing(policy: &str) -> String {
    format!(
        "experiment: exp-test\nvariants:\n  - {{name: production, model: production}}\n  \
         - {{name: candidate, model: candidate}}\npolicy: {policy}\n"
    )
}

/// POSTs JSON to an app from `init_service`: the status and the JSON body.
macro_rules! post {
    ($app:expr, $path:expr, $body:expr) => {{
        let request = actix_test::TestRequest::post()
            .uri($path)
            .insert_header(("content-type", "application/json"))
            .set_payload($body.to_string())
            .to_request();
        let response = actix_test::call_service($app, request).await;
        let status = response.status().as_u16();
        let body: Value = actix_test::read_body_json(response).await;
        (status, body)
    }};
}

/// Every customer sees the same variant on every request, and both variants
/// get customers; each answer names the variant and its model.
#[actix_web::test]
async fn an_ab_split_is_sticky_per_customer() {
    let experiment = Experiment::new(&routing("{kind: ab, weights: {production: 1, candidate: 1}}"));
    let app = actix_test::init_service(
        App::new()
            .app_data(web::Data::new(experiment.state()))
            .configure(configure),
    )
    .await;
    let mut assigned: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for round in 0..2 {
        for customer in 3000..3100 {
            let (status, p) = post!(&app, "/predict", raw_request(&customer.to_string()));
            assert_eq!(status, 200, "{p}");
            let variant = p["variant"].as_str().expect("variant").to_owned();
            let model = p["model_version"].as_str().expect("model");
            assert_eq!(
                model,
                if variant == "production" {
                    PRIMARY
                } else {
                    CANDIDATE
                },
                "round {round}"
            );
            assigned.entry(customer.to_string()).or_default().insert(variant);
        }
    }
    assert!(
        assigned.values().all(|v| v.len() == 1),
        "a customer saw two variants"
    );
    let candidates = assigned.values().filter(|v| v.contains("candidate")).count();
    assert!(
        (30..70).contains(&candidates),
        "{candidates} of 100 on the candidate"
    );
}

/// Shadow at 100 % with the shadow worker stalled: every answer still comes
/// at once from the primary, unchanged; what the queue cannot hold is
/// dropped and counted; once the worker runs, the shadow scores are logged
/// next to their predictions.
#[actix_web::test]
// The held guard is the point: it stalls the shadow worker (another
// thread) while requests are served; nothing on the request path takes it.
#[allow(clippy::await_holding_lock)]
async fn shadow_scoring_never_changes_or_holds_up_a_response() {
    let experiment = Experiment::new(&routing("{kind: shadow, variants: [candidate], fraction: 1.0}"));
    let mut config = experiment.config();
    config.shadow_queue = 4;
    let state = web::Data::new(AppState::load(&config, pseudonymiser()).expect("load"));
    let app = actix_test::init_service(App::new().app_data(state.clone()).configure(configure)).await;
    let plain = Experiment::new(&routing("{kind: plain}"));
    let plain_app = actix_test::init_service(
        App::new()
            .app_data(web::Data::new(plain.state()))
            .configure(configure),
    )
    .await;
    let mut ids = Vec::new();
    {
        let _stalled = state.pause_shadow();
        let answered = actix_web::rt::time::timeout(Duration::from_secs(60), async {
            for i in 0..40 {
                let customer = if i % 2 == 0 {
                    KNOWN_ID.to_owned()
                } else {
                    format!("{}", 5000 + i)
                };
                let (status, p) = post!(&app, "/predict", raw_request(&customer));
                let (_, reference) = post!(&plain_app, "/predict", raw_request(&customer));
                assert_eq!(status, 200, "{p}");
                assert_eq!(p["variant"], "production");
                assert_eq!(p["model_version"], PRIMARY);
                for field in ["probability", "is_revenge_spending", "threshold", "cold_start"] {
                    assert_eq!(p[field], reference[field], "{field}");
                }
                ids.push(p["prediction_id"].as_str().expect("id").to_owned());
            }
        })
        .await;
        assert!(answered.is_ok(), "a stalled shadow held requests up");
    }
    let metrics = state.metrics_text().expect("metrics");
    let value = |name: &str| -> u64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
    };
    let dropped = value("revspend_shadow_dropped_total");
    // The queue holds 4, the stalled worker 1 more.
    assert!((35..=36).contains(&dropped), "{dropped} dropped");
    let queued = 40 - dropped;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while value_of(&state, "revspend_shadow_scored_total") < queued {
        assert!(
            std::time::Instant::now() < deadline,
            "the shadow rows were not scored"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    state.shutdown();
    let records = experiment.records();
    let shadows: Vec<&prediction_log::ShadowRecord> = records
        .iter()
        .filter_map(|r| match r {
            prediction_log::Record::Shadow(s) => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(shadows.len() as u64, queued);
    for s in &shadows {
        assert!(ids.contains(&s.prediction_id));
        assert_eq!(
            (s.variant.as_str(), s.model_version.as_str()),
            ("candidate", CANDIDATE)
        );
        assert!(s.decision, "the candidate flags everything");
    }
    let predictions = records
        .iter()
        .filter(|r| matches!(r, prediction_log::Record::Prediction(p) if p.variant == "production"))
        .count();
    assert_eq!(predictions, 40);
}

fn value_of(state: &AppState, name: &str) -> u64 {
    let metrics = state.metrics_text().expect("metrics");
    metrics
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Feedback rewards the variant that answered; an unknown or malformed id,
/// a second feedback and a reward outside [0, 1] under a bandit are
/// refused and change nothing, alone or inside an array.
#[actix_web::test]
async fn feedback_for_unknown_and_duplicate_ids_is_refused_and_changes_nothing() {
    let experiment = Experiment::new(&routing("{kind: bandit, algorithm: thompson, seed: 1}"));
    let state = web::Data::new(experiment.state());
    let app = actix_test::init_service(App::new().app_data(state.clone()).configure(configure)).await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        let (status, p) = post!(&app, "/predict", raw_request(KNOWN_ID));
        assert_eq!(status, 200);
        ids.push((
            p["prediction_id"].as_str().expect("id").to_owned(),
            p["variant"].as_str().expect("v").to_owned(),
        ));
    }
    let (status, taken) = post!(
        &app,
        "/feedback",
        &json!({"prediction_id": ids[0].0, "outcome": true})
    );
    assert_eq!(status, 200, "{taken}");
    assert_eq!(taken["variant"], ids[0].1.as_str());
    assert_eq!(taken["bandit"], true);
    let (status, again) = post!(
        &app,
        "/feedback",
        &json!({"prediction_id": ids[0].0, "outcome": false})
    );
    assert_eq!(
        (status, again["field"].as_str()),
        (409, Some("prediction_id")),
        "{again}"
    );
    let unknown = "01a22db4-c095-754f-ad8f-596a0f323c2c";
    let (status, body) = post!(
        &app,
        "/feedback",
        &json!({"prediction_id": unknown, "outcome": true})
    );
    assert_eq!(status, 404, "{body}");
    let (status, body) = post!(
        &app,
        "/feedback",
        &json!({"prediction_id": "not-an-id", "outcome": true})
    );
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("prediction_id")),
        "{body}"
    );
    let (status, body) = post!(
        &app,
        "/feedback",
        &json!({"prediction_id": ids[1].0, "outcome": true, "reward": 1})
    );
    assert_eq!(status, 400, "{body}");
    let (status, body) = post!(
        &app,
        "/feedback",
        &json!({"prediction_id": ids[1].0, "reward": 2.5})
    );
    assert_eq!(
        (status, body["rule"].as_str()),
        (422, Some("bandit_reward_range")),
        "{body}"
    );
    let (status, body) = post!(
        &app,
        "/feedback",
        &json!({"prediction_id": ids[1].0, "outcom": true})
    );
    assert_eq!(status, 400, "{body}");
    let batch = json!([
        {"prediction_id": ids[1].0, "reward": 0.25},
        {"prediction_id": ids[0].0, "outcome": true},
        {"prediction_id": unknown, "outcome": true},
        {"prediction_id": ids[2].0, "outcome": false},
        {"prediction_id": ids[2].0, "outcome": false},
    ]);
    let (status, body) = post!(&app, "/feedback", &batch);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["accepted"].as_u64(), body["refused"].as_u64()),
        (Some(2), Some(3)),
        "{body}"
    );
    let statuses: Vec<u64> = body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["status"].as_u64().unwrap_or(200))
        .collect();
    assert_eq!(statuses, [200, 409, 404, 200, 409]);
    // Three accepted in all: the bandit has exactly those rewards.
    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::get().uri("/experiment").to_request(),
    )
    .await;
    let status: Value = actix_test::read_body_json(response).await;
    let arms = status["bandit"].as_array().expect("arms");
    let feedbacks: u64 = arms.iter().map(|a| a["feedbacks"].as_u64().unwrap_or(0)).sum();
    let pulls: u64 = arms.iter().map(|a| a["pulls"].as_u64().unwrap_or(0)).sum();
    assert_eq!((feedbacks, pulls), (3, 4), "{status}");
    state.shutdown();
    let feedback_records = experiment
        .records()
        .iter()
        .filter(|r| matches!(r, prediction_log::Record::Feedback(_)))
        .count();
    assert_eq!(feedback_records, 3);
}

/// The routing file changes under load (a new split, then a canary) and
/// the server reloads each time: no request fails, and the new routing
/// answers from then on.
#[actix_web::test]
async fn routing_changes_take_effect_without_a_restart_and_no_request_fails() {
    let experiment = Experiment::new(&routing("{kind: plain}"));
    let data = web::Data::new(experiment.state());
    let (server, addr) = build_shared_server(data.clone(), "127.0.0.1:0", 2).expect("bind");
    let handle = server.handle();
    let running = actix_web::rt::spawn(server);
    let done = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let done = done.clone();
            std::thread::spawn(move || {
                let mut seen = BTreeSet::new();
                let mut n = 0u32;
                while !done.load(Ordering::Relaxed) {
                    n += 1;
                    let body = raw_request(&format!("{}", 7000 + c * 1000 + n % 200)).to_string();
                    let (status, answer) = http(addr, "POST", "/predict", Some(&body));
                    assert_eq!(status, 200, "{answer}");
                    let p: Value = serde_json::from_str(&answer).expect("prediction");
                    seen.insert(p["variant"].as_str().unwrap_or_default().to_owned());
                }
                seen
            })
        })
        .collect();
    let path = experiment.routing.clone();
    let reloader = {
        let data = data.clone();
        actix_web::rt::task::spawn_blocking(move || {
            let policies = [
                "{kind: ab, weights: {production: 1, candidate: 1}}",
                "{kind: canary, variant: candidate, percent: 50}",
                "{kind: plain}",
            ];
            for i in 0..12 {
                std::fs::write(&path, routing(policies[i % 3])).expect("routing");
                let outcome = data.reload(false).expect("reload");
                assert_eq!(outcome.experiment, "exp-test");
                std::thread::sleep(Duration::from_millis(30));
            }
        })
    };
    reloader.await.expect("reloader");
    done.store(true, Ordering::Relaxed);
    let mut seen = BTreeSet::new();
    for c in clients {
        seen.extend(c.join().expect("client"));
    }
    handle.stop(true).await;
    running.await.expect("server task").expect("server");
    assert_eq!(
        seen,
        BTreeSet::from(["candidate".to_owned(), "production".to_owned()])
    );

    // A routing file that does not check is refused and the old one stays.
    std::fs::write(
        &experiment.routing,
        routing("{kind: ab, weights: {production: 1, candidat: 1}}"),
    )
    .expect("routing");
    let err = data.reload(false).expect_err("refused");
    assert!(format!("{err:#}").contains("policy.weights.candidat"), "{err:#}");
    assert_eq!(data.deployment().expect("serving").routing.variants.len(), 2);
}

/// The binary's flags in an [`Experiment`]'s directory.
const BINARY_ARGS: [&str; 6] = [
    "--bind",
    "127.0.0.1:0",
    "--registry",
    "models/registry",
    "--routing",
    "config/routing.yaml",
];

/// The binary with a bandit: the bandit's state and the feedback index
/// survive `kill -9` (what was acknowledged was persisted first).
#[test]
fn the_bandit_state_and_the_feedback_index_survive_a_kill() {
    let experiment = Experiment::new(&routing("{kind: bandit, algorithm: thompson}"));
    let ids: Vec<String> = {
        let (child, addr) = start(&BINARY_ARGS, experiment.dir());
        let ids: Vec<String> = (0..12)
            .map(|i| {
                let (status, body) = http(
                    addr,
                    "POST",
                    "/predict",
                    Some(&raw_request(&format!("{}", 9000 + i)).to_string()),
                );
                assert_eq!(status, 200, "{body}");
                let p: Value = serde_json::from_str(&body).expect("prediction");
                p["prediction_id"].as_str().expect("id").to_owned()
            })
            .collect();
        for id in &ids[..8] {
            let feedback = json!({"prediction_id": id, "outcome": true}).to_string();
            let (status, body) = http(addr, "POST", "/feedback", Some(&feedback));
            assert_eq!(status, 200, "{body}");
        }
        kill_9(child);
        ids
    };
    let (_child, addr) = start(&BINARY_ARGS, experiment.dir());
    let (_, body) = http(addr, "GET", "/experiment", None);
    let status: Value = serde_json::from_str(&body).expect("status");
    let feedbacks: u64 = status["bandit"]
        .as_array()
        .expect("arms")
        .iter()
        .map(|a| a["feedbacks"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(feedbacks, 8, "{status}");
    // A feedback given before the kill is still a duplicate; a prediction
    // made before it still takes its feedback.
    let again = json!({"prediction_id": ids[0], "outcome": true}).to_string();
    assert_eq!(http(addr, "POST", "/feedback", Some(&again)).0, 409);
    let late = json!({"prediction_id": ids[10], "outcome": false}).to_string();
    let (status, body) = http(addr, "POST", "/feedback", Some(&late));
    assert_eq!(status, 200, "{body}");
}

fn kill_9(mut child: Running) {
    let pid = child.0.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let _ = child.0.wait();
}

/// SIGTERM while clients are sending: every prediction a client was
/// answered for is in the log, and no file is left open.
#[test]
fn sigterm_loses_no_acknowledged_prediction() {
    let experiment = Experiment::new(&routing("{kind: ab, weights: {production: 1, candidate: 1}}"));
    let (mut child, addr) = start(&BINARY_ARGS, experiment.dir());
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut answered = Vec::new();
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) || n < 50 {
                    n += 1;
                    let body = raw_request(&format!("{}", 11000 + c * 100 + n)).to_string();
                    // Once the listener closes, connecting fails: stop there.
                    let Ok(answer) = std::panic::catch_unwind(|| http(addr, "POST", "/predict", Some(&body)))
                    else {
                        break;
                    };
                    if answer.0 != 200 {
                        break;
                    }
                    let p: Value = serde_json::from_str(&answer.1).expect("prediction");
                    answered.push(p["prediction_id"].as_str().expect("id").to_owned());
                }
                answered
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let pid = child.0.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let mut answered = BTreeSet::new();
    for c in clients {
        answered.extend(c.join().expect("client"));
    }
    let status = child.0.wait().expect("wait");
    assert_eq!(status.code(), Some(0));
    assert!(answered.len() >= 200, "{} answered", answered.len());
    let logged: BTreeSet<String> = experiment
        .records()
        .into_iter()
        .filter_map(|r| match r {
            prediction_log::Record::Prediction(p) => Some(p.prediction_id),
            _ => None,
        })
        .collect();
    let missing: Vec<&String> = answered.difference(&logged).collect();
    assert!(
        missing.is_empty(),
        "{} answered predictions not logged",
        missing.len()
    );
    let open = prediction_log::log_files(
        &experiment.log_dir(),
        prediction_log::Window {
            include_open: true,
            ..Default::default()
        },
    )
    .expect("files")
    .into_iter()
    .filter(|p| p.to_string_lossy().ends_with(".partial"))
    .count();
    assert_eq!(open, 0, "a log file was left open");
}

/// The binary follows an edit of its routing file (the file watch), with
/// no restart and no admin call.
#[test]
fn the_binary_follows_an_edited_routing_file() {
    let experiment = Experiment::new(&routing("{kind: plain}"));
    let (_child, addr) = start(&BINARY_ARGS, experiment.dir());
    let kind = || {
        let (_, body) = http(addr, "GET", "/experiment", None);
        let status: Value = serde_json::from_str(&body).expect("status");
        status["policy"]["kind"].as_str().unwrap_or_default().to_owned()
    };
    assert_eq!(kind(), "plain");
    std::fs::write(
        &experiment.routing,
        routing("{kind: canary, variant: candidate, percent: 100}"),
    )
    .expect("edit");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while kind() != "canary" {
        assert!(std::time::Instant::now() < deadline, "the edit was not followed");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, body) = http(addr, "POST", "/predict", Some(&raw_request(KNOWN_ID).to_string()));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(CANDIDATE), "{body}");
}

/// A routing file that does not check stops the start, naming the key.
#[test]
fn a_routing_file_error_at_start_names_the_key() {
    let experiment = Experiment::new(&routing("{kind: canary, variant: candidate, percent: 150}"));
    let stderr = failed_start(&BINARY_ARGS, experiment.dir());
    assert!(
        stderr.contains("policy.percent: 150 is outside [0, 100]"),
        "{stderr}"
    );
    assert!(stderr.contains("routing.yaml"), "{stderr}");
}
