//! Issue 15: MLflow's scoring protocol. The payloads follow the examples of
//! MLflow's "Deploy MLflow models" page (`dataframe_split`,
//! `dataframe_records`, `instances`, `inputs` as records or columns, and
//! CSV), with this model's columns.

use actix_web::http::StatusCode;
use actix_web::{test, web};
use serde_json::{Map, Value, json};
use serve::AppState;

use crate::common::{Fixture, KNOWN_ID, UNKNOWN_ID, raw_request, send};

fn invocation(content_type: &str, body: impl Into<web::Bytes>) -> test::TestRequest {
    test::TestRequest::post()
        .uri("/invocations")
        .insert_header(("content-type", content_type))
        .set_payload(body.into())
}

/// The probabilities of a successful `/invocations` answer.
async fn probabilities(state: AppState, request: test::TestRequest) -> Vec<f64> {
    let response = send(state, request).await;
    let status = response.status();
    let body: Value = test::read_body_json(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["predictions"]
        .as_array()
        .expect("predictions")
        .iter()
        .map(|p| {
            assert!(p["prediction_id"].is_string(), "{p}");
            p["probability"].as_f64().expect("probability")
        })
        .collect()
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(o) => o,
        _ => unreachable!("raw_request is an object"),
    }
}

/// What `/predict` says of the known and the unknown customer.
async fn expected(fixture: &Fixture) -> Vec<f64> {
    let mut out = Vec::new();
    for id in [KNOWN_ID, UNKNOWN_ID] {
        let r = send(
            fixture.state(),
            test::TestRequest::post()
                .uri("/predict")
                .insert_header(("content-type", "application/json"))
                .set_payload(raw_request(id).to_string()),
        )
        .await;
        let p: Value = test::read_body_json(r).await;
        out.push(p["probability"].as_f64().expect("probability"));
    }
    out
}

#[actix_web::test]
async fn every_json_shape_scores_like_predict_and_extra_columns_are_ignored() {
    let fixture = Fixture::new();
    let want = expected(&fixture).await;
    let mut known = object(raw_request(KNOWN_ID));
    // MLflow ignores columns the model's signature does not name.
    known.insert("merchant_note".into(), json!("ignored"));
    let unknown = object(raw_request(UNKNOWN_ID));
    let columns: Vec<String> = known.keys().cloned().collect();
    let row = |o: &Map<String, Value>| -> Vec<Value> {
        columns
            .iter()
            .map(|c| o.get(c).cloned().unwrap_or(Value::Null))
            .collect()
    };
    let mut unknown_extra = unknown.clone();
    unknown_extra.insert("merchant_note".into(), json!("ignored"));
    let shapes = [
        json!({"dataframe_split": {"columns": columns, "data": [row(&known), row(&unknown_extra)]}}),
        json!({"dataframe_split": {"index": [0, 1], "columns": columns, "data": [row(&known), row(&unknown_extra)]}}),
        json!({"dataframe_records": [known, unknown]}),
        json!({"instances": [known, unknown]}),
        json!({"inputs": [known, unknown]}),
        json!({"inputs": columns.iter().map(|c| (c.clone(), json!([known[c], unknown_extra[c]]))).collect::<Map<String, Value>>()}),
        json!({"dataframe_records": [known, unknown], "params": {"ignored": 1}}),
    ];
    for body in shapes {
        let got = probabilities(fixture.state(), invocation("application/json", body.to_string())).await;
        assert_eq!(got, want, "{body}");
    }
}

#[actix_web::test]
async fn csv_bodies_in_pandas_and_in_the_raw_file_format_are_scored() {
    let fixture = Fixture::new();
    let want = expected(&fixture).await;
    let quote = |v: &Value| format!("\"{}\"", v.as_str().unwrap_or_default().replace('"', "\"\""));
    let (known, unknown) = (object(raw_request(KNOWN_ID)), object(raw_request(UNKNOWN_ID)));
    let keys: Vec<String> = known.keys().cloned().collect();
    let line = |o: &Map<String, Value>| keys.iter().map(|k| quote(&o[k])).collect::<Vec<_>>().join(",");
    // pandas' to_csv: commas, quoted where needed, UTF-8.
    let pandas = format!("{}\n{}\n{}\n", keys.join(","), line(&known), line(&unknown));
    let got = probabilities(fixture.state(), invocation("text/csv", pandas)).await;
    assert_eq!(got, want);
    // The raw file's own format: `;`, the ` valor ` header, cp1252.
    let columns = revspend_core::contract::COLUMNS;
    let raw_line = |o: &Map<String, Value>| {
        columns
            .iter()
            .map(|c| o.get(*c).and_then(Value::as_str).unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
            .join(";")
    };
    let raw = format!(
        "{}\n{}\n{}\n",
        columns.join(";"),
        raw_line(&known),
        raw_line(&unknown)
    );
    let bytes = revspend_core::contract::encode_cp1252(&raw);
    let got = probabilities(
        fixture.state(),
        invocation("text/csv; charset=windows-1252", bytes),
    )
    .await;
    assert_eq!(got, want);
}

/// A request MLflow would refuse is a 400 in MLflow's error body, naming
/// the row, field or JSON path; a media type it does not take is refused.
#[actix_web::test]
async fn bad_requests_get_mlflow_error_bodies_naming_the_problem() {
    let fixture = Fixture::new();
    let mut missing = object(raw_request(KNOWN_ID));
    missing.remove("data");
    let cases = [
        (
            json!({"dataframe_records": [raw_request(KNOWN_ID), missing]}).to_string(),
            "row 1",
        ),
        (json!({"records": []}).to_string(), "dataframe_split"),
        (json!({"instances": [[1, 2]]}).to_string(), "instances[0]"),
        (
            json!({"dataframe_split": {"columns": ["id"], "data": [[1, 2]]}}).to_string(),
            "data[0]",
        ),
        (
            json!({"inputs": {"id": ["1"], "data": []}}).to_string(),
            "inputs.",
        ),
        ("{not json".to_owned(), "not valid JSON"),
    ];
    for (body, says) in cases {
        let response = send(fixture.state(), invocation("application/json", body.clone())).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let e: Value = test::read_body_json(response).await;
        assert_eq!(e["error_code"], "BAD_REQUEST", "{e}");
        assert!(
            e["message"].as_str().is_some_and(|m| m.contains(says)),
            "{says}: {e}"
        );
    }
    let response = send(fixture.state(), invocation("text/plain", "x")).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[actix_web::test]
async fn ping_answers_200() {
    let fixture = Fixture::new();
    let response = send(fixture.state(), test::TestRequest::get().uri("/ping")).await;
    assert_eq!(response.status(), StatusCode::OK);
}
