//! CORS for browser apps on other origins: only origins named in `server.cors_origins`
//! get `Access-Control-*` answers (the origin echoed, with `Vary: Origin` and credentials),
//! preflights list the methods each endpoint takes, admin paths and `/metrics` need
//! `server.cors_admin_origins`, and any other origin is served as if CORS did not exist.

use reqwest::{Method, Response};
use serde_json::json;

use crate::helpers::{
    assert_problem, header_str, spawn_app, spawn_app_with, spawn_app_with_admin, TestApp,
};

const APP: &str = "https://app.example.com";
const CONSOLE: &str = "https://console.example.com";
const EVIL: &str = "https://evil.example";

async fn app_allowing(origins: &[&str]) -> TestApp {
    let origins: Vec<String> = origins.iter().map(|o| (*o).to_string()).collect();
    spawn_app_with(move |s| s.server.cors_origins = origins).await
}

async fn preflight(app: &TestApp, path: &str, origin: &str, method: &str) -> Response {
    app.client
        .request(Method::OPTIONS, app.url(path))
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .expect("preflight sent")
}

async fn from_origin(app: &TestApp, method: Method, path: &str, origin: &str) -> Response {
    app.client
        .request(method, app.url(path))
        .header("origin", origin)
        .send()
        .await
        .expect("request sent")
}

fn methods(value: &str) -> Vec<String> {
    let mut methods: Vec<String> = value
        .split(',')
        .map(|m| m.trim().to_ascii_uppercase())
        .collect();
    methods.sort();
    methods
}

fn assert_allows_origin(resp: &Response, origin: &str) {
    let headers = resp.headers();
    assert_eq!(
        header_str(headers, "access-control-allow-origin").as_deref(),
        Some(origin),
        "{headers:?}"
    );
    assert_eq!(
        header_str(headers, "access-control-allow-credentials").as_deref(),
        Some("true")
    );
    assert!(
        header_str(headers, "vary").is_some_and(|v| v.to_lowercase().contains("origin")),
        "Vary: Origin: {headers:?}"
    );
}

fn assert_no_cors(resp: &Response) {
    let cors: Vec<_> = resp
        .headers()
        .keys()
        .filter(|name| name.as_str().starts_with("access-control-"))
        .collect();
    assert!(cors.is_empty(), "no CORS headers expected: {cors:?}");
}

#[tokio::test]
async fn an_allowed_origin_can_log_in_and_read_the_headers_it_needs() {
    let app = app_allowing(&[APP]).await;
    app.register_ok("alice", crate::helpers::PASSWORD).await;

    let resp = app
        .client
        .post(app.url("/auth/login"))
        .header("origin", APP)
        .json(&json!({"username": "alice", "password": crate::helpers::PASSWORD}))
        .send()
        .await
        .unwrap();

    assert_eq!(resp.status(), 200);
    assert_allows_origin(&resp, APP);
    let exposed = header_str(resp.headers(), "access-control-expose-headers").unwrap();
    for header in ["x-refreshed-token", "retry-after", "www-authenticate"] {
        assert!(exposed.contains(header), "{header} exposed: {exposed}");
    }
}

#[tokio::test]
async fn errors_carry_cors_headers_so_the_page_can_read_the_code() {
    let app = app_allowing(&[APP]).await;

    let resp = from_origin(&app, Method::GET, "/me", APP).await;
    assert_allows_origin(&resp, APP);
    let (headers, _) = assert_problem(resp, 401, "token_missing").await;
    assert!(headers.contains_key("www-authenticate"));

    let resp = from_origin(&app, Method::GET, "/no-such-path", APP).await;
    assert_allows_origin(&resp, APP);
    assert_problem(resp, 404, "not_found").await;

    let resp = app
        .client
        .post(app.url("/auth/login"))
        .header("origin", APP)
        .header("content-type", "application/json")
        .body(vec![b' '; 64 * 1024])
        .send()
        .await
        .unwrap();
    assert_allows_origin(&resp, APP);
    assert_problem(resp, 413, "payload_too_large").await;
}

#[tokio::test]
async fn the_refreshed_token_reaches_a_page_on_an_allowed_origin() {
    let app = app_allowing(&[APP]).await;
    let (_, tokens) = app.signed_up("bob").await;

    let resp = app
        .client
        .patch(app.url("/me"))
        .header("origin", APP)
        .bearer_auth(&tokens.access_token)
        .json(&json!({"plan": "premium"}))
        .send()
        .await
        .unwrap();

    assert_eq!(resp.status(), 200);
    assert_allows_origin(&resp, APP);
    assert!(resp.headers().contains_key("x-refreshed-token"));
    let exposed = header_str(resp.headers(), "access-control-expose-headers").unwrap();
    assert!(exposed.contains("x-refreshed-token"), "{exposed}");
}

