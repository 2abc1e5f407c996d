//! Operations endpoints: health, readiness, the JWKS (checked by verifying real tokens with
//! it for every algorithm) and the Prometheus metrics.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use reqwest::StatusCode;
use serde_json::{json, Value};

use claimd::config::SigningAlgorithm;

use crate::helpers::{
    assert_token_error, b64url_decode, forge_mac, header_str, jwt_header, metric_samples,
    metric_sum, spawn_app, spawn_app_with, token_response, TestApp, PASSWORD,
};

/// Verifies `token` with the key the JWKS publishes for its `kid`, as another service would.
async fn verify_with_jwks(app: &TestApp, token: &str, alg: Algorithm) -> Value {
    let set: JwkSet =
        serde_json::from_value(app.jwks_ok().await).expect("JWKS parses as a key set");
    let header = decode_header(token).expect("token header");
    assert_eq!(header.alg, alg);
    let kid = header.kid.expect("token has a kid");
    let jwk = set.find(&kid).expect("JWKS holds the token's kid");
    let key = DecodingKey::from_jwk(jwk).expect("JWK is a usable key");
    let mut validation = Validation::new(alg);
    validation.set_issuer(&["http://127.0.0.1:8080"]);
    validation.set_audience(&["claimd"]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.leeway = 0;
    decode::<Value>(token, &key, &validation)
        .expect("token verifies with the published key")
        .claims
}

fn assert_no_private_members(jwks: &Value) {
    for key in jwks["keys"].as_array().expect("keys array") {
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(key.get(private).is_none(), "JWKS leaks {private:?}: {key}");
        }
    }
}

#[tokio::test]
async fn healthz_is_200() {
    let app = spawn_app().await;

    assert_eq!(app.healthz().await.status(), StatusCode::OK);
}

#[tokio::test]
async fn readyz_is_200_once_started() {
    let app = spawn_app().await;

    assert_eq!(app.readyz().await.status(), StatusCode::OK);
}

#[tokio::test]
async fn jwks_publishes_the_ed25519_key_with_cache_control() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;

    let resp = app.jwks().await;

    assert_eq!(resp.status(), StatusCode::OK);
    let cache = header_str(resp.headers(), "cache-control").unwrap_or_default();
    assert!(cache.contains("max-age"), "Cache-Control: {cache:?}");
    let content_type = header_str(resp.headers(), "content-type").unwrap_or_default();
    assert!(content_type.contains("json"), "{content_type}");
    let jwks: Value = resp.json().await.unwrap();
    let keys = jwks["keys"].as_array().expect("keys array");
    assert_eq!(keys.len(), 1, "{jwks}");
    let key = &keys[0];
    assert_eq!(key["kty"], json!("OKP"));
    assert_eq!(key["crv"], json!("Ed25519"));
    assert_eq!(key["alg"], json!("EdDSA"));
    assert_eq!(key["use"], json!("sig"));
    assert_eq!(key["kid"], jwt_header(&login.access_token)["kid"]);
    assert_eq!(b64url_decode(key["x"].as_str().expect("x")).len(), 32);
    assert_no_private_members(&jwks);
}

#[tokio::test]
async fn eddsa_token_verifies_with_the_jwks() {
    let app = spawn_app().await;
    let (user, login) = app.signed_up("alice").await;

    let claims = verify_with_jwks(&app, &login.access_token, Algorithm::EdDSA).await;

    assert_eq!(claims["sub"], user["id"]);
}

