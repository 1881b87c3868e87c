//! Issue 15: `/openapi.json` documents every route, and `/docs` serves
//! Swagger UI from the binary's own assets (no CDN, nothing fetched).

use actix_web::http::StatusCode;
use actix_web::{App, test, web};
use serde_json::Value;
use serve::configure;

use crate::common::Fixture;

/// Every route the server answers, as the OpenAPI document must list it.
const ROUTES: [(&str, &str); 22] = [
    ("post", "/predict"),
    ("post", "/predict/batch"),
    ("post", "/feedback"),
    ("get", "/experiment"),
    ("post", "/invocations"),
    ("get", "/ping"),
    ("get", "/v2"),
    ("get", "/v2/health/live"),
    ("get", "/v2/health/ready"),
    ("get", "/v2/models/{name}"),
    ("get", "/v2/models/{name}/ready"),
    ("post", "/v2/models/{name}/infer"),
    ("get", "/v2/models/{name}/versions/{version}"),
    ("get", "/v2/models/{name}/versions/{version}/ready"),
    ("post", "/v2/models/{name}/versions/{version}/infer"),
    ("get", "/health"),
    ("get", "/health/live"),
    ("get", "/health/ready"),
    ("get", "/version"),
    ("get", "/metrics"),
    ("post", "/admin/reload"),
    ("post", "/admin/rollback"),
];

#[actix_web::test]
async fn the_openapi_document_lists_every_route_with_its_responses() {
    let fixture = Fixture::new();
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(fixture.state()))
            .configure(configure),
    )
    .await;
    let response = test::call_service(&app, test::TestRequest::get().uri("/openapi.json").to_request()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let doc: Value = test::read_body_json(response).await;
    let paths = doc["paths"].as_object().expect("paths");
    assert_eq!(
        paths
            .values()
            .map(|p| p.as_object().map_or(0, |o| o.len()))
            .sum::<usize>(),
        ROUTES.len()
    );
    for (method, path) in ROUTES {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is not documented");
        assert!(
            op["responses"]["200"].is_object(),
            "{method} {path} has no 200 response"
        );
    }
    // The README's example request is the documented example.
    let example = &doc["components"]["schemas"]["Transaction"]["example"];
    assert_eq!(example["id"], "10013747760", "{example}");
    for schema in [
        "Prediction",
        "BatchResponse",
        "ErrorBody",
        "Version",
        "ModelMetadata",
        "InferRequest",
    ] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "no {schema} schema"
        );
    }
    // A route handled but not documented would show here: each documented
    // route answers something other than 404.
    for (method, path) in ROUTES {
        let uri = path
            .replace("{name}", "revspend")
            .replace("{version}", "forest-test00000000");
        let request = if method == "get" {
            test::TestRequest::get()
        } else {
            test::TestRequest::post()
        };
        let response = test::call_service(&app, request.uri(&uri).to_request()).await;
        assert_ne!(response.status(), StatusCode::NOT_FOUND, "{method} {uri}");
    }
}

#[actix_web::test]
async fn docs_are_served_from_vendored_assets() {
    let fixture = Fixture::new();
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(fixture.state()))
            .configure(configure),
    )
    .await;
    let page = test::call_service(&app, test::TestRequest::get().uri("/docs/").to_request()).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = String::from_utf8(test::read_body(page).await.to_vec()).expect("utf-8");
    assert!(html.contains("swagger-ui-bundle.js"), "{html}");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "nothing from a CDN: {html}"
    );
    for asset in [
        "/docs/swagger-ui-bundle.js",
        "/docs/swagger-ui.css",
        "/docs/swagger-initializer.js",
    ] {
        let response = test::call_service(&app, test::TestRequest::get().uri(asset).to_request()).await;
        assert_eq!(response.status(), StatusCode::OK, "{asset}");
        let body = test::read_body(response).await;
        assert!(body.len() > 100, "{asset} is {} bytes", body.len());
        if asset.ends_with("initializer.js") {
            let js = String::from_utf8_lossy(&body);
            assert!(
                js.contains("/openapi.json"),
                "the UI loads this server's document: {js}"
            );
        }
    }
}
