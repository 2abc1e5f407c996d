//! Malformed requests: bad JSON, missing or mistyped fields, oversized bodies, unknown paths
//! and wrong methods all answer as problems with the documented codes, and none of them
//! writes anything.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::accounts::register::long_password;
use crate::helpers::{assert_problem, assert_problem_any, spawn_app, spawn_app_with, PASSWORD};

const JSON: Option<&str> = Some("application/json");

#[tokio::test]
async fn malformed_json_is_invalid_request() {
    let app = spawn_app().await;

    for path in ["/auth/register", "/auth/login", "/auth/refresh-token"] {
        let resp = app.post_raw(path, r#"{"username": "alice", "#, JSON).await;
        assert_problem(resp, 400, "invalid_request").await;
    }
}

#[tokio::test]
async fn malformed_json_on_an_authenticated_route_is_invalid_request() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;

    let resp = app
        .client
        .post(app.url("/me/password"))
        .bearer_auth(&login.access_token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();

    assert_problem(resp, 400, "invalid_request").await;
    app.login_ok("alice", PASSWORD).await;
}

#[tokio::test]
async fn empty_body_is_invalid_request() {
    let app = spawn_app().await;

    for path in ["/auth/register", "/auth/login"] {
        let resp = app.post_raw(path, "", JSON).await;
        assert_problem(resp, 400, "invalid_request").await;
    }
}

#[tokio::test]
async fn non_object_json_is_invalid_request() {
    let app = spawn_app().await;

    for body in ["[]", "null", "42", r#""alice""#, "true"] {
        let resp = app.post_raw("/auth/register", body, JSON).await;
        assert_problem(resp, 400, "invalid_request").await;
    }
}

#[tokio::test]
async fn missing_field_is_invalid_request_naming_the_field() {
    let app = spawn_app().await;

    let no_password = app
        .post_json("/auth/register", &json!({"username": "alice"}))
        .await;
    let (_, body) = assert_problem(no_password, 400, "invalid_request").await;
    assert!(
        body["detail"].as_str().unwrap().contains("password"),
        "{body}"
    );

    let no_username = app
        .post_json("/auth/login", &json!({"password": PASSWORD}))
        .await;
    let (_, body) = assert_problem(no_username, 400, "invalid_request").await;
    assert!(
        body["detail"].as_str().unwrap().contains("username"),
        "{body}"
    );
}

#[tokio::test]
async fn wrong_field_types_are_invalid_request() {
    let app = spawn_app().await;

    let bodies = [
        json!({"username": 1, "password": PASSWORD}),
        json!({"username": "alice", "password": 12345678}),
        json!({"username": ["alice"], "password": PASSWORD}),
        json!({"username": null, "password": PASSWORD}),
        json!({"username": "alice", "password": {"x": 1}}),
    ];
    for body in &bodies {
        let resp = app.post_json("/auth/register", body).await;
        assert_problem(resp, 400, "invalid_request").await;
        let resp = app.post_json("/auth/login", body).await;
        assert_problem(resp, 400, "invalid_request").await;
    }
    let resp = app
        .post_json("/auth/refresh-token", &json!({"refresh_token": 5}))
        .await;
    assert_problem(resp, 400, "invalid_request").await;
    // Nothing was written.
    app.register_ok("alice", PASSWORD).await;
}

#[tokio::test]
async fn deeply_nested_json_is_invalid_request_not_a_crash() {
    let app = spawn_app().await;
    let depth = 5000;
    let body = format!(
        r#"{{"username":{}{},"password":"x"}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );

    let resp = app.post_raw("/auth/register", body, JSON).await;

    assert_problem(resp, 400, "invalid_request").await;
    assert_eq!(app.healthz().await.status(), StatusCode::OK);
}

#[tokio::test]
async fn invalid_utf8_is_invalid_request() {
    let app = spawn_app().await;
    let body = b"{\"username\":\"al\xff\xfeice\",\"password\":\"correct horse\"}".to_vec();

    let resp = app.post_raw("/auth/register", body, JSON).await;

    assert_problem(resp, 400, "invalid_request").await;
}

#[tokio::test]
async fn non_json_content_type_is_a_problem() {
    let app = spawn_app().await;
    let body = json!({"username": "alice", "password": PASSWORD}).to_string();

    let resp = app
        .post_raw("/auth/register", body, Some("text/plain"))
        .await;

    // 400 or 415 are both honest answers; it must be a problem, and nothing is written.
    let status = resp.status().as_u16();
    assert!(status == 400 || status == 415, "status {status}");
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(
        content_type.starts_with("application/problem+json"),
        "{content_type}"
    );
    app.register_ok("alice", PASSWORD).await;
}

#[tokio::test]
async fn body_over_max_body_bytes_is_413_and_writes_nothing() {
    let app = spawn_app().await;
    let body = json!({"username": "dave", "password": "p".repeat(20_000)}).to_string();
    assert!(body.len() > 16384);

    let resp = app.post_raw("/auth/register", body, JSON).await;

    assert_problem(resp, 413, "payload_too_large").await;
    app.register_ok("dave", PASSWORD).await;
}

#[tokio::test]
async fn max_body_bytes_setting_is_honoured() {
    let app = spawn_app_with(|s| s.server.max_body_bytes = 1024).await;
    let big = json!({"username": "dave", "password": long_password(1500)}).to_string();
    let small = json!({"username": "erin", "password": long_password(900)}).to_string();

    let resp = app.post_raw("/auth/register", big, JSON).await;
    assert_problem(resp, 413, "payload_too_large").await;

    let ok = app.post_raw("/auth/register", small, JSON).await;
    assert_eq!(ok.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn oversized_login_and_refresh_bodies_are_413() {
    let app = spawn_app().await;
    let huge = "x".repeat(20_000);

    let login = json!({"username": "alice", "password": huge}).to_string();
    let resp = app.post_raw("/auth/login", login, JSON).await;
    assert_problem(resp, 413, "payload_too_large").await;

    let refresh = json!({"refresh_token": huge}).to_string();
    let resp = app.post_raw("/auth/refresh-token", refresh, JSON).await;
    assert_problem(resp, 413, "payload_too_large").await;
}

#[tokio::test]
async fn unknown_paths_are_404_not_found() {
    let app = spawn_app().await;

    // `/` answers what this is (ops::the_base_url_says_what_this_is_and_links_onward).
    for path in [
        "/nope",
        "/auth/loginx",
        "/auth",
        "/me/nothing",
        "/.well-known/nothing",
    ] {
        let resp = app.request(Method::GET, path, None).await;
        assert_problem(resp, 404, "not_found").await;
    }
    let resp = app.post_json("/auth/nope", &json!({})).await;
    assert_problem(resp, 404, "not_found").await;
}

#[tokio::test]
async fn wrong_methods_are_405_method_not_allowed() {
    let app = spawn_app().await;

    let cases = [
        (Method::GET, "/auth/register"),
        (Method::GET, "/auth/login"),
        (Method::PUT, "/auth/login"),
        (Method::GET, "/auth/refresh-token"),
        (Method::GET, "/auth/logout-all"),
        (Method::DELETE, "/me"),
        (Method::PUT, "/me"),
        (Method::POST, "/healthz"),
        (Method::POST, "/.well-known/jwks.json"),
    ];
    for (method, path) in cases {
        let resp = app.request(method.clone(), path, None).await;
        let (_, body) = assert_problem(resp, 405, "method_not_allowed").await;
        assert_eq!(body["status"], json!(405), "{method} {path}");
    }
}

#[tokio::test]
async fn bad_login_input_is_not_a_failed_login() {
    let app = spawn_app_with(|s| {
        s.auth.login_attempts = claimd::config::LoginAttempts {
            max: 3,
            window: std::time::Duration::from_secs(60),
        };
    })
    .await;
    app.register_ok("alice", PASSWORD).await;

    for _ in 0..5 {
        let resp = app
            .post_json("/auth/login", &json!({"username": "alice"}))
            .await;
        assert_problem_any(resp, 400, &["invalid_request"]).await;
    }

    app.login_ok("alice", PASSWORD).await;
}
