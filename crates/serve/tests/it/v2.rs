//! Issue 15: the Open Inference Protocol (KServe V2 REST). Requests follow
//! the protocol's documented inference request example (named input
//! tensors with `shape`, `datatype`, `data`; optional `id` and `outputs`).

use actix_web::http::StatusCode;
use actix_web::test;
use serde_json::{Value, json};
use serve::{AppState, MODEL_NAME, ModelMetadata};

use crate::common::{Fixture, KNOWN_ID, MODEL_VERSION, UNKNOWN_ID, raw_request, send};

async fn get(state: AppState, uri: &str) -> (StatusCode, Value) {
    let response = send(state, test::TestRequest::get().uri(uri)).await;
    let status = response.status();
    (status, test::read_body_json(response).await)
}

async fn infer(state: AppState, uri: &str, body: &Value) -> (StatusCode, Value) {
    let response = send(
        state,
        test::TestRequest::post()
            .uri(uri)
            .insert_header(("content-type", "application/json"))
            .set_payload(body.to_string()),
    )
    .await;
    let status = response.status();
    (status, test::read_body_json(response).await)
}

/// The two fixture rows as V2 input tensors, one per field, shape `[2]`
/// (or `[2, 1]` with one value per row when `nested`).
fn tensors(nested: bool) -> Value {
    let rows = [raw_request(KNOWN_ID), raw_request(UNKNOWN_ID)];
    let inputs: Vec<Value> = rows[0]
        .as_object()
        .expect("object")
        .keys()
        .map(|k| {
            let data: Vec<Value> = rows
                .iter()
                .map(|r| if nested { json!([r[k]]) } else { r[k].clone() })
                .collect();
            let shape = if nested { json!([2, 1]) } else { json!([2]) };
            json!({"name": k.trim(), "shape": shape, "datatype": "BYTES", "data": data})
        })
        .collect();
    json!({ "id": "req-42", "inputs": inputs })
}

#[actix_web::test]
async fn health_and_metadata_describe_the_model() {
    let fixture = Fixture::new();
    assert_eq!(
        get(fixture.state(), "/v2/health/live").await,
        (StatusCode::OK, json!({"live": true}))
    );
    assert_eq!(
        get(fixture.state(), "/v2/health/ready").await,
        (StatusCode::OK, json!({"ready": true}))
    );
    let (status, server) = get(fixture.state(), "/v2").await;
    assert_eq!(status, StatusCode::OK);
    assert!(server["extensions"].is_array(), "{server}");
    let (status, meta) = get(fixture.state(), &format!("/v2/models/{MODEL_NAME}")).await;
    assert_eq!(status, StatusCode::OK, "{meta}");
    let meta: ModelMetadata = serde_json::from_value(meta).expect("metadata");
    let inputs: Vec<(&str, &str)> = meta
        .inputs
        .iter()
        .map(|t| (t.name.as_str(), t.datatype.as_str()))
        .collect();
    assert_eq!(inputs.len(), revspend_core::contract::COLUMNS.len());
    assert!(
        inputs.contains(&("valor", "FP64")) && inputs.contains(&("data", "BYTES")),
        "{inputs:?}"
    );
    assert!(meta.versions.contains(&MODEL_VERSION.to_owned()));
    let ready = format!("/v2/models/{MODEL_NAME}/versions/{MODEL_VERSION}/ready");
    assert_eq!(get(fixture.state(), &ready).await.0, StatusCode::OK);
    let (status, e) = get(fixture.state(), "/v2/models/other").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(e["error"].as_str().is_some_and(|m| m.contains(MODEL_NAME)), "{e}");
    let (status, _) = get(
        fixture.state(),
        &format!("/v2/models/{MODEL_NAME}/versions/v9999/ready"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn infer_scores_the_rows_like_predict_in_every_path_and_shape() {
    let fixture = Fixture::new();
    let mut want = Vec::new();
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
        want.push(p["probability"].clone());
    }
    for (uri, nested) in [
        (format!("/v2/models/{MODEL_NAME}/infer"), false),
        (
            format!("/v2/models/{MODEL_NAME}/versions/{MODEL_VERSION}/infer"),
            true,
        ),
    ] {
        let (status, answer) = infer(fixture.state(), &uri, &tensors(nested)).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["id"], "req-42");
        assert_eq!(answer["model_name"], MODEL_NAME);
        let outputs = answer["outputs"].as_array().expect("outputs");
        let probability = outputs
            .iter()
            .find(|o| o["name"] == "probability")
            .expect("probability");
        assert_eq!(probability["datatype"], "FP64");
        assert_eq!(probability["shape"], json!([2]));
        assert_eq!(probability["data"], json!(want), "{uri}");
        let cold = outputs
            .iter()
            .find(|o| o["name"] == "cold_start")
            .expect("cold_start");
        assert_eq!(cold["data"], json!([false, true]));
        // Each row says which variant and model answered it.
        let variant = outputs.iter().find(|o| o["name"] == "variant").expect("variant");
        assert_eq!(variant["data"], json!(["default", "default"]));
        let model = outputs
            .iter()
            .find(|o| o["name"] == "model_version")
            .expect("model_version");
        assert_eq!(model["data"], json!([MODEL_VERSION, MODEL_VERSION]));
    }
    // Only the outputs asked for.
    let mut body = tensors(false);
    body["outputs"] = json!([{"name": "is_revenge_spending"}]);
    let (status, answer) = infer(fixture.state(), &format!("/v2/models/{MODEL_NAME}/infer"), &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let names: Vec<&Value> = answer["outputs"]
        .as_array()
        .expect("outputs")
        .iter()
        .map(|o| &o["name"])
        .collect();
    assert_eq!(names, [&json!("is_revenge_spending")]);
}

/// Bad requests are 4xx `{"error": ...}` naming the tensor, row or path.
#[actix_web::test]
async fn bad_inference_requests_name_the_tensor() {
    let fixture = Fixture::new();
    let uri = format!("/v2/models/{MODEL_NAME}/infer");
    let with = |f: &dyn Fn(&mut Value)| {
        let mut b = tensors(false);
        f(&mut b);
        b
    };
    let cases = [
        (
            with(&|b| b["inputs"][0]["name"] = json!("colour")),
            "inputs[colour]",
        ),
        (with(&|b| b["inputs"][1]["shape"] = json!([3])), ".shape"),
        (
            with(&|b| b["inputs"][1]["datatype"] = json!("STRING")),
            ".datatype",
        ),
        (
            with(&|b| b["outputs"] = json!([{"name": "score"}])),
            "outputs[0].name",
        ),
        (
            with(&|b| {
                let inputs = b["inputs"].as_array_mut().expect("inputs");
                inputs.retain(|t| t["name"] != "data");
            }),
            "data",
        ),
        (json!({"inputs": []}), "inputs"),
        (json!({"id": 1}), "not an inference request"),
    ];
    for (body, names) in cases {
        let (status, e) = infer(fixture.state(), &uri, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {e}");
        let text = format!("{} {}", e["error"], e["field"]);
        assert!(text.contains(names), "{names}: {e}");
    }
    let (status, _) = infer(fixture.state(), "/v2/models/other/infer", &tensors(false)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
