//! Handler tests through `actix_web::test::init_service` and the same
//! `configure` the binary uses.

use actix_web::http::StatusCode;
use actix_web::http::header::ContentType;
use actix_web::{App, test, web};
use revspend_core::features::{Feature, OnlineSnapshot};
use revspend_core::model::Classifier;
use revspend_core::pseudonym::Pseudonymiser;
use serde_json::{Value, json};
use serve::{
    AppState, BatchItem, BatchLimits, BatchResponse, ErrorBody, Health, Prediction, Readiness, Version,
    configure,
};

use crate::common::{self, Fixture, KNOWN_ID, MODEL_VERSION, THRESHOLD, UNKNOWN_ID, raw_request, send};

fn post(body: impl Into<web::Bytes>) -> test::TestRequest {
    test::TestRequest::post()
        .uri("/predict")
        .insert_header(ContentType::json())
        .set_payload(body.into())
}

fn json_post(body: &Value) -> test::TestRequest {
    post(body.to_string())
}

async fn prediction(state: AppState, body: &Value) -> Prediction {
    let response = send(state, json_post(body)).await;
    assert_eq!(response.status(), StatusCode::OK);
    test::read_body_json(response).await
}

/// Sends `request` and expects an error response with `status`.
async fn error(state: AppState, request: test::TestRequest, status: StatusCode) -> ErrorBody {
    let response = send(state, request).await;
    assert_eq!(response.status(), status);
    let content_type = response.headers().get("content-type").cloned();
    let body = test::read_body(response).await;
    assert_eq!(
        content_type.as_ref().map(|v| v.as_bytes()),
        Some(&b"application/json"[..]),
        "error bodies are JSON: {body:?}"
    );
    serde_json::from_slice(&body).expect("error body")
}

#[actix_web::test]
async fn raw_csv_strings_are_scored() {
    let fixture = Fixture::new();
    let p = prediction(fixture.state(), &raw_request(KNOWN_ID)).await;
    assert_eq!(p.model_version, MODEL_VERSION);
    assert_eq!(p.threshold, THRESHOLD);
    assert!((0.0..=1.0).contains(&p.probability));
    assert_eq!(p.is_revenge_spending, p.probability >= p.threshold);
}

#[actix_web::test]
async fn iso_dates_and_json_numbers_score_like_the_raw_form() {
    let fixture = Fixture::new();
    let raw = prediction(fixture.state(), &raw_request(KNOWN_ID)).await;
    let body = json!({
        "id": 1001,
        "safra_abertura": 201405,
        "idade": 34,
        "sexo": "F",
        "limite_total": 4700,
        "limite_disp": 350.0,
        "data": "2020-03-07",
        "valor": 1234.56,
        "grupo_estabelecimento": "VESTUARIO",
    });
    let mut numeric = prediction(fixture.state(), &body).await;
    assert_ne!(
        numeric.prediction_id, raw.prediction_id,
        "every prediction has its own id"
    );
    numeric.prediction_id = raw.prediction_id.clone();
    assert_eq!(numeric, raw);
}

#[actix_web::test]
async fn known_customers_use_their_history_and_unknown_ones_are_cold_starts() {
    let fixture = Fixture::new();
    let known = prediction(fixture.state(), &raw_request(KNOWN_ID)).await;
    assert!(!known.cold_start);
    // The fixture model flags three or more earlier purchases (certain,
    // but a calibrated probability is never exactly 1).
    let eps = revspend_core::calibration::PROB_EPS;
    assert!((known.probability - (1.0 - eps)).abs() < 1e-12, "{known:?}");
    assert!(known.is_revenge_spending);

    let unknown = prediction(fixture.state(), &raw_request(UNKNOWN_ID)).await;
    assert!(unknown.cold_start);
    assert!((unknown.probability - eps).abs() < 1e-12, "{unknown:?}");
    assert!(!unknown.is_revenge_spending);
}

