//! The live drift gauges of `/metrics`: a PSI per feature of the serving
//! model against the training profile, over a sliding window of requests;
//! and the score and process metrics a monitor reads beside them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use actix_web::{App, test as actix_test, web};
use revspend_core::artifact;
use revspend_core::profile::{Profile, numeric_from_values};
use serde_json::{Value, json};
use serve::{AppState, Config, Version};

use crate::common::{self, Fixture, KNOWN_ID, UNKNOWN_ID, http};
use crate::process;

/// The reference of the fixture model's two features: `valor` spread evenly
/// over [0, 200), `purchases_before` half 0 (cold starts), half
/// [`common::KNOWN_PURCHASES`] (the known customer). Also a column the model
/// does not read, which gets no gauge.
fn write_profile(path: &Path) {
    let valor: Vec<f64> = (0..2000).map(|i| f64::from(i % 200)).collect();
    let purchases: Vec<f64> = (0..2000)
        .map(|i| {
            if i % 2 == 0 {
                0.0
            } else {
                f64::from(common::KNOWN_PURCHASES)
            }
        })
        .collect();
    let idade: Vec<f64> = (0..2000).map(|i| 20.0 + f64::from(i % 50)).collect();
    let profile = Profile {
        rows: 2000,
        numeric: BTreeMap::from([
            ("valor".to_owned(), numeric_from_values(valor, 0, 0, 0, 10)),
            (
                "purchases_before".to_owned(),
                numeric_from_values(purchases, 0, 0, 0, 10),
            ),
            ("idade".to_owned(), numeric_from_values(idade, 0, 0, 0, 10)),
        ]),
        categorical: BTreeMap::new(),
    };
    artifact::write_json(path, &profile).expect("write profile");
}

fn profile_path(fixture: &Fixture) -> PathBuf {
    fixture.dir.path().join("data/profile/train.json")
}

fn config(fixture: &Fixture, window: Duration) -> Config {
    let path = profile_path(fixture);
    write_profile(&path);
    Config {
        drift_profile: Some(path),
        drift_window: window,
        ..fixture.config()
    }
}

/// Purchase `i` of a run: the known customer and a cold start in turn (so
/// `purchases_before` follows its reference), for `amount`.
fn purchase(i: usize, amount: f64) -> Value {
    let mut body = common::raw_request(if i.is_multiple_of(2) { UNKNOWN_ID } else { KNOWN_ID });
    body[" valor "] = json!(amount);
    body
}

/// A metric's value in the text exposition (`name` with its labels).
fn value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// Scrapes until the window counts `requests` (the binning thread polls
/// its queue every few milliseconds): the exposition then.
fn scrape_when(state: &AppState, requests: f64) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = state.metrics_text().expect("metrics");
        if value(&text, "revspend_drift_window_requests") == Some(requests) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "the window never counted {requests}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sends `amounts` as purchases to a fresh app over `data`.
async fn send_all(data: &web::Data<AppState>, amounts: impl Iterator<Item = f64>) {
    let app = actix_test::init_service(App::new().app_data(data.clone()).configure(serve::configure)).await;
    for (i, amount) in amounts.enumerate() {
        let request = actix_test::TestRequest::post()
            .uri("/predict")
            .insert_header(("content-type", "application/json"))
            .set_payload(purchase(i, amount).to_string())
            .to_request();
        let response = actix_test::call_service(&app, request).await;
        assert!(
            response.status().is_success(),
            "purchase {i}: {}",
            response.status()
        );
    }
}

fn psi(text: &str, feature: &str) -> Option<f64> {
    value(text, &format!("revspend_feature_psi{{feature=\"{feature}\"}}"))
}

/// The model's features get gauges (and only they); amounts drawn as in
/// training keep both low; a run of amounts far above the reference raises
/// `valor` past the alarm level while `purchases_before`, unshifted, stays
/// low. With `--no-prediction-log`: a thread bins for the gauges alone.
#[actix_web::test]
async fn a_shifted_feature_raises_its_psi_and_an_unshifted_one_stays_low() {
    let fixture = Fixture::new();
    let config = config(&fixture, Duration::from_secs(600));
    assert!(config.prediction_log.is_none());
    let data = web::Data::new(AppState::load(&config, common::pseudonymiser()).expect("state"));

    // Every tenth of [0, 200) equally often: the reference's own shape.
    send_all(&data, (0..200).map(|i| f64::from((i * 37) % 200) + 0.5)).await;
    let text = scrape_when(&data, 200.0);
    let (valor, purchases) = (psi(&text, "valor"), psi(&text, "purchases_before"));
    assert!(valor.is_some_and(|p| p < serve::PSI_WARN), "{text}");
    assert!(purchases.is_some_and(|p| p < serve::PSI_WARN), "{text}");
    assert_eq!(psi(&text, "idade"), None, "not a feature of the model:\n{text}");
    assert_eq!(
        value(&text, "revspend_feature_window_values{feature=\"valor\"}"),
        Some(200.0)
    );

    // 200 more, all above the reference's range: half the window piles in
    // the last bin.
    send_all(&data, (0..200).map(|i| 1_000.0 + f64::from(i))).await;
    let text = scrape_when(&data, 400.0);
    let valor = psi(&text, "valor").expect("valor gauge");
    let purchases = psi(&text, "purchases_before").expect("purchases_before gauge");
    assert!(valor > serve::PSI_ALARM, "{text}");
    assert!(purchases < serve::PSI_WARN, "{text}");
    assert_eq!(value(&text, "revspend_feature_psi_max"), Some(valor));
    assert_eq!(value(&text, "revspend_drift_window_seconds"), Some(600.0));

    // /version names the reference and the gauged features.
    let app = actix_test::init_service(App::new().app_data(data.clone()).configure(serve::configure)).await;
    let response =
        actix_test::call_service(&app, actix_test::TestRequest::get().uri("/version").to_request()).await;
    let v: Version = actix_test::read_body_json(response).await;
    assert_eq!(
        v.drift_profile.as_deref(),
        Some(profile_path(&fixture).display().to_string().as_str())
    );
    assert_eq!(v.drift_features, ["purchases_before", "valor"]);
    data.shutdown();
}

