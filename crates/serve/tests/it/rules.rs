//! Issue 15: a request is checked against the quality suite's row rules
//! (the ones `build-features` quarantines raw rows by), and nothing a client
//! sends produces a 5xx or a panic (a property test over arbitrary bodies).

use actix_web::http::StatusCode;
use actix_web::test as actix_test;
use actix_web::{App, web};
use proptest::prelude::*;
use revspend_core::contract::{self, Group, ValueRanges};
use serde_json::{Map, Value, json};
use serve::{AppState, BatchItem, BatchResponse, ErrorBody, configure};

use crate::common::{Fixture, KNOWN_ID, UNKNOWN_ID, raw_request, send};

fn post(uri: &str, body: &Value) -> actix_test::TestRequest {
    actix_test::TestRequest::post()
        .uri(uri)
        .insert_header(("content-type", "application/json"))
        .set_payload(body.to_string())
}

/// The fixture's request with `key` set to `value`.
fn with(key: &str, value: Value) -> Value {
    let mut body = raw_request(KNOWN_ID);
    body[key] = value;
    body
}

/// What the server used to accept, each with the rule and field it breaks.
fn broken() -> Vec<(Value, &'static str, &'static str)> {
    vec![
        (with("data", json!("31.12.9999")), "ranges.data", "data"),
        (with("data", json!("0001-01-01")), "ranges.data", "data"),
        (
            with("cidade", json!("SAO\u{0}PAULO")),
            "no_control_characters",
            "cidade",
        ),
        (
            with("cidade_estabelecimento", json!("RIO\u{7}")),
            "no_control_characters",
            "cidade_estabelecimento",
        ),
        (
            with("limite_total", json!(0)),
            "ranges.limite_total",
            "limite_total",
        ),
        (
            with("limite_total", json!("0.0")),
            "ranges.limite_total",
            "limite_total",
        ),
        (
            with("safra_abertura", json!("202104")),
            "account_opened_before_purchase",
            "safra_abertura",
        ),
        (
            with("grupo_estabelecimento", json!("PADARIA")),
            "known_merchant_group",
            "grupo_estabelecimento",
        ),
        (with(" valor ", json!("-5,00")), "ranges.valor", " valor "),
    ]
}

#[actix_web::test]
async fn a_request_that_breaks_a_row_rule_is_a_422_naming_the_rule_and_the_field() {
    let fixture = Fixture::new();
    for (body, rule, field) in broken() {
        let response = send(fixture.state(), post("/predict", &body)).await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let error: ErrorBody = actix_test::read_body_json(response).await;
        assert_eq!(error.rule.as_deref(), Some(rule), "{error:?}");
        assert_eq!(error.field.as_deref(), Some(field), "{error:?}");
        assert!(error.error.contains(&format!("rule `{rule}`")), "{}", error.error);
    }
}

/// One definition: the offline reader refuses the same rows by the same
/// rules (the raw row of each request, as `build-features` reads it).
#[test]
fn the_offline_rules_refuse_the_same_rows() {
    for (body, rule, _) in broken() {
        let texts: Vec<String> = contract::COLUMNS
            .iter()
            .map(|c| {
                let v = body
                    .get(*c)
                    .or_else(|| body.get(c.trim()))
                    .cloned()
                    .unwrap_or(Value::Null);
                match v {
                    Value::String(s) => s,
                    Value::Number(n) => n.to_string(),
                    _ => String::new(),
                }
            })
            .collect();
        let fields: Vec<&str> = texts.iter().map(String::as_str).collect();
        let row = contract::parse_row(&fields).expect("parses");
        let violation = contract::check_row(&ValueRanges::default(), &row, &fields, Group::Unchecked)
            .expect_err("broken");
        assert_eq!(violation.rule, rule, "{body}");
    }
}

/// The server applies the ranges the snapshot's rows were staged under,
/// not only the defaults.
#[actix_web::test]
async fn the_snapshots_ranges_are_the_ones_applied() {
    let fixture = Fixture::new();
    let mut snapshot = revspend_core::artifact::read_snapshot(&fixture.snapshot).expect("read");
    snapshot.ranges.valor.max = Some(1000.0);
    revspend_core::artifact::write_snapshot(&fixture.snapshot, &snapshot).expect("write");
    let response = send(fixture.state(), post("/predict", &raw_request(KNOWN_ID))).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let error: ErrorBody = actix_test::read_body_json(response).await;
    assert_eq!(error.rule.as_deref(), Some("ranges.valor"));
    assert!(error.error.contains("[0, 1000]"), "{}", error.error);
}