/// Issue 12 item 11: a key other than the one the snapshot and the model
/// were made with would make every customer a cold start; the server
/// refuses it, naming both fingerprints, with or without a snapshot.
#[actix_web::test]
async fn a_key_other_than_the_snapshots_and_the_models_is_refused_naming_both_fingerprints() {
    let fixture = Fixture::new();
    let other = Pseudonymiser::new(b"another key");
    let ours = common::pseudonymiser().key_fingerprint();
    let mut config = fixture.config();
    for snapshot in [Some(fixture.snapshot.clone()), None] {
        config.snapshot = snapshot;
        let err = AppState::load(&config, other.clone()).expect_err("another key");
        let message = format!("{err:#}");
        assert!(
            message.contains(&other.key_fingerprint()) && message.contains(&ours),
            "{message}"
        );
    }
    // The public development key is named as such.
    let err = AppState::load(&config, Pseudonymiser::development()).expect_err("development key");
    assert!(
        format!("{err:#}").contains("the public development key"),
        "{err:#}"
    );
}

/// Issue 12 item 11: a snapshot and a model made with different keys
/// cannot both be right for any key.
#[actix_web::test]
async fn a_snapshot_and_a_model_made_with_different_keys_are_refused() {
    let fixture = Fixture::new();
    let mut snapshot = common::snapshot();
    let other = Pseudonymiser::new(b"another key").key_fingerprint();
    snapshot.key_fingerprint = other.clone();
    revspend_core::artifact::write_snapshot(&fixture.snapshot, &snapshot).expect("write");
    let err = AppState::load(&fixture.config(), common::pseudonymiser()).expect_err("mixed keys");
    let message = format!("{err:#}");
    assert!(
        message.contains(&other)
            && message.contains(&common::pseudonymiser().key_fingerprint())
            && message.contains("snapshot"),
        "{message}"
    );
}

#[actix_web::test]
async fn a_prior_model_predicts_its_prior() {
    let fixture = Fixture::with_model(&common::model(
        Classifier::Prior { probability: 0.3 },
        vec![Feature::Valor, Feature::GroupNonVital],
    ));
    let p = prediction(fixture.state(), &raw_request(UNKNOWN_ID)).await;
    assert!((p.probability - 0.3).abs() < 1e-12);
    assert!(!p.is_revenge_spending);
}

#[actix_web::test]
async fn without_a_snapshot_every_customer_is_a_cold_start() {
    let fixture = Fixture::new();
    let mut config = fixture.config();
    config.snapshot = None;
    let state = AppState::load(&config, common::pseudonymiser()).expect("load");
    assert!(prediction(state, &raw_request(KNOWN_ID)).await.cold_start);
}

#[actix_web::test]
async fn a_missing_amount_is_null_but_the_field_is_required() {
    let fixture = Fixture::new();
    let mut body = raw_request(KNOWN_ID);
    body[" valor "] = Value::Null;
    prediction(fixture.state(), &body).await;

    body.as_object_mut().expect("object").remove(" valor ");
    let e = error(fixture.state(), json_post(&body), StatusCode::BAD_REQUEST).await;
    assert_eq!(e.field.as_deref(), Some("valor"));
    assert!(
        e.error.contains("`valor`") && e.error.contains("null"),
        "{}",
        e.error
    );
}

#[actix_web::test]
async fn missing_data_is_named() {
    let fixture = Fixture::new();
    let mut body = raw_request(KNOWN_ID);
    body.as_object_mut().expect("object").remove("data");
    let e = error(fixture.state(), json_post(&body), StatusCode::BAD_REQUEST).await;
    assert_eq!(e.field.as_deref(), Some("data"));
    assert!(e.error.contains("`data`"), "{}", e.error);
}

#[actix_web::test]
async fn a_bad_amount_is_named() {
    let fixture = Fixture::new();
    let mut body = raw_request(KNOWN_ID);
    let object = body.as_object_mut().expect("object");
    object.remove(" valor ");
    object.insert("valor".into(), json!("12,3,4"));
    let e = error(fixture.state(), json_post(&body), StatusCode::BAD_REQUEST).await;
    assert_eq!(e.field.as_deref(), Some("valor"));
    assert!(
        e.error.contains("`valor`") && e.error.contains("12,3,4"),
        "{}",
        e.error
    );
}

