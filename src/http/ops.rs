//! Operations endpoints: liveness, readiness, the JWKS and Prometheus metrics.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde_json::json;

use super::error::ApiError;
use super::{resource, AppState};
use crate::auth::AuthError;

/// How long verifiers may cache the JWKS. Short enough that a rotation published
/// `keys.publish_ahead` (5 min by default) ahead is seen in time.
const JWKS_MAX_AGE_SECS: u64 = 60;

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/healthz").route(web::get().to(healthz)))
        .service(resource("/readyz").route(web::get().to(readyz)))
        .service(resource("/.well-known/jwks.json").route(web::get().to(jwks)))
        .service(resource("/metrics").route(web::get().to(metrics)));
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if state.auth.is_ready() {
        Ok(HttpResponse::Ok().json(json!({"status": "ready"})))
    } else {
        Err(AuthError::Unavailable("no signing key is loaded").into())
    }
}

async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            header::CACHE_CONTROL,
            format!("public, max-age={JWKS_MAX_AGE_SECS}"),
        ))
        .json(state.auth.key_ring().jwks())
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let store = state.auth.store();
    let text = state
        .metrics
        .render(store.deny_entries(), store.size_on_disk());
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text)
}
