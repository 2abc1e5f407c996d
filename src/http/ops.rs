//! Operations endpoints: what answers at `/`, liveness, readiness, the JWKS, discovery and
//! Prometheus metrics.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde_json::json;

use super::error::ApiError;
use super::{resource, AppState};

/// How long verifiers may cache the JWKS at most; never longer than `keys.publish_ahead`,
/// so a verifier that honours it has refetched before a newly published key signs.
const JWKS_MAX_AGE_SECS: u64 = 60;

fn jwks_max_age(state: &AppState) -> u64 {
    JWKS_MAX_AGE_SECS.min(state.auth.settings().keys.publish_ahead.as_secs())
}

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/").route(web::get().to(index)))
        .service(resource("/healthz").route(web::get().to(healthz)))
        .service(resource("/readyz").route(web::get().to(readyz)))
        .service(resource("/.well-known/jwks.json").route(web::get().to(jwks)))
        .service(resource("/.well-known/openid-configuration").route(web::get().to(metadata)))
        .service(resource("/metrics").route(web::get().to(metrics)));
}

/// What a person or a client that opens claimd's base URL meets: what this is and where
/// to go next, rather than a 404.
async fn index(state: web::Data<AppState>) -> HttpResponse {
    let settings = state.auth.settings();
    let base = settings.tokens.issuer.trim_end_matches('/');
    let mut links = json!({
        "openid_configuration": format!("{base}/.well-known/openid-configuration"),
        "jwks": format!("{base}/.well-known/jwks.json"),
        "openapi": format!("{base}/openapi.json"),
        "health": format!("{base}/healthz"),
        "ready": format!("{base}/readyz"),
    });
    if settings.demo.enabled {
        links["demo"] = json!(format!("{base}/demo"));
    }
    HttpResponse::Ok().json(json!({
        "name": "claimd",
        "version": env!("CARGO_PKG_VERSION"),
        "description": "a self-contained JWT auth server; the HTTP API is described at openapi",
        "issuer": settings.tokens.issuer,
        "links": links,
    }))
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Ready when a key can sign and the store makes writes durable; while writes fail the
/// answer is 503 `storage_unavailable`, so a load balancer sends writes elsewhere (or
/// nowhere) until the store has recovered.
async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.auth.readiness()?;
    Ok(HttpResponse::Ok().json(json!({"status": "ready"})))
}

async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            header::CACHE_CONTROL,
            format!("public, max-age={}", jwks_max_age(&state)),
        ))
        .json(state.auth.keys.jwks())
}

/// RFC 8414-style metadata, so a standard JWT library pointed at the issuer finds the
/// JWKS by itself. Every URL is built from `tokens.issuer`, the public base URL. Only what
/// is served is advertised: no response types or ID-token algorithms until claimd has an
/// authorization endpoint and ID tokens.
async fn metadata(state: web::Data<AppState>) -> HttpResponse {
    let settings = state.auth.settings();
    let issuer = settings.tokens.issuer.as_str();
    let base = issuer.trim_end_matches('/');
    let alg = settings.tokens.algorithm.as_str();
    HttpResponse::Ok()
        .insert_header((
            header::CACHE_CONTROL,
            format!("public, max-age={}", jwks_max_age(&state)),
        ))
        .json(json!({
            "issuer": issuer,
            "jwks_uri": format!("{base}/.well-known/jwks.json"),
            "token_endpoint": format!("{base}/auth/refresh-token"),
            "revocation_endpoint": format!("{base}/oauth/revoke"),
            "introspection_endpoint": format!("{base}/oauth/introspect"),
            // What the access tokens' `aud` holds: a verifier (PyJWT, jose) must be told it,
            // and otherwise would have to read claimd's configuration.
            "audience": settings.tokens.audience,
            "grant_types_supported": ["refresh_token", "client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "none"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic"],
            "access_token_signing_alg_values_supported": [alg],
        }))
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let text = state.metrics.render(&state.auth.store_gauges());
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text)
}