#[tokio::test]
async fn a_disallowed_origin_gets_no_cors_headers_but_the_answer_varies_by_origin() {
    let app = app_allowing(&[APP]).await;

    for origin in [
        EVIL,
        "https://app.example.com.evil",
        "null",
        "http://app.example.com",
    ] {
        let resp = from_origin(&app, Method::GET, "/healthz", origin).await;
        assert_eq!(resp.status(), 200, "{origin}: served as without CORS");
        assert_no_cors(&resp);
        assert!(
            header_str(resp.headers(), "vary").is_some_and(|v| v.contains("Origin")),
            "{origin}: a cache must not hand this answer to an allowed origin"
        );
    }
    // No Origin at all (curl, a server): the same.
    let resp = app.healthz().await;
    assert_no_cors(&resp);
}

#[tokio::test]
async fn cors_is_off_by_default() {
    let app = spawn_app().await;

    let resp = from_origin(&app, Method::GET, "/.well-known/jwks.json", APP).await;
    assert_eq!(resp.status(), 200);
    assert_no_cors(&resp);
    assert!(header_str(resp.headers(), "vary").is_none_or(|v| !v.contains("Origin")));

    let resp = preflight(&app, "/auth/login", APP, "POST").await;
    assert_eq!(resp.status(), 204);
    assert_no_cors(&resp);
}

/// Each endpoint's preflight names exactly the methods its routes take. (`/verify` takes
/// every method, `OPTIONS` included: it is asked by proxies, not by pages.)
#[tokio::test]
async fn preflights_answer_204_with_the_methods_each_endpoint_takes() {
    let app = app_allowing(&[APP]).await;
    let cases: &[(&str, &str, &[&str])] = &[
        ("/auth/register", "POST", &["POST"]),
        ("/auth/login", "POST", &["POST"]),
        ("/auth/refresh-token", "POST", &["POST"]),
        ("/auth/logout", "POST", &["POST"]),
        ("/auth/logout-all", "POST", &["POST"]),
        ("/me", "GET", &["GET", "PATCH"]),
        ("/me", "PATCH", &["GET", "PATCH"]),
        ("/me/password", "POST", &["POST"]),
        ("/.well-known/jwks.json", "GET", &["GET"]),
        ("/.well-known/openid-configuration", "GET", &["GET"]),
        ("/oauth/introspect", "POST", &["POST"]),
        ("/oauth/revoke", "POST", &["POST"]),
    ];
    for (path, method, takes) in cases {
        let resp = preflight(&app, path, APP, method).await;
        assert_eq!(resp.status(), 204, "{method} {path}");
        assert_allows_origin(&resp, APP);
        let headers = resp.headers();
        let allowed = header_str(headers, "access-control-allow-methods")
            .unwrap_or_else(|| panic!("{method} {path}: no allowed methods: {headers:?}"));
        let mut want: Vec<String> = takes.iter().map(|m| (*m).to_string()).collect();
        want.sort();
        assert_eq!(methods(&allowed), want, "{method} {path}");
        let allowed_headers = header_str(headers, "access-control-allow-headers").unwrap();
        for header in ["authorization", "content-type", "x-requested-with"] {
            assert!(
                allowed_headers.contains(header),
                "{path}: {allowed_headers}"
            );
        }
        assert!(header_str(headers, "access-control-max-age").is_some());
    }
}

#[tokio::test]
async fn a_preflight_for_a_method_the_endpoint_does_not_take_does_not_list_it() {
    let app = app_allowing(&[APP]).await;

    let resp = preflight(&app, "/me", APP, "DELETE").await;

    assert_eq!(resp.status(), 204);
    let allowed = header_str(resp.headers(), "access-control-allow-methods").unwrap();
    assert!(
        !methods(&allowed).contains(&"DELETE".to_string()),
        "{allowed}"
    );
}

#[tokio::test]
async fn a_preflight_from_a_disallowed_origin_allows_nothing() {
    let app = app_allowing(&[APP]).await;

    let resp = preflight(&app, "/auth/login", EVIL, "POST").await;

    assert_eq!(resp.status(), 204);
    assert_no_cors(&resp);
}