#[tokio::test]
async fn es256_tokens_verify_with_the_jwks_and_work_end_to_end() {
    let app = spawn_app_with(|s| s.tokens.algorithm = SigningAlgorithm::ES256).await;
    let (user, login) = app.signed_up("alice").await;

    let jwks = app.jwks_ok().await;
    let key = &jwks["keys"][0];
    assert_eq!(key["kty"], json!("EC"));
    assert_eq!(key["crv"], json!("P-256"));
    assert_eq!(key["alg"], json!("ES256"));
    assert_no_private_members(&jwks);
    assert_eq!(jwt_header(&login.access_token)["alg"], json!("ES256"));
    let claims = verify_with_jwks(&app, &login.access_token, Algorithm::ES256).await;
    assert_eq!(claims["sub"], user["id"]);
    assert_eq!(app.me(&login.access_token).await.status(), StatusCode::OK);
    let rotated = token_response(app.refresh(login.refresh()).await).await;
    verify_with_jwks(&app, &rotated.access_token, Algorithm::ES256).await;
}

#[tokio::test]
async fn rs256_tokens_verify_with_the_jwks_and_work_end_to_end() {
    let app = spawn_app_with(|s| s.tokens.algorithm = SigningAlgorithm::RS256).await;
    let (user, login) = app.signed_up("alice").await;

    let jwks = app.jwks_ok().await;
    let key = &jwks["keys"][0];
    assert_eq!(key["kty"], json!("RSA"));
    assert_eq!(key["alg"], json!("RS256"));
    assert!(key["n"].is_string() && key["e"].is_string(), "{key}");
    assert!(
        b64url_decode(key["n"].as_str().unwrap()).len() >= 256,
        "RSA key ≥ 2048 bits"
    );
    assert_no_private_members(&jwks);
    assert_eq!(jwt_header(&login.access_token)["alg"], json!("RS256"));
    let claims = verify_with_jwks(&app, &login.access_token, Algorithm::RS256).await;
    assert_eq!(claims["sub"], user["id"]);
    assert_eq!(app.me(&login.access_token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn hs256_publishes_no_key_and_works_end_to_end() {
    let app = spawn_app_with(|s| s.tokens.algorithm = SigningAlgorithm::HS256).await;
    let (_, login) = app.signed_up("alice").await;

    let jwks = app.jwks_ok().await;
    assert_eq!(jwks, json!({"keys": []}));
    assert_eq!(jwt_header(&login.access_token)["alg"], json!("HS256"));
    assert_eq!(jwt_header(&login.access_token)["typ"], json!("at+jwt"));
    assert_eq!(app.me(&login.access_token).await.status(), StatusCode::OK);
    let rotated = token_response(app.refresh(login.refresh()).await).await;
    assert_eq!(app.me(&rotated.access_token).await.status(), StatusCode::OK);
    assert_eq!(
        app.logout(&rotated.access_token).await.status(),
        StatusCode::NO_CONTENT
    );
    let resp = app.me(&rotated.access_token).await;
    assert_token_error(resp, "token_revoked").await;
}

#[tokio::test]
async fn metrics_count_requests_by_route_method_and_status() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;
    assert_eq!(app.me(&login.access_token).await.status(), StatusCode::OK);
    assert_eq!(
        app.login("alice", "wrong password").await.status(),
        StatusCode::UNAUTHORIZED
    );

    let resp = app.metrics().await;

    assert_eq!(resp.status(), StatusCode::OK);
    let content_type = header_str(resp.headers(), "content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("text/plain") || content_type.contains("openmetrics"),
        "{content_type}"
    );
    let text = resp.text().await.unwrap();
    assert!(text.contains("claimd_http_requests_total{"), "{text}");
    for (labels, _) in metric_samples(&text, "claimd_http_requests_total") {
        for name in ["route", "method", "status"] {
            assert!(
                labels.iter().any(|(key, _)| key == name),
                "request sample without a {name} label: {labels:?}"
            );
        }
    }
    let ok_logins = metric_sum(
        &text,
        "claimd_http_requests_total",
        &[
            ("route", "/auth/login"),
            ("method", "POST"),
            ("status", "200"),
        ],
    );
    assert!(
        ok_logins >= 1.0,
        "successful logins counted: {ok_logins}\n{text}"
    );
    let failed_logins = metric_sum(
        &text,
        "claimd_http_requests_total",
        &[
            ("route", "/auth/login"),
            ("method", "POST"),
            ("status", "401"),
        ],
    );
    assert!(
        failed_logins >= 1.0,
        "failed logins counted: {failed_logins}\n{text}"
    );
    let me = metric_sum(
        &text,
        "claimd_http_requests_total",
        &[("route", "/me"), ("method", "GET"), ("status", "200")],
    );
    assert!(me >= 1.0, "GET /me counted: {me}\n{text}");
}

#[tokio::test]
async fn metrics_expose_the_documented_families() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;
    token_response(app.refresh(login.refresh()).await).await;
    assert_eq!(
        app.logout(&login.access_token).await.status(),
        StatusCode::NO_CONTENT
    );

    let text = app.metrics_text().await;

    for name in [
        "claimd_http_requests_total",
        "claimd_tokens_issued_total",
        "claimd_refreshes_total",
        "claimd_reuse_detections_total",
        "claimd_deny_entries",
        "claimd_evictions_total",
    ] {
        assert!(
            !metric_samples(&text, name).is_empty(),
            "metrics lack samples of {name}:\n{text}"
        );
    }
}

/// Every answer is `no-store` unless its route chose a policy of its own: a liveness probe,
/// an unmatched path's 404, a user's own claims, an error; the JWKS keeps its `max-age`.
#[tokio::test]
async fn answers_are_not_stored_unless_their_route_says_otherwise() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;
    crate::helpers::assert_no_store(app.healthz().await.headers(), "GET /healthz");
    let unmatched = app
        .client
        .get(format!("{}/no/such/path", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(unmatched.status(), StatusCode::NOT_FOUND);
    crate::helpers::assert_no_store(unmatched.headers(), "a 404");
    crate::helpers::assert_no_store(app.me(&login.access_token).await.headers(), "GET /me");
    crate::helpers::assert_no_store(app.me("not-a-token").await.headers(), "a 401");
    let jwks = app.jwks().await;
    let cache = header_str(jwks.headers(), "cache-control").unwrap_or_default();
    assert!(
        cache.contains("max-age") && !cache.contains("no-store"),
        "the JWKS keeps its own policy: {cache:?}"
    );
}

/// The store's size is a real sample on sled and no sample at all on PostgreSQL, whose
/// database's size is not this node's to know (it once reported a zero that looked real).
#[tokio::test]
async fn the_store_size_is_reported_only_where_it_is_known() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let text = app.metrics_text().await;
    let samples = metric_samples(&text, "claimd_store_bytes");
    if crate::backend::on_postgres() {
        assert!(samples.is_empty(), "a size sample on PostgreSQL:\n{text}");
    } else {
        assert_eq!(samples.len(), 1, "one size sample on sled:\n{text}");
        let bytes = metric_sum(&text, "claimd_store_bytes", &[]);
        assert!(bytes > 0.0, "the sled store's size: {bytes}");
    }
}

#[tokio::test]
async fn metrics_count_tokens_issued() {
    let app = spawn_app().await;
    let before = metric_sum(&app.metrics_text().await, "claimd_tokens_issued_total", &[]);
    app.signed_up("alice").await;
    app.login_ok("alice", PASSWORD).await;

    let after = metric_sum(&app.metrics_text().await, "claimd_tokens_issued_total", &[]);

    assert!(after >= before + 2.0, "tokens issued {before} -> {after}");
}

#[tokio::test]
async fn metrics_count_each_refresh_outcome_apart() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;
    let (_, second) = app.signed_up("bob").await;
    // rotated, then race (replay within grace)
    let rotated = token_response(app.refresh(login.refresh()).await).await;
    token_response(app.refresh(login.refresh()).await).await;
    // forged
    let forged = forge_mac(second.refresh());
    assert_eq!(app.refresh(&forged).await.status(), StatusCode::BAD_REQUEST);
    // reuse: two generations behind
    token_response(app.refresh(rotated.refresh()).await).await;
    assert_eq!(
        app.refresh(login.refresh()).await.status(),
        StatusCode::BAD_REQUEST
    );

    let text = app.metrics_text().await;

    for outcome in ["rotated", "race", "forged", "reuse"] {
        let n = metric_sum(&text, "claimd_refreshes_total", &[("outcome", outcome)]);
        assert!(n >= 1.0, "refresh outcome {outcome} counted: {n}\n{text}");
    }
    assert!(metric_sum(&text, "claimd_refreshes_total", &[("outcome", "rotated")]) >= 2.0);
    let reuse = metric_sum(&text, "claimd_reuse_detections_total", &[]);
    assert!(reuse >= 1.0, "reuse detections: {reuse}");
}

