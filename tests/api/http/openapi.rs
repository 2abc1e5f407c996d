//! `GET /openapi.json` against the routes: the document names exactly the paths and methods
//! the server answers (each path probed with `OPTIONS`, whose `Allow` comes from the route
//! table), and every `resource("…")` in `src/http` is in it, so a route added without its
//! documentation fails here. Response shapes are Schemathesis's job (`.ci/schemathesis_run.py`).

use std::collections::BTreeSet;
use std::path::Path;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{header_str, spawn_app, TestApp};

/// Routes that exist but are not API, so the document leaves them out: `/demo` and
/// everything under it (the demo page, its assets, its demo-only admin session), which
/// answer 404 unless `demo.enabled = true`.
const NOT_API_PREFIX: &str = "/demo";

fn is_api(path: &str) -> bool {
    !(path == NOT_API_PREFIX || path.starts_with(&format!("{NOT_API_PREFIX}/")))
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

async fn served_document(app: &TestApp) -> Value {
    let resp = app.request(Method::GET, "/openapi.json", None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        header_str(resp.headers(), "content-type").as_deref(),
        Some("application/json")
    );
    resp.json().await.expect("the document is JSON")
}

/// `/admin/users/{id}` → `/admin/users/x`: any value reaches the same resource.
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|segment| {
            if segment.starts_with('{') && segment.ends_with('}') {
                "x"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn documented_methods(item: &Value) -> BTreeSet<String> {
    METHODS
        .iter()
        .filter(|method| item.get(**method).is_some())
        .map(|method| method.to_ascii_uppercase())
        .collect()
}

/// The path templates of every `resource("…")` call in `src/http/*.rs` (comments aside).
fn resources_in_sources() -> BTreeSet<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
    let mut found = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).expect("read src/http") {
        let path = entry.expect("dir entry").path();
        if path.extension().and_then(|ext| ext.to_str()) != Some("rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read source");
        let code = text
            .lines()
            .filter(|line| !line.trim_start().starts_with("//"));
        for line in code {
            for rest in line.split("resource(\"").skip(1) {
                let end = rest.find('"').expect("closing quote");
                found.insert(rest[..end].to_string());
            }
        }
    }
    found
}

#[tokio::test]
async fn the_document_is_served_as_openapi_3_1_json() {
    let app = spawn_app().await;
    let doc = served_document(&app).await;
    let version = doc["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3.1."), "openapi {version}");
    assert!(doc["paths"]["/auth/login"]["post"].is_object());
}

#[tokio::test]
async fn every_documented_path_takes_exactly_the_documented_methods() {
    let app = spawn_app().await;
    let doc = served_document(&app).await;
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() > 25, "only {} paths", paths.len());
    for (template, item) in paths {
        let path = concrete(template);
        let documented = documented_methods(item);
        assert!(!documented.is_empty(), "{template}: no operation");
        let resp = app.request(Method::OPTIONS, &path, None).await;
        if item["x-claimd-any-method"] == Value::Bool(true) {
            // A catch-all route: OPTIONS reaches the handler like any other method, and no
            // method is refused.
            assert_ne!(resp.status(), StatusCode::NOT_FOUND, "{template}");
            for method in [Method::GET, Method::POST, Method::PUT, Method::DELETE] {
                let resp = app.request(method.clone(), &path, None).await;
                assert!(
                    !matches!(resp.status().as_u16(), 404 | 405),
                    "{method} {template}: {}",
                    resp.status()
                );
            }
            continue;
        }
        assert_eq!(
            resp.status(),
            StatusCode::NO_CONTENT,
            "OPTIONS {template}: not a route?"
        );
        let allow = header_str(resp.headers(), "allow").unwrap_or_default();
        let allowed: BTreeSet<String> = allow
            .split(',')
            .map(|method| method.trim().to_ascii_uppercase())
            .filter(|method| !method.is_empty() && method != "OPTIONS")
            .collect();
        assert_eq!(
            allowed, documented,
            "{template}: the server allows {allow:?}, the document describes {documented:?}"
        );
    }
}

#[tokio::test]
async fn an_undocumented_path_is_not_a_route() {
    // The probe above must be able to fail: OPTIONS on a path no route has is a 404.
    let app = spawn_app().await;
    let resp = app.request(Method::OPTIONS, "/not-a-route", None).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn every_route_in_the_sources_is_documented() {
    let app = spawn_app().await;
    let doc = served_document(&app).await;
    let resources = resources_in_sources();
    assert!(
        resources.contains("/auth/login") && resources.contains("/admin/users/{id}"),
        "the source scan finds nothing: {resources:?}"
    );
    let missing: Vec<&String> = resources
        .iter()
        .filter(|path| is_api(path))
        .filter(|path| doc["paths"].get(path.as_str()).is_none())
        .collect();
    assert!(
        missing.is_empty(),
        "routes missing from src/http/openapi.json: {missing:?}"
    );
}