#[tokio::test]
async fn admin_paths_and_metrics_stay_same_origin_unless_configured() {
    let (app, _admin) = spawn_app_with_admin(|s| {
        s.server.cors_origins = vec![APP.to_string()];
    })
    .await;
    for (path, method) in [("/admin/users", "GET"), ("/metrics", "GET")] {
        let resp = preflight(&app, path, APP, method).await;
        assert_no_cors(&resp);
        let resp = from_origin(&app, Method::GET, path, APP).await;
        assert_no_cors(&resp);
    }

    let (app, admin) = spawn_app_with_admin(|s| {
        s.server.cors_origins = vec![APP.to_string()];
        s.server.cors_admin_origins = vec![CONSOLE.to_string()];
    })
    .await;
    let resp = preflight(
        &app,
        "/admin/users/00000000-0000-0000-0000-000000000000",
        CONSOLE,
        "PATCH",
    )
    .await;
    assert_eq!(resp.status(), 204);
    assert_allows_origin(&resp, CONSOLE);
    let resp = app
        .client
        .get(app.url("/admin/users"))
        .header("origin", CONSOLE)
        .bearer_auth(&admin.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_allows_origin(&resp, CONSOLE);
    // The console logs in through the API like any page.
    let resp = preflight(&app, "/auth/login", CONSOLE, "POST").await;
    assert_allows_origin(&resp, CONSOLE);
    // The API's origin still may not reach the admin paths.
    let resp = from_origin(&app, Method::GET, "/metrics", APP).await;
    assert_no_cors(&resp);
}

#[tokio::test]
async fn star_lets_any_page_read_answers_without_credentials() {
    let app = app_allowing(&["*"]).await;

    let resp = from_origin(&app, Method::GET, "/.well-known/jwks.json", EVIL).await;

    assert_eq!(
        header_str(resp.headers(), "access-control-allow-origin").as_deref(),
        Some("*")
    );
    assert!(!resp
        .headers()
        .contains_key("access-control-allow-credentials"));
    let resp = from_origin(&app, Method::GET, "/metrics", EVIL).await;
    assert_no_cors(&resp);
}

#[tokio::test]
async fn options_without_cors_lists_the_methods_and_405_says_which_are_allowed() {
    let app = spawn_app().await;

    let resp = app.request(Method::OPTIONS, "/me", None).await;
    assert_eq!(resp.status(), 204);
    assert_eq!(
        methods(&header_str(resp.headers(), "allow").unwrap()),
        vec!["GET", "PATCH"]
    );

    let resp = app.request(Method::DELETE, "/me", None).await;
    let (headers, _) = assert_problem(resp, 405, "method_not_allowed").await;
    assert_eq!(
        methods(&header_str(&headers, "allow").unwrap()),
        vec!["GET", "PATCH"]
    );
}

/// `/%61dmin/users` is routed as `/admin/users`: CORS must judge the path the router
/// matched, or an origin allowed only on the API reads admin answers.
#[tokio::test]
async fn percent_encoded_admin_paths_are_judged_as_the_admin_paths_they_route_to() {
    let (app, admin) = spawn_app_with_admin(|s| {
        s.server.cors_origins = vec![APP.to_string()];
    })
    .await;
    for path in ["/%61dmin/users", "/%6Detrics", "/admin/%75sers", "/%61dmin"] {
        let resp = app
            .client
            .get(app.url(path))
            .header("origin", APP)
            .bearer_auth(&admin.access_token)
            .send()
            .await
            .unwrap();
        assert_no_cors(&resp);
        let resp = preflight(&app, path, APP, "GET").await;
        assert_no_cors(&resp);
    }
    // The spelling really reaches the admin handler: it is the same route.
    let resp = app
        .client
        .get(app.url("/%61dmin/users"))
        .bearer_auth(&admin.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

/// Forward-auth is asked by proxies, never by pages: no CORS answer at all.
#[tokio::test]
async fn verify_is_left_out_of_cors() {
    let app = app_allowing(&[APP]).await;
    let (_, alice) = app.signed_up("alice").await;

    let resp = app
        .client
        .get(app.url("/verify"))
        .header("origin", APP)
        .bearer_auth(&alice.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_no_cors(&resp);
    let resp = from_origin(&app, Method::GET, "/verify", APP).await;
    assert_eq!(resp.status(), 401);
    assert_no_cors(&resp);
    let resp = preflight(&app, "/verify", APP, "GET").await;
    assert_no_cors(&resp);
}