#[actix_web::test]
async fn bad_dates_limits_and_ids_are_named() {
    let fixture = Fixture::new();
    for (field, value) in [
        ("data", json!("31.02.2020")),
        ("limite_total", json!(-1)),
        ("limite_disp", json!("lots")),
        ("id", json!("A-17")),
        ("sexo", json!("X")),
    ] {
        let mut body = raw_request(KNOWN_ID);
        body[field] = value;
        let e = error(fixture.state(), json_post(&body), StatusCode::BAD_REQUEST).await;
        assert_eq!(e.field.as_deref(), Some(field), "{}", e.error);
    }
}

#[actix_web::test]
async fn unknown_keys_are_named() {
    let fixture = Fixture::new();
    let mut body = raw_request(KNOWN_ID);
    body["limit"] = json!(100);
    let e = error(fixture.state(), json_post(&body), StatusCode::BAD_REQUEST).await;
    assert_eq!(e.field.as_deref(), Some("limit"));
    assert!(e.error.contains("unknown field `limit`"), "{}", e.error);
}

#[actix_web::test]
async fn bodies_that_are_not_a_json_object_are_rejected() {
    let fixture = Fixture::new();
    let e = error(fixture.state(), post("id=1001"), StatusCode::BAD_REQUEST).await;
    assert!(e.error.contains("not valid JSON"), "{}", e.error);
    let e = error(fixture.state(), post(""), StatusCode::BAD_REQUEST).await;
    assert!(e.error.contains("not valid JSON"), "{}", e.error);
    let e = error(fixture.state(), post("[1, 2]"), StatusCode::BAD_REQUEST).await;
    assert!(e.error.contains("JSON object"), "{}", e.error);
}

