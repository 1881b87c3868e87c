//! Fixtures: a small model artifact and an online snapshot written to a
//! temporary directory with the real artifact writers.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use revspend_core::artifact;
use revspend_core::calibration::Calibrator;
use revspend_core::contract::parse_fields;
use revspend_core::features::{Feature, History, OnlineSnapshot, pseudonym_key};
use revspend_core::metrics::{BinaryMetrics, Confusion};
use revspend_core::model::{BaggedTree, CartNode, CartTree, Classifier, ModelArtifact, Reliability};
use revspend_core::params::{Params, TrainParams};
use revspend_core::pseudonym::Pseudonymiser;
use revspend_core::target::TargetRule;
use serde_json::{Value, json};
use serve::{AppState, Config};

/// The pseudonymisation key of the fixtures.
pub const KEY: &str = "serve-test-key";
/// A customer in the snapshot, with [`KNOWN_PURCHASES`] earlier purchases.
pub const KNOWN_ID: &str = "1001";
pub const KNOWN_PURCHASES: u32 = 5;
/// A customer not in the snapshot.
pub const UNKNOWN_ID: &str = "2002";
pub const MODEL_VERSION: &str = "forest-test00000000";
pub const THRESHOLD: f64 = 0.5;

pub fn rule() -> TargetRule {
    TargetRule {
        threshold_pct: 20.0,
        vital_groups: vec!["SERVICO".into(), "SUPERMERCADOS".into(), "FARMACIAS".into()],
    }
}

/// The one place a test model is built, so a change to `ModelArtifact` is a
/// one-line fix here.
pub fn model(classifier: Classifier, features: Vec<Feature>) -> ModelArtifact {
    let (train_params, params_hash) = fixture_train_params().json_and_hash();
    ModelArtifact {
        model_version: MODEL_VERSION.into(),
        algorithm: "forest".into(),
        hyperparameters: "{}".into(),
        features,
        rule: rule(),
        classifier,
        calibrator: Calibrator::Identity,
        threshold: THRESHOLD,
        threshold_source: "params".into(),
        training_prior: 0.3,
        train_params,
        params_hash,
        data_hash: "0".repeat(64),
        test_metrics: BinaryMetrics {
            roc_auc: 1.0,
            pr_auc: 1.0,
            brier: 0.0,
            log_loss: 0.0,
            ece: 0.0,
            threshold: THRESHOLD,
            precision: 1.0,
            recall: 1.0,
            f1: 1.0,
            confusion: Confusion::default(),
        },
        reliability: Reliability {
            before: Vec::new(),
            after: Vec::new(),
            ece_before: 0.0,
            ece_after: 0.0,
        },
        written_by: "serve tests".into(),
        key_fingerprint: pseudonymiser().key_fingerprint(),
    }
}

/// The `train` section of the fixture params (`tests/it/params.yaml`, not
/// the live params.yaml).
pub fn fixture_train_params() -> TrainParams {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/params.yaml");
    Params::load(&path).expect("fixture params").train
}

/// A one-tree forest on `purchases_before` (and the amount, which it
/// ignores) that flags customers with at least three earlier purchases:
/// probability 1 for the known customer, 0 for a cold start. (The tree
/// smartcore grows on purchases 0, 0, 1 (negative) and 5, 6, 7 (positive):
/// one split at 3.)
pub fn history_model() -> ModelArtifact {
    let node = |feature, threshold, left, right, positive| CartNode {
        feature,
        threshold,
        left,
        right,
        positive,
    };
    let tree = CartTree {
        nodes: vec![
            node(0, 3.0, 1, 2, 0.0),
            node(0, 0.0, 0, 0, 0.0),
            node(0, 0.0, 0, 0, 1.0),
        ],
    };
    model(
        Classifier::Forest {
            trees: vec![BaggedTree {
                columns: vec![0, 1],
                tree,
            }],
        },
        vec![Feature::PurchasesBefore, Feature::Valor],
    )
}

/// A snapshot holding [`KNOWN_ID`] with [`KNOWN_PURCHASES`] purchases.
pub fn snapshot() -> OnlineSnapshot {
    snapshot_keyed(&pseudonymiser())
}

