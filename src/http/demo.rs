//! The demo page (`demo.enabled`): `GET /demo`, its script, stylesheet and the JS client
//! (`clients/js/src/claimd.js`, the very file, embedded), all compiled into the binary; and
//! `POST /demo/admin-session`, which signs the page's admin panel in as
//! [`crate::auth::DEMO_ADMIN`]. With the demo off every one of them answers 404.
//!
//! Why a password-less admin session is tolerable here: start-up refuses `demo.enabled`
//! unless `server.bind` is loopback (`Settings::validate`), so only this machine reaches it;
//! the route also wants a loopback `Host` (a DNS-rebinding page names its own host), the
//! `X-Requested-With` header (a cross-site form cannot send it, and a cross-site `fetch`
//! with it needs a preflight that claimd does not grant), and an `Origin`, when there is
//! one, of the very host asked. The page carries a strict Content-Security-Policy: no inline
//! script or style, connections to this origin only.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::ExposeSecret as _;
use serde_json::json;

use super::error::ApiError;
use super::{resource, AppState};
use crate::auth::AuthError;

const PAGE: &str = include_str!("demo/page.html");
const SCRIPT: &str = include_str!("demo/demo.js");
const STYLE: &str = include_str!("demo/demo.css");
const CLIENT: &str = include_str!("../../clients/js/src/claimd.js");

/// Everything the page loads comes from this origin; nothing runs inline.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
                   form-action 'none'; frame-ancestors 'none'";

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/demo").route(web::get().to(page)))
        .service(resource("/demo/demo.js").route(web::get().to(script)))
        .service(resource("/demo/demo.css").route(web::get().to(style)))
        .service(resource("/demo/claimd.js").route(web::get().to(client)))
        .service(resource("/demo/admin-session").route(web::post().to(admin_session)));
}

fn enabled(state: &AppState) -> Result<(), ApiError> {
    if state.auth.settings().demo.enabled {
        Ok(())
    } else {
        Err(ApiError::not_found())
    }
}

fn asset(
    state: &AppState,
    content_type: &str,
    body: &'static str,
) -> Result<HttpResponse, ApiError> {
    enabled(state)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body))
}

async fn page(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    asset(&state, "text/html; charset=utf-8", PAGE)
}

async fn script(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    asset(&state, "text/javascript; charset=utf-8", SCRIPT)
}

async fn style(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    asset(&state, "text/css; charset=utf-8", STYLE)
}

async fn client(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    asset(&state, "text/javascript; charset=utf-8", CLIENT)
}

/// The host part of a `Host` header value (`127.0.0.1:8080` → `127.0.0.1`).
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

/// The checks that keep the password-less admin session to pages of this machine.
fn same_machine_page(req: &HttpRequest) -> Result<(), AuthError> {
    let refuse = |why: &str| Err(AuthError::Forbidden(why.to_string()));
    let header = |name: header::HeaderName| {
        req.headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
    };
    let host = header(header::HOST);
    let loopback = matches!(host_name(host), "localhost" | "::1")
        || host_name(host)
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        return refuse("the demo admin session is only for pages on this machine");
    }
    if header(header::HeaderName::from_static("x-requested-with")).is_empty() {
        return refuse("X-Requested-With is required");
    }
    let origin = header(header::ORIGIN);
    if !origin.is_empty()
        && origin != format!("http://{host}")
        && origin != format!("https://{host}")
    {
        return refuse("the demo admin session is only for the demo page itself");
    }
    Ok(())
}

/// A session for the demo's admin panel: the access token only (no refresh token: the
/// panel asks again when it needs to).
async fn admin_session(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    enabled(&state)?;
    same_machine_page(&req)?;
    let tokens = state.auth.accounts.demo_admin_session().await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({
            "access_token": tokens.access_token.expose_secret(),
            "token_type": tokens.token_type,
            "expires_in": tokens.expires_in,
        })))
}

#[cfg(test)]
mod tests {
    use super::host_name;

    #[test]
    fn host_names_lose_their_port() {
        assert_eq!(host_name("127.0.0.1:8080"), "127.0.0.1");
        assert_eq!(host_name("localhost"), "localhost");
        assert_eq!(host_name("[::1]:8080"), "::1");
        assert_eq!(host_name("evil.example:80"), "evil.example");
    }
}
