//! Issue 15: the model lifecycle without restarts: the admin token, reload
//! and rollback through the registry, a refused model that leaves the
//! serving one in place, and swaps under load with no failed request.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::dev::ServiceResponse;
use actix_web::http::StatusCode;
use actix_web::{App, test, web};
use revspend_core::artifact;
use revspend_core::registry::Registry;
use serde_json::Value;
use serve::{AdminToken, AppState, ModelSource, build_shared_server, configure};

use crate::common::{Fixture, KNOWN_ID, history_model, http, pseudonymiser, raw_request};
use crate::process::new_version;

const TOKEN: &str = "admin-token-0123456789";

/// A registry with two valid versions of the fixture model (`v0001`
/// production, `v0002` candidate) and the fixture's snapshot; the state
/// follows `production`.
fn registry_state(fixture: &Fixture) -> (Registry, AppState) {
    let registry = Registry::new(fixture.dir.path().join("models/registry"));
    for version in ["forest-test00000001", "forest-test00000002"] {
        let mut model = history_model();
        model.model_version = version.into();
        let path = fixture.dir.path().join(format!("{version}.bin"));
        artifact::write_model(&path, &model).expect("write model");
        let bytes = std::fs::read(&path).expect("model bytes");
        registry
            .register(&bytes, new_version(version), "test")
            .expect("register");
    }
    let mut config = fixture.config();
    config.model = ModelSource::Registry {
        dir: registry.dir().to_path_buf(),
        alias: "production".into(),
    };
    let state = AppState::load(&config, pseudonymiser())
        .expect("load")
        .with_admin_token(Some(AdminToken::new(TOKEN.into()).expect("token")));
    (registry, state)
}

async fn admin(state: web::Data<AppState>, path: &str, token: Option<&str>) -> (StatusCode, Value) {
    let app = test::init_service(App::new().app_data(state).configure(configure)).await;
    let mut request = test::TestRequest::post().uri(path);
    if let Some(t) = token {
        request = request.insert_header(("authorization", format!("Bearer {t}")));
    }
    let response: ServiceResponse = test::call_service(&app, request.to_request()).await;
    let status = response.status();
    (status, test::read_body_json(response).await)
}

fn serving_version(state: &AppState) -> String {
    state
        .serving()
        .expect("a model is serving")
        .model_version()
        .to_owned()
}