#[actix_web::test]
async fn a_batch_row_that_breaks_a_rule_gets_its_own_entry_with_the_rule() {
    let fixture = Fixture::new();
    let body = json!([
        raw_request(KNOWN_ID),
        with("data", json!("31.12.9999")),
        raw_request(UNKNOWN_ID)
    ]);
    let response = send(fixture.state(), post("/predict/batch", &body)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let batch: BatchResponse = actix_test::read_body_json(response).await;
    assert_eq!((batch.rows, batch.scored, batch.refused), (3, 2, 1));
    match &batch.results[1] {
        BatchItem::Refused {
            index, field, rule, ..
        } => {
            assert_eq!(*index, 1);
            assert_eq!(field.as_deref(), Some("[1].data"));
            assert_eq!(rule.as_deref(), Some("ranges.data"));
        }
        other => panic!("row 1 should be refused: {other:?}"),
    }
}

#[actix_web::test]
async fn v2_and_mlflow_name_the_rule_in_their_own_error_shapes() {
    let fixture = Fixture::new();
    let body = with("cidade", json!("A\u{0}B"));
    let inputs: Vec<Value> = body
        .as_object()
        .expect("object")
        .iter()
        .map(|(k, v)| json!({"name": k.trim(), "shape": [1], "datatype": "BYTES", "data": [v]}))
        .collect();
    let response = send(
        fixture.state(),
        post("/v2/models/revspend/infer", &json!({ "inputs": inputs })),
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let error: ErrorBody = actix_test::read_body_json(response).await;
    assert_eq!(error.rule.as_deref(), Some("no_control_characters"));
    assert_eq!(error.field.as_deref(), Some("inputs[cidade].data[0]"));

    // MLflow's scoring server answers bad input with a 400 and its own body.
    let response = send(
        fixture.state(),
        post("/invocations", &json!({ "dataframe_records": [body] })),
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let error: Value = actix_test::read_body_json(response).await;
    let message = error["message"].as_str().unwrap_or_default();
    assert!(message.contains("rule `no_control_characters`"), "{error}");
}

/// A JSON value of any shape, with strings that include control
/// characters, huge and negative numbers and odd dates.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        any::<String>().prop_map(Value::String),
        "[0-9 .,-]{0,14}".prop_map(Value::String),
        "[0-9]{1,2}[./-][0-9]{1,2}[./-][0-9]{1,5}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_ ]{0,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A valid request with some fields replaced by arbitrary values or
/// removed: near misses reach deeper into the checks than random JSON.
fn near_miss() -> impl Strategy<Value = Value> {
    let keys: Vec<String> = raw_request(KNOWN_ID)
        .as_object()
        .expect("object")
        .keys()
        .cloned()
        .collect();
    prop::collection::vec((prop::sample::select(keys), prop::option::of(any_json())), 1..4).prop_map(
        |changes| {
            let mut body = raw_request(KNOWN_ID);
            let object = body.as_object_mut().expect("object");
            for (key, value) in changes {
                match value {
                    Some(v) => object.insert(key, v),
                    None => object.remove(&key),
                };
            }
            body
        },
    )
}

/// Every `probability` in a response, at any depth.
fn probabilities(value: &Value, found: &mut Vec<f64>) {
    match value {
        Value::Object(o) => {
            for (k, v) in o {
                if k == "probability" {
                    found.push(v.as_f64().unwrap_or(f64::NAN));
                } else {
                    probabilities(v, found);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| probabilities(v, found)),
        _ => {}
    }
}

/// The routes a client posts data to.
const ROUTES: [&str; 4] = [
    "/predict",
    "/predict/batch",
    "/invocations",
    "/v2/models/revspend/infer",
];

/// Wraps a request body the way each route expects it, so the fuzzed
/// value reaches the row parser rather than the envelope check.
fn envelope(route: &str, row: &Value) -> Value {
    match route {
        "/predict" => row.clone(),
        "/predict/batch" => json!([row]),
        "/invocations" => json!({ "dataframe_records": [row] }),
        _ => {
            let inputs: Vec<Value> = row.as_object().map_or_else(Vec::new, |o| {
                o.iter()
                    .map(|(k, v)| json!({"name": k.trim(), "shape": [1], "datatype": "BYTES", "data": [v]}))
                    .collect()
            });
            json!({ "inputs": inputs })
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Nothing a client sends gets a 5xx: every answer is a 200 with
    /// probabilities in [0, 1] or a 4xx with a JSON body that says why.
    #[test]
    fn no_body_makes_the_server_fail(
        row in prop_oneof![near_miss(), any_json()],
        raw in prop::collection::vec(any::<u8>(), 0..64),
        route in prop::sample::select(ROUTES.to_vec()),
        wrapped in any::<bool>(),
    ) {
        let system = actix_web::rt::System::new();
        let fixture = Fixture::new();
        let state: AppState = fixture.state();
        let outcomes = system.block_on(async move {
            let app = actix_test::init_service(App::new().app_data(web::Data::new(state)).configure(configure)).await;
            let body = if wrapped { envelope(route, &row).to_string().into_bytes() } else { row.to_string().into_bytes() };
            let mut outcomes = Vec::new();
            for payload in [body, raw] {
                let request = actix_test::TestRequest::post()
                    .uri(route)
                    .insert_header(("content-type", "application/json"))
                    .set_payload(payload.clone())
                    .to_request();
                let response = actix_test::call_service(&app, request).await;
                let status = response.status();
                let bytes = actix_test::read_body(response).await;
                outcomes.push((payload, status, bytes));
            }
            outcomes
        });
        for (payload, status, bytes) in outcomes {
            let shown = String::from_utf8_lossy(&payload);
            prop_assert!(!status.is_server_error(), "{route} answered {status} to {shown}: {bytes:?}");
            let answer: Value = serde_json::from_slice(&bytes)
                .map_err(|e| TestCaseError::fail(format!("{route} {status}: not JSON ({e}): {bytes:?}")))?;
            if status.is_success() {
                let mut found = Vec::new();
                probabilities(&answer, &mut found);
                prop_assert!(found.iter().all(|p| (0.0..=1.0).contains(p)), "{answer}");
            } else {
                prop_assert!(status.is_client_error());
                let message = answer.get("error").or_else(|| answer.get("message"));
                prop_assert!(message.and_then(Value::as_str).is_some_and(|m| !m.is_empty()), "{route} {status}: {answer}");
            }
        }
    }
}
