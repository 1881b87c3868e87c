//! The server as a real server: bound to `127.0.0.1:0`, called over TCP.

use serve::{ErrorBody, Health, Prediction, build_server};

use crate::common::{Fixture, KNOWN_ID, MODEL_VERSION, http, raw_request};

#[actix_web::test]
async fn a_real_server_answers_over_http() {
    let fixture = Fixture::new();
    let (server, addr) = build_server(fixture.state(), "127.0.0.1:0", 1).expect("bind");
    assert_ne!(addr.port(), 0, "the actual port is reported");
    let handle = server.handle();
    let running = actix_web::rt::spawn(server);

    // Blocking socket I/O runs off the test's runtime thread.
    let exchanges = actix_web::rt::task::spawn_blocking(move || {
        let body = raw_request(KNOWN_ID).to_string();
        (
            http(addr, "POST", "/predict", Some(&body)),
            http(addr, "GET", "/health", None),
            http(addr, "POST", "/predict", Some("{\"id\": 1}")),
        )
    })
    .await
    .expect("client thread");
    handle.stop(true).await;
    running.await.expect("server task").expect("server");

    let ((status, body), (health_status, health), (bad_status, bad)) = exchanges;
    assert_eq!(status, 200, "{body}");
    let p: Prediction = serde_json::from_str(&body).expect("prediction JSON");
    assert_eq!(p.model_version, MODEL_VERSION);
    assert!(!p.cold_start);
    assert_eq!(p.is_revenge_spending, p.probability >= p.threshold);

    assert_eq!(health_status, 200, "{health}");
    let h: Health = serde_json::from_str(&health).expect("health JSON");
    assert_eq!(h.snapshot_customers, 1);

    assert_eq!(bad_status, 400, "{bad}");
    let e: ErrorBody = serde_json::from_str(&bad).expect("error JSON");
    assert_eq!(e.field.as_deref(), Some("limite_total"));
}

#[test]
fn binding_a_used_address_names_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let fixture = Fixture::new();
    let Err(err) = build_server(fixture.state(), &addr, 1) else {
        panic!("bound {addr} twice");
    };
    assert!(format!("{err:#}").contains(&addr), "{err:#}");
}

/// Issue 15: a client that announces a body and stalls gets 408 and its
/// connection back, instead of holding a worker's connection for ever.
#[actix_web::test]
async fn a_stalled_body_gets_408() {
    use std::io::{Read, Write};
    let fixture = Fixture::new();
    let state = fixture
        .state()
        .with_body_timeout(std::time::Duration::from_millis(200));
    let (server, addr) = build_server(state, "127.0.0.1:0", 1).expect("bind");
    let handle = server.handle();
    let running = actix_web::rt::spawn(server);
    let answer = actix_web::rt::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        // A safety net for a broken server, far above the 200 ms limit.
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .expect("timeout");
        stream
            .write_all(
                b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                  Content-Length: 100\r\nConnection: close\r\n\r\n{\"id\":",
            )
            .expect("write");
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    })
    .await
    .expect("client thread");
    handle.stop(true).await;
    running.await.expect("server task").expect("server");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("did not arrive within 200 ms"), "{answer}");
}

/// Issue 15: `/metrics` counts requests by route pattern (never the raw
/// path), predictions by model version and decision, cold starts and batch
/// sizes, in the Prometheus text format.
#[actix_web::test]
async fn metrics_count_requests_predictions_and_batches() {
    let fixture = Fixture::new();
    let (server, addr) = build_server(fixture.state(), "127.0.0.1:0", 1).expect("bind");
    let handle = server.handle();
    let running = actix_web::rt::spawn(server);
    let (metrics_status, text) = actix_web::rt::task::spawn_blocking(move || {
        let known = raw_request(KNOWN_ID).to_string();
        let unknown = raw_request(crate::common::UNKNOWN_ID).to_string();
        assert_eq!(http(addr, "POST", "/predict", Some(&known)).0, 200);
        assert_eq!(http(addr, "POST", "/predict", Some(&unknown)).0, 200);
        let batch = format!("[{known},{unknown},{known}]");
        assert_eq!(http(addr, "POST", "/predict/batch", Some(&batch)).0, 200);
        assert_eq!(http(addr, "GET", "/no-such-route-7f3a", None).0, 404);
        http(addr, "GET", "/metrics", None)
    })
    .await
    .expect("client thread");
    handle.stop(true).await;
    running.await.expect("server task").expect("server");
    assert_eq!(metrics_status, 200, "{text}");
    let line = |prefix: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no `{prefix}` line in\n{text}"))
    };
    assert_eq!(
        line("revspend_http_requests_total{route=\"/predict\",method=\"POST\",status=\"200\"}"),
        2.0
    );
    assert_eq!(
        line("revspend_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"}"),
        1.0
    );
    assert!(!text.contains("no-such-route"), "raw paths never become labels");
    let flagged = line(&format!(
        "revspend_predictions_total{{variant=\"default\",model_version=\"{MODEL_VERSION}\",decision=\"flagged\"}}"
    ));
    let not_flagged = line(&format!(
        "revspend_predictions_total{{variant=\"default\",model_version=\"{MODEL_VERSION}\",decision=\"not_flagged\"}}"
    ));
    assert_eq!(
        flagged + not_flagged,
        5.0,
        "two single predictions and a batch of three"
    );
    assert_eq!(line("revspend_cold_starts_total"), 2.0);
    assert_eq!(line("revspend_batch_rows_count"), 1.0);
    assert_eq!(line("revspend_batch_rows_sum"), 3.0);
    assert!(
        text.contains("revspend_http_request_duration_seconds_bucket"),
        "{text}"
    );
}