#[tokio::test]
async fn metrics_show_deny_entries_after_logout() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;
    let before = metric_sum(&app.metrics_text().await, "claimd_deny_entries", &[]);

    assert_eq!(
        app.logout(&login.access_token).await.status(),
        StatusCode::NO_CONTENT
    );

    let after = metric_sum(&app.metrics_text().await, "claimd_deny_entries", &[]);
    assert!(after > before, "deny entries {before} -> {after}");
}

/// Issue 9: every made-up HTTP method used to become a new `/metrics` series, kept
/// forever (200 requests with 16 kB methods: +3.1 MiB). Methods outside the standard set
/// now share the label `OTHER`; routes are patterns or `unmatched`, never the raw path.
#[tokio::test]
async fn made_up_methods_and_paths_add_no_metrics_series() {
    let app = spawn_app().await;
    let _ = app.healthz().await;
    let before = app.metrics_text().await;
    let series_before = metric_samples(&before, "claimd_http_requests_total").len();

    for n in 0..50 {
        let method =
            reqwest::Method::from_bytes(format!("MADEUP{n}{}", "X".repeat(2000)).as_bytes())
                .expect("a token is a valid method");
        let path = format!("/made/up/path/{n}");
        for target in [path.as_str(), "/healthz"] {
            let resp = app
                .client
                .request(method.clone(), app.url(target))
                .send()
                .await
                .expect("request sent");
            assert!(resp.status().is_client_error(), "{}", resp.status());
        }
    }

    let after = app.metrics_text().await;
    assert!(
        !after.contains("MADEUP"),
        "no series names a made-up method"
    );
    assert!(!after.contains("/made/up"), "no series names a raw path");
    let samples = metric_samples(&after, "claimd_http_requests_total");
    let methods: std::collections::BTreeSet<String> = samples
        .iter()
        .flat_map(|(labels, _)| labels.iter())
        .filter(|(name, _)| name == "method")
        .map(|(_, value)| value.clone())
        .collect();
    assert!(methods.contains("OTHER"), "{methods:?}");
    assert!(
        samples.len() <= series_before + 4,
        "100 odd requests added at most a few series: {} -> {}",
        series_before,
        samples.len()
    );
    assert!(
        after.len() < before.len() + 4096,
        "{} -> {} bytes",
        before.len(),
        after.len()
    );
}

/// A newcomer who opens the base URL meets what this is and where to go, not a 404.
#[tokio::test]
async fn the_base_url_says_what_this_is_and_links_onward() {
    let app = crate::helpers::spawn_app().await;

    let resp = app.request(reqwest::Method::GET, "/", None).await;

    assert_eq!(resp.status(), reqwest::StatusCode::OK);
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["name"], "claimd");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    let discovery = body["links"]["openid_configuration"]
        .as_str()
        .expect("a discovery link");
    assert!(
        discovery.ends_with("/.well-known/openid-configuration"),
        "{body}"
    );
    assert!(
        body["links"].get("demo").is_none(),
        "no demo link with the demo off"
    );
    let openapi = app
        .request(reqwest::Method::GET, "/openapi.json", None)
        .await;
    assert_eq!(openapi.status(), reqwest::StatusCode::OK);
}