#[actix_web::test]
async fn other_content_types_are_unsupported() {
    let fixture = Fixture::new();
    let request = test::TestRequest::post()
        .uri("/predict")
        .insert_header(ContentType::form_url_encoded())
        .set_payload(raw_request(KNOWN_ID).to_string());
    let e = error(fixture.state(), request, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    assert!(e.error.contains("application/json"), "{}", e.error);

    let request = test::TestRequest::post()
        .uri("/predict")
        .insert_header(("content-type", "application/json; charset=utf-8"))
        .set_payload(raw_request(KNOWN_ID).to_string());
    assert_eq!(send(fixture.state(), request).await.status(), StatusCode::OK);
}

#[actix_web::test]
async fn oversized_bodies_are_refused() {
    let fixture = Fixture::new();
    let mut config = fixture.config();
    config.max_body_bytes = 100;
    let state = AppState::load(&config, common::pseudonymiser()).expect("load");
    let body = raw_request(KNOWN_ID).to_string();
    assert!(body.len() > 100);
    let e = error(state, post(body), StatusCode::PAYLOAD_TOO_LARGE).await;
    assert!(e.error.contains("100 bytes"), "{}", e.error);
}

#[actix_web::test]
async fn health_reports_the_model_and_the_snapshot() {
    let fixture = Fixture::new();
    let response = send(fixture.state(), test::TestRequest::get().uri("/health")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let health: Health = test::read_body_json(response).await;
    assert_eq!(
        health,
        Health {
            status: "ok".into(),
            model_version: MODEL_VERSION.into(),
            snapshot_customers: 1,
        }
    );
}

#[actix_web::test]
async fn unknown_routes_and_methods_answer_in_json() {
    let fixture = Fixture::new();
    let e = error(
        fixture.state(),
        test::TestRequest::get().uri("/nope"),
        StatusCode::NOT_FOUND,
    )
    .await;
    assert!(e.error.contains("/nope"), "{}", e.error);
    let e = error(
        fixture.state(),
        test::TestRequest::get().uri("/predict"),
        StatusCode::METHOD_NOT_ALLOWED,
    )
    .await;
    assert!(e.error.contains("POST"), "{}", e.error);
}

#[actix_web::test]
async fn a_snapshot_built_under_another_rule_still_serves() {
    // The mismatch is logged as a warning at start, not refused.
    let fixture = Fixture::new();
    let mut snapshot: OnlineSnapshot =
        revspend_core::artifact::read_snapshot(&fixture.snapshot).expect("read");
    snapshot.rule.threshold_pct = 30.0;
    let model = revspend_core::artifact::read_model(&fixture.model).expect("read");
    let state = AppState::new(model, snapshot, common::pseudonymiser(), 1024).expect("state");
    assert!(!prediction(state, &raw_request(KNOWN_ID)).await.cold_start);
}

/// Issue 15: every prediction carries a UUID v7 id, distinct and
/// time-ordered.
#[actix_web::test]
async fn every_prediction_has_its_own_time_ordered_id() {
    let fixture = Fixture::new();
    let a = prediction(fixture.state(), &raw_request(KNOWN_ID)).await;
    let b = prediction(fixture.state(), &raw_request(KNOWN_ID)).await;
    for id in [&a.prediction_id, &b.prediction_id] {
        let parsed = uuid::Uuid::parse_str(id).expect("a UUID");
        assert_eq!(parsed.get_version_num(), 7, "{id}");
    }
    assert!(
        a.prediction_id < b.prediction_id,
        "{} then {}",
        a.prediction_id,
        b.prediction_id
    );
}

fn batch_post(body: &Value) -> test::TestRequest {
    test::TestRequest::post()
        .uri("/predict/batch")
        .insert_header(ContentType::json())
        .set_payload(body.to_string())
}

/// Issue 15: a batch is scored row by row in order, each row as `/predict`
/// scores it alone; a bad row gets its own error entry naming its index
/// and field, and the other rows are still scored.
#[actix_web::test]
async fn a_batch_scores_each_row_in_order_and_refuses_only_the_bad_ones() {
    let fixture = Fixture::new();
    let mut bad = raw_request(KNOWN_ID);
    bad["valor"] = json!("abc");
    let body = json!([raw_request(KNOWN_ID), bad, raw_request(UNKNOWN_ID), {"id": "1"}]);
    let response = send(fixture.state(), batch_post(&body)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let batch: BatchResponse = test::read_body_json(response).await;
    assert_eq!((batch.rows, batch.scored, batch.refused), (4, 2, 2));
    let alone = prediction(fixture.state(), &raw_request(KNOWN_ID)).await;
    match &batch.results[0] {
        BatchItem::Scored { index: 0, prediction } => {
            assert_eq!(prediction.probability, alone.probability);
            assert!(!prediction.cold_start);
        }
        other => panic!("row 0: {other:?}"),
    }
    match &batch.results[1] {
        BatchItem::Refused {
            index: 1,
            field,
            error,
            ..
        } => {
            assert_eq!(field.as_deref(), Some("[1].valor"), "{error}");
            assert!(error.starts_with("row 1:"), "{error}");
        }
        other => panic!("row 1: {other:?}"),
    }
    match &batch.results[2] {
        BatchItem::Scored { index: 2, prediction } => assert!(prediction.cold_start),
        other => panic!("row 2: {other:?}"),
    }
    assert!(matches!(&batch.results[3], BatchItem::Refused { index: 3, .. }));
}

/// Issue 15: a batch over the row limit is refused whole with 413 naming
/// the limit; a body that is not an array is a 400.
#[actix_web::test]
async fn a_batch_over_the_row_limit_or_not_an_array_is_refused() {
    let fixture = Fixture::new();
    let small = BatchLimits {
        max_rows: 2,
        ..BatchLimits::default()
    };
    let three = json!([
        raw_request(KNOWN_ID),
        raw_request(KNOWN_ID),
        raw_request(KNOWN_ID)
    ]);
    let e = error(
        fixture.state().with_batch_limits(small),
        batch_post(&three),
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    assert!(
        e.error.contains("3 rows") && e.error.contains("limit of 2"),
        "{}",
        e.error
    );
    let e = error(
        fixture.state(),
        batch_post(&raw_request(KNOWN_ID)),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(e.error.contains("JSON array"), "{}", e.error);
    let empty = send(fixture.state(), batch_post(&json!([]))).await;
    assert_eq!(empty.status(), StatusCode::OK);
}

/// Issue 15: liveness, readiness (after the smoke prediction) and the
/// version of what is serving, with no secret in it.
#[actix_web::test]
async fn live_ready_and_version_describe_the_server() {
    let fixture = Fixture::new();
    let live = send(fixture.state(), test::TestRequest::get().uri("/health/live")).await;
    assert_eq!(live.status(), StatusCode::OK);
    let ready = send(fixture.state(), test::TestRequest::get().uri("/health/ready")).await;
    assert_eq!(ready.status(), StatusCode::OK);
    let ready: Readiness = test::read_body_json(ready).await;
    assert_eq!(
        (ready.status.as_str(), ready.model_version.as_str()),
        ("ready", MODEL_VERSION)
    );
    let response = send(fixture.state(), test::TestRequest::get().uri("/version")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = test::read_body(response).await;
    let v: Version = serde_json::from_slice(&body).expect("version");
    assert_eq!(v.model_version, MODEL_VERSION);
    assert_eq!(v.threshold, THRESHOLD);
    assert!(!v.features.is_empty());
    assert!(v.origin.path.ends_with("model.bin"), "{:?}", v.origin);
    assert_eq!(v.origin.registry_version, None);
    assert!(!v.git_commit.is_empty());
    let text = String::from_utf8_lossy(&body);
    assert!(!text.to_lowercase().contains("secret"), "{text}");
    let post = send(fixture.state(), test::TestRequest::post().uri("/version")).await;
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
}

/// Issue 15: the server listens before its first model is loaded; until
/// then it is live, not ready (503 with Retry-After), and every scoring
/// route answers 503 rather than a wrong or empty answer.
#[actix_web::test]
async fn before_the_first_model_is_loaded_the_server_is_live_but_not_ready() {
    let fixture = Fixture::new();
    let data = web::Data::new(AppState::unloaded(&fixture.config(), common::pseudonymiser()).expect("state"));
    let app = test::init_service(App::new().app_data(data.clone()).configure(configure)).await;
    let get = |uri: &str| test::TestRequest::get().uri(uri).to_request();
    assert_eq!(
        test::call_service(&app, get("/health/live")).await.status(),
        StatusCode::OK
    );
    for uri in [
        "/health/ready",
        "/health",
        "/version",
        "/v2/models/revspend/ready",
    ] {
        let response = test::call_service(&app, get(uri)).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{uri}");
        assert_eq!(
            response.headers().get("retry-after").map(|v| v.as_bytes()),
            Some(&b"1"[..]),
            "{uri}"
        );
        let body: ErrorBody = test::read_body_json(response).await;
        assert!(body.error.contains("loading"), "{uri}: {}", body.error);
    }
    let predict = json_post(&raw_request(KNOWN_ID)).to_request();
    assert_eq!(
        test::call_service(&app, predict).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );

    data.load_first().expect("load");
    let ready = test::call_service(&app, get("/health/ready")).await;
    assert_eq!(ready.status(), StatusCode::OK);
    let predict = json_post(&raw_request(KNOWN_ID)).to_request();
    assert_eq!(test::call_service(&app, predict).await.status(), StatusCode::OK);
}

/// Issue 15: a batch in the raw file's own format (`;`, ` valor `, cp1252),
/// as a bank's export would be sent, is scored row by row; a bad row is
/// refused alone.
#[actix_web::test]
async fn a_batch_in_the_raw_csv_format_is_scored() {
    let fixture = Fixture::new();
    let columns = revspend_core::contract::COLUMNS;
    let line = |v: &Value| {
        columns
            .iter()
            .map(|c| v.get(*c).and_then(Value::as_str).unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
            .join(";")
    };
    let mut bad = raw_request(KNOWN_ID);
    bad[" valor "] = json!("abc");
    let text = format!(
        "{}\n{}\n{}\n{}\n",
        columns.join(";"),
        line(&raw_request(KNOWN_ID)),
        line(&bad),
        line(&raw_request(UNKNOWN_ID))
    );
    let request = test::TestRequest::post()
        .uri("/predict/batch")
        .insert_header(("content-type", "text/csv"))
        .set_payload(revspend_core::contract::encode_cp1252(&text));
    let response = send(fixture.state(), request).await;
    assert_eq!(response.status(), StatusCode::OK);
    let batch: BatchResponse = test::read_body_json(response).await;
    assert_eq!((batch.rows, batch.scored, batch.refused), (3, 2, 1));
    assert!(
        matches!(&batch.results[1], BatchItem::Refused { index: 1, field: Some(f), .. } if f == "[1][\" valor \"]"),
        "{:?}",
        batch.results[1]
    );
}
