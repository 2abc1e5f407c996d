//! HTTP: routes, extractors, bodies and the mapping of errors to answers. Only this module
//! imports actix-web; it knows nothing of sled. Each area owns its routes
//! ([`accounts`], [`ops`]); every resource answers unknown methods with 405 and the app
//! answers unknown paths with 404, both as problems.

pub mod accounts;
pub mod admin;
pub mod backup;
pub mod body;
mod caching;
mod change_bodies;
pub mod cors;
pub mod demo;
pub mod email;
pub mod error;
pub mod events;
pub mod extract;
pub mod forward_auth;
pub mod oauth;
pub mod openapi;
pub mod ops;
mod path_ids;
pub mod refresh_cookie;
pub mod token_endpoint;

use std::sync::Arc;
use std::time::Instant;

use actix_web::body::EitherBody;
use actix_web::dev::{Service as _, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{ConnectionType, Method, StatusCode};
use actix_web::{web, App, HttpResponse};
use secrecy::ExposeSecret as _;

use crate::auth::Auth;
use crate::secret::SecretString;
use crate::telemetry::Metrics;
use error::ApiError;

/// What every handler can reach.
pub struct AppState {
    pub auth: Arc<Auth>,
    pub metrics: Arc<Metrics>,
    /// Turns true when the server begins to stop: long-lived answers (the change feed)
    /// end then, instead of holding the graceful stop to its timeout.
    pub stopping: tokio::sync::watch::Receiver<bool>,
}

/// Registers every route on an actix `App`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // Routes are tried in order, and a pattern with a `{segment}` costs a regex match:
    // the hot, static paths go first (a profile of /verify showed the admin patterns'
    // regexes at the top of the server's own CPU time).
    forward_auth::routes(cfg);
    oauth::routes(cfg);
    events::routes(cfg);
    ops::routes(cfg);
    accounts::routes(cfg);
    email::routes(cfg);
    token_endpoint::routes(cfg);
    admin::routes(cfg);
    backup::routes(cfg);
    demo::routes(cfg);
    openapi::routes(cfg);
}

/// The header that carries a token minted because the caller's claims changed.
pub const REFRESHED_TOKEN_HEADER: &str = "x-refreshed-token";

/// Adds `X-Refreshed-Token` when a new token was minted for the caller.
pub(crate) fn with_refreshed_token(
    mut response: actix_web::HttpResponseBuilder,
    token: Option<&SecretString>,
) -> actix_web::HttpResponseBuilder {
    if let Some(token) = token {
        response.insert_header((REFRESHED_TOKEN_HEADER, token.expose_secret().to_string()));
    }
    response
}

/// A resource. Methods it has no route for are answered by actix's default, a bare 405
/// with `Allow` naming the methods it takes; [`app`] turns that into a 405 problem (and
/// into the answer to `OPTIONS` and to CORS preflights), so the route table is the one
/// list of what each path takes.
pub(crate) fn resource(path: &str) -> actix_web::Resource {
    web::resource(path)
}

/// The router's own answer for a method a resource has no route for: 405, `Allow`, no body.
fn is_bare_method_not_allowed<B: actix_web::body::MessageBody>(
    response: &ServiceResponse<B>,
) -> bool {
    response.status() == StatusCode::METHOD_NOT_ALLOWED
        && response.headers().contains_key(header::ALLOW)
        && matches!(
            response.response().body().size(),
            actix_web::body::BodySize::Sized(0) | actix_web::body::BodySize::None
        )
}

/// Turns the router's bare 405 into what claimd answers: `OPTIONS` gets 204 with `Allow`
/// (and, for a preflight, the CORS preflight headers), any other method a 405 problem that
/// keeps `Allow` (RFC 9110 §15.5.6).
fn answer_unrouted_method(
    req: &actix_web::HttpRequest,
    allow: Option<HeaderValue>,
    cors: &cors::CorsAnswer,
) -> HttpResponse {
    let mut response = if req.method() == Method::OPTIONS {
        let mut response = HttpResponse::NoContent().finish();
        if cors::is_preflight(req) {
            cors.apply_preflight(allow.as_ref(), response.headers_mut());
        }
        response
    } else if error::OAUTH_ENDPOINT_PATHS.contains(&req.match_info().as_str()) {
        actix_web::ResponseError::error_response(
            &ApiError::method_not_allowed().at_token_endpoint(),
        )
    } else {
        actix_web::ResponseError::error_response(&ApiError::method_not_allowed())
    };
    if let Some(allow) = allow {
        response.headers_mut().insert(header::ALLOW, allow);
    }
    response
}

/// Builds the application: state, routes, 404s and 405s, CORS and the request-metrics
/// middleware.
#[allow(
    clippy::disallowed_methods,
    reason = "request latency for /metrics is real elapsed time"
)]
pub fn app(
    state: web::Data<AppState>,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = ServiceResponse<EitherBody<impl actix_web::body::MessageBody>>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let metrics = Arc::clone(&state.metrics);
    let max_body_bytes = state.auth.settings().server.max_body_bytes;
    let body_timeout = state.auth.settings().server.body_timeout;
    let cors_policy = cors::CorsPolicy::from_settings(&state.auth.settings().server);
    App::new()
        .app_data(state)
        .configure(configure)
        .default_service(web::to(|| async {
            Err::<HttpResponse, ApiError>(ApiError::not_found())
        }))
        .wrap_fn(move |mut req, srv| {
            let started = Instant::now();
            let route = req
                .match_pattern()
                .unwrap_or_else(|| "unmatched".to_string());
            let method = crate::telemetry::method_label(req.method().as_str());
            let metrics = Arc::clone(&metrics);
            let cors = cors_policy.judge(req.request());
            let call = match body::guard_body(&mut req, max_body_bytes, body_timeout) {
                Ok(()) => Ok(srv.call(req)),
                Err(refused)
                    if error::OAUTH_ENDPOINT_PATHS.contains(&req.match_info().as_str()) =>
                {
                    Err((req, refused.at_token_endpoint()))
                }
                Err(refused) => Err((req, refused)),
            };
            async move {
                let mut response = match call {
                    Ok(call) => call.await?.map_into_left_body(),
                    Err((req, refused)) => req
                        .into_response(actix_web::ResponseError::error_response(&refused))
                        .map_into_right_body(),
                };
                if is_bare_method_not_allowed(&response) {
                    let allow = response.headers().get(header::ALLOW).cloned();
                    let answer = answer_unrouted_method(response.request(), allow, &cors);
                    response = response.into_response(answer).map_into_right_body();
                }
                cors.apply(response.headers_mut());
                caching::default_to_no_store(response.headers_mut());
                let status = response.status();
                if status == StatusCode::PAYLOAD_TOO_LARGE || status == StatusCode::REQUEST_TIMEOUT
                {
                    // Part of the body may still be on its way: it must not be read as the
                    // next request.
                    response
                        .response_mut()
                        .head_mut()
                        .set_connection_type(ConnectionType::Close);
                }
                metrics.request(
                    &route,
                    method,
                    status.as_u16(),
                    started.elapsed().as_secs_f64(),
                );
                Ok(response)
            }
        })
}