/// The window slides: 2.3 s after a 2 s window's requests, none is left,
/// and a feature without values in the window has no PSI (rather than a
/// stale one). Through the prediction log's writer this time.
#[actix_web::test]
async fn old_requests_leave_the_window() {
    let fixture = Fixture::new();
    let logs = fixture.dir.path().join("logs");
    let config = Config {
        prediction_log: Some(logs.clone()),
        ..config(&fixture, Duration::from_secs(2))
    };
    let data = web::Data::new(AppState::load(&config, common::pseudonymiser()).expect("state"));
    send_all(&data, (0..20).map(|i| 5_000.0 + f64::from(i))).await;
    let text = scrape_when(&data, 20.0);
    assert!(
        psi(&text, "valor").is_some_and(|p| p > serve::PSI_ALARM),
        "{text}"
    );
    std::thread::sleep(Duration::from_millis(2_300));
    let text = data.metrics_text().expect("metrics");
    assert_eq!(
        value(&text, "revspend_drift_window_requests"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(psi(&text, "valor"), None, "{text}");
    assert_eq!(value(&text, "revspend_feature_psi_max"), None, "{text}");
    data.shutdown();
    // The log still got every prediction.
    let text = data.metrics_text().expect("metrics");
    assert_eq!(
        value(
            &text,
            "revspend_prediction_log_records_total{kind=\"prediction\"}"
        ),
        Some(20.0),
        "{text}"
    );
}

/// Issue 15's probability histogram keeps its name; the same distribution
/// is there per variant, and the process's CPU time and memory beside it.
#[actix_web::test]
async fn scores_per_variant_and_process_usage_are_exported() {
    let fixture = Fixture::new();
    let data = web::Data::new(fixture.state());
    send_all(&data, (0..3).map(f64::from)).await;
    let text = data.metrics_text().expect("metrics");
    assert_eq!(
        value(&text, "revspend_prediction_probability_count"),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "revspend_variant_prediction_probability_count{variant=\"default\"}"
        ),
        Some(3.0),
        "{text}"
    );
    assert!(
        !text.contains("revspend_feature_psi"),
        "no profile, no gauges:\n{text}"
    );
    if cfg!(target_os = "linux") {
        assert!(
            value(&text, "process_cpu_seconds_total").is_some_and(|s| s > 0.0),
            "{text}"
        );
        assert!(
            value(&text, "process_resident_memory_bytes").is_some_and(|b| b > 1e6),
            "{text}"
        );
    }
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
    assert_eq!(text.matches("# EOF").count(), 1, "{text}");
}

/// The binary: without a profile at the default path it starts with the
/// gauges off and `/version` says so; with one it gauges; a profile named
/// on the command line must exist.
#[test]
fn the_binary_gauges_when_the_default_profile_exists() {
    let fixture = Fixture::new();
    let (child, addr) = process::start(&["--bind", "127.0.0.1:0", "--workers", "1"], fixture.dir.path());
    let (status, body) = http(addr, "GET", "/version", None);
    assert_eq!(status, 200, "{body}");
    let v: Version = serde_json::from_str(&body).expect("version JSON");
    assert_eq!((v.drift_profile, v.drift_window_seconds), (None, None), "{body}");
    let (_, metrics) = http(addr, "GET", "/metrics", None);
    assert!(!metrics.contains("revspend_feature_psi"), "{metrics}");
    drop(child);

    write_profile(&profile_path(&fixture));
    let (_child, addr) = process::start(&["--bind", "127.0.0.1:0", "--workers", "1"], fixture.dir.path());
    let (status, body) = http(addr, "POST", "/predict", Some(&purchase(0, 50.0).to_string()));
    assert_eq!(status, 200, "{body}");
    let (_, body) = http(addr, "GET", "/version", None);
    let v: Version = serde_json::from_str(&body).expect("version JSON");
    assert_eq!(
        v.drift_profile.as_deref(),
        Some(serve::DEFAULT_DRIFT_PROFILE),
        "{body}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, metrics) = http(addr, "GET", "/metrics", None);
        if psi(&metrics, "valor").is_some() {
            assert!(
                value(&metrics, "process_cpu_seconds_total").is_some(),
                "{metrics}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no valor gauge:\n{metrics}");
        std::thread::sleep(Duration::from_millis(20));
    }

    let stderr = process::failed_start(
        &["--bind", "127.0.0.1:0", "--drift-profile", "nope/train.json"],
        fixture.dir.path(),
    );
    assert!(stderr.contains("nope/train.json"), "{stderr}");
}