#[actix_web::test]
async fn admin_routes_need_the_token_and_are_disabled_without_one() {
    let fixture = Fixture::new();
    let (_registry, state) = registry_state(&fixture);
    let state = web::Data::new(state);
    let (status, e) = admin(state.clone(), "/admin/reload", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{e}");
    let (status, e) = admin(state.clone(), "/admin/reload", Some("admin-token-0123456788")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{e}");
    assert!(!e.to_string().contains(TOKEN), "the token never comes back: {e}");
    let (status, _) = admin(state.clone(), "/admin/reload", Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK);
    let disabled = web::Data::new(fixture.state());
    let (status, e) = admin(disabled, "/admin/reload", Some(TOKEN)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(e["error"].as_str().is_some_and(|m| m.contains("disabled")), "{e}");
}

#[actix_web::test]
async fn reload_follows_the_alias_refuses_a_bad_version_and_rollback_goes_back() {
    let fixture = Fixture::new();
    let (registry, state) = registry_state(&fixture);
    let state = web::Data::new(state);
    assert_eq!(serving_version(&state), "forest-test00000001");

    registry.promote("v0002", "production", "test").expect("promote");
    let (status, body) = admin(state.clone(), "/admin/reload", Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["to"], "forest-test00000002");
    assert_eq!(serving_version(&state), "forest-test00000002");

    // A valid model trained under another pseudonymisation key: the
    // registry takes it, the server refuses it (no customer would be
    // found); v0002 keeps serving and the refusal is counted.
    let mut foreign = history_model();
    foreign.model_version = "forest-foreignkey00".into();
    foreign.key_fingerprint = "f".repeat(32);
    let path = fixture.dir.path().join("foreign.bin");
    artifact::write_model(&path, &foreign).expect("write model");
    registry
        .register(
            &std::fs::read(&path).expect("bytes"),
            new_version("forest-foreignkey00"),
            "test",
        )
        .expect("register a model of another key");
    registry
        .promote("v0003", "production", "test")
        .expect("promote v0003");
    let (status, body) = admin(state.clone(), "/admin/reload", Some(TOKEN)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"].as_str().is_some_and(|m| m.contains("v0003")),
        "{body}"
    );
    assert_eq!(serving_version(&state), "forest-test00000002");
    assert_eq!(state.reload_counts(), (1, 1));
    let p = state.predict(&request_txn()).expect("still serving");
    assert_eq!(p.model_version, "forest-test00000002");

    // Rollback moves production back to v0002 in the registry and reloads.
    let (status, body) = admin(state.clone(), "/admin/rollback", Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["alias"]["to"], "v0002", "{body}");
    assert_eq!(serving_version(&state), "forest-test00000002");
    let index = registry.index().expect("index");
    assert_eq!(index.aliases.get("production").map(String::as_str), Some("v0002"));
}

/// The fixture's known customer's purchase, as a parsed transaction.
fn request_txn() -> revspend_core::contract::Transaction {
    revspend_core::contract::parse_fields(&[
        KNOWN_ID,
        "201405",
        "SAO PAULO",
        "SP",
        "34",
        "F",
        "4700.0",
        "350.0",
        "07.03.2020",
        " 1.234,56 ",
        "VESTUARIO",
        "SAO PAULO",
        "BR",
    ])
    .expect("transaction")
}

/// Requests keep flowing while the alias flips between two versions and
/// the server reloads each time: every request succeeds, answered by one
/// model or the other, never by none.
#[actix_web::test]
async fn no_request_fails_while_models_are_swapped_under_load() {
    let fixture = Fixture::new();
    let (registry, state) = registry_state(&fixture);
    let data = web::Data::new(state);
    let (server, addr) = build_shared_server(data.clone(), "127.0.0.1:0", 2).expect("bind");
    let handle = server.handle();
    let running = actix_web::rt::spawn(server);
    let done = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let done = done.clone();
            std::thread::spawn(move || {
                let body = raw_request(KNOWN_ID).to_string();
                let mut seen = Vec::new();
                while !done.load(Ordering::Relaxed) {
                    let (status, answer) = http(addr, "POST", "/predict", Some(&body));
                    assert_eq!(status, 200, "{answer}");
                    let p: Value = serde_json::from_str(&answer).expect("prediction");
                    seen.push(p["model_version"].as_str().unwrap_or_default().to_owned());
                }
                seen
            })
        })
        .collect();
    let swapper = {
        let data = data.clone();
        let dir = registry.dir().to_path_buf();
        actix_web::rt::task::spawn_blocking(move || {
            let registry = Registry::new(&dir);
            for i in 0..20 {
                let target = if i % 2 == 0 { "v0002" } else { "v0001" };
                registry.promote(target, "production", "test").expect("promote");
                data.reload(false).expect("reload");
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        })
    };
    swapper.await.expect("swapper");
    done.store(true, Ordering::Relaxed);
    let mut seen: Vec<String> = Vec::new();
    for c in clients {
        seen.extend(c.join().expect("client"));
    }
    handle.stop(true).await;
    running.await.expect("server task").expect("server");
    assert!(seen.len() >= 40, "{} requests", seen.len());
    for v in ["forest-test00000001", "forest-test00000002"] {
        assert!(seen.iter().any(|s| s == v), "no answer from {v}");
    }
    assert_eq!(data.reload_counts(), (20, 0));
}

/// Issue 15: a new snapshot file (a build-features run) is picked up by a
/// reload without a restart: a customer it adds is known from then on. A
/// snapshot made under another key is refused, and the old one serves on.
#[actix_web::test]
async fn a_new_snapshot_is_reloaded_and_a_foreign_one_refused() {
    let fixture = Fixture::new();
    let (_registry, state) = registry_state(&fixture);
    let state = web::Data::new(state);
    let unknown = crate::common::UNKNOWN_ID;
    let cold = |state: &AppState| {
        let txn = revspend_core::contract::parse_fields(&[
            unknown,
            "201405",
            "",
            "",
            "34",
            "F",
            "4700.0",
            "350.0",
            "07.03.2020",
            " 10,00 ",
            "VESTUARIO",
            "",
            "BR",
        ])
        .expect("transaction");
        state.predict(&txn).expect("prediction").cold_start
    };
    assert!(cold(&state));

    // The same snapshot with the unknown customer's history added.
    let mut snapshot = crate::common::snapshot();
    let key = pseudonymiser();
    let known = snapshot.customers.values().next().cloned().expect("a customer");
    snapshot.customers.insert(
        revspend_core::features::pseudonym_key(&key.pseudonym(unknown)).expect("hex"),
        known,
    );
    artifact::write_snapshot(&fixture.snapshot, &snapshot).expect("write snapshot");
    let (status, body) = admin(state.clone(), "/admin/reload", Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!cold(&state), "the reloaded snapshot knows the customer");

    let other = revspend_core::pseudonym::Pseudonymiser::new(b"another key");
    artifact::write_snapshot(&fixture.snapshot, &crate::common::snapshot_keyed(&other))
        .expect("write a foreign snapshot");
    let (status, body) = admin(state.clone(), "/admin/reload", Some(TOKEN)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(!cold(&state), "the refused snapshot did not replace the good one");
}