/// [`snapshot`] pseudonymised with another key.
pub fn snapshot_keyed(key: &Pseudonymiser) -> OnlineSnapshot {
    let rule = rule();
    let mut history = History::default();
    for day in 1..=KNOWN_PURCHASES {
        let date = format!("{day:02}.03.2020");
        let txn = parse_fields(&[
            KNOWN_ID,
            "201405",
            "SAO PAULO",
            "SP",
            "34",
            "F",
            "4700.0",
            "900.0",
            &date,
            " 52,00 ",
            "VAREJO",
            "SAO PAULO",
            "BR",
        ])
        .expect("valid history row");
        history.record(&txn, &rule);
    }
    let mut customers = BTreeMap::new();
    customers.insert(pseudonym_key(&key.pseudonym(KNOWN_ID)).expect("hex"), history);
    OnlineSnapshot {
        as_of: None,
        rule,
        customers,
        key_fingerprint: key.key_fingerprint(),
        ranges: Default::default(),
    }
}

pub fn pseudonymiser() -> Pseudonymiser {
    Pseudonymiser::new(KEY.as_bytes())
}

/// Model and snapshot files in a temporary directory.
#[derive(Debug)]
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub model: PathBuf,
    pub snapshot: PathBuf,
}

impl Fixture {
    pub fn new() -> Fixture {
        Fixture::with_model(&history_model())
    }

    pub fn with_model(model: &ModelArtifact) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let model_path = dir.path().join("models/model.bin");
        let snapshot_path = dir.path().join("data/online/snapshot.bin");
        artifact::write_model(&model_path, model).expect("write model");
        artifact::write_snapshot(&snapshot_path, &snapshot()).expect("write snapshot");
        Fixture {
            dir,
            model: model_path,
            snapshot: snapshot_path,
        }
    }

    /// The fixture's model and snapshot made with `key` instead of [`KEY`].
    pub fn keyed(key: &Pseudonymiser) -> Fixture {
        let mut model = history_model();
        model.key_fingerprint = key.key_fingerprint();
        let fixture = Fixture::with_model(&model);
        artifact::write_snapshot(&fixture.snapshot, &snapshot_keyed(key)).expect("write snapshot");
        fixture
    }

    pub fn config(&self) -> Config {
        Config {
            bind: "127.0.0.1:0".into(),
            model: serve::ModelSource::File(self.model.clone()),
            snapshot: Some(self.snapshot.clone()),
            workers: 1,
            max_body_bytes: serve::DEFAULT_MAX_BODY_BYTES,
            batch: serve::BatchLimits::default(),
            body_timeout: serve::DEFAULT_BODY_TIMEOUT,
            admin_token: None,
            reload_interval: None,
            file_watch: false,
            allow_development_key: false,
            access_log_every: 0,
            routing: None,
            state_dir: None,
            prediction_log: None,
            log_queue: serve::DEFAULT_LOG_QUEUE,
            log_file_max_bytes: serve::DEFAULT_LOG_FILE_MAX_BYTES,
            shadow_queue: serve::DEFAULT_SHADOW_QUEUE,
            feedback_capacity: serve::DEFAULT_FEEDBACK_CAPACITY,
            feedback_window_hours: serve::DEFAULT_FEEDBACK_WINDOW_HOURS,
            drift_profile: None,
            drift_window: serve::DEFAULT_DRIFT_WINDOW,
        }
    }

    /// The server state, loaded from the files as the binary loads it.
    pub fn state(&self) -> AppState {
        AppState::load(&self.config(), pseudonymiser()).expect("load state")
    }
}

/// A request in the raw file format: every value a string as the CSV holds it.
pub fn raw_request(id: &str) -> Value {
    json!({
        "id": id,
        "safra_abertura": "201405",
        "cidade": "SAO PAULO",
        "estado": "SP",
        "idade": "34",
        "sexo": "F",
        "limite_total": "4700.0",
        "limite_disp": "350.0",
        "data": "07.03.2020",
        " valor ": " 1.234,56 ",
        "grupo_estabelecimento": "VESTUARIO",
        "cidade_estabelecimento": "SAO PAULO",
        "pais_estabelecimento": "BR",
    })
}

/// A plain HTTP/1.1 exchange over a TCP socket: status code and body.
pub fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(body) = body {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
    } else {
        request.push_str("\r\n");
    }
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("receive");
    let (head, body) = response.split_once("\r\n\r\n").expect("header end");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    (status, body.to_owned())
}

/// Sends one request to a fresh app over `state`, built with the same
/// `configure` the binary uses.
pub async fn send(state: AppState, request: actix_web::test::TestRequest) -> actix_web::dev::ServiceResponse {
    use actix_web::{App, test, web};
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(state))
            .configure(serve::configure),
    )
    .await;
    test::call_service(&app, request.to_request()).await
}
