//! The demo page (`demo.enabled`): `GET /demo`, its script, stylesheet and the JS client
//! (`clients/js/src/claimd.js`, the very file, embedded), all compiled into the binary; and
//! `POST /demo/admin-session`, which signs the page's admin panel in as
//! [`crate::auth::DEMO_ADMIN`]; and `GET /demo/mailbox`, the newest mails of the outbox
//! (`mail.transport = "outbox"`), links and all. With the demo off every one of them
//! answers 404.
//!
//! Why a password-less admin session is tolerable here: it wants the demo key
//! ([`crate::auth::DemoKey`], in `X-Demo-Key`), which exists only in claimd's memory and in
//! the URL claimd printed on its terminal, so only whoever started claimd can hand it to a
//! page. Around it: start-up refuses `demo.enabled` unless `server.bind` is loopback
//! (`Settings::validate`); the route wants a loopback `Host` (a DNS-rebinding page names
//! its own host), the `X-Requested-With` header (a cross-site form cannot send it, and a
//! cross-site `fetch` with it needs a preflight that claimd does not grant), an `Origin` of
//! the very host asked (every browser sends one with a `POST`), and no forwarding header
//! (`Forwarded`, `X-Forwarded-*`, `X-Real-IP`, `Via`): a request a proxy relayed is never
//! the demo page's. The demo admin's tokens cannot download a backup (`http::backup`).
//! The mailbox holds live sign-in links, so it wants the same key and checks, except that a
//! same-origin `GET` carries no `Origin` (one that is sent must be the page's).
//! The page carries a strict Content-Security-Policy: no inline script or style,
//! connections to this origin only.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::ExposeSecret as _;
use serde_json::json;

use super::error::ApiError;
use super::{resource, AppState};
use crate::auth::{AuthError, DemoKey};
use crate::config::MailTransportKind;

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
        .service(resource("/demo/admin-session").route(web::post().to(admin_session)))
        .service(resource("/demo/mailbox").route(web::get().to(mailbox)));
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

/// Whether a request must carry an `Origin`: browsers send one with every `POST`, but not
/// with a same-origin `GET`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OriginRule {
    Required,
    IfSent,
}

/// The checks that keep the password-less admin session and the mailbox to pages of this
/// machine.
fn same_machine_page(
    req: &HttpRequest,
    key: Option<&DemoKey>,
    origin_rule: OriginRule,
) -> Result<(), AuthError> {
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
    let repeated = [header::HOST, header::ORIGIN]
        .iter()
        .any(|name| req.headers().get_all(name).count() > 1);
    if repeated {
        return refuse("Host and Origin must each be sent once");
    }
    if FORWARDING_HEADERS
        .iter()
        .any(|name| req.headers().contains_key(*name))
    {
        return refuse("the demo admin session is not served through a proxy");
    }
    if header(header::HeaderName::from_static("x-requested-with")).is_empty() {
        return refuse("X-Requested-With is required");
    }
    let origin = header(header::ORIGIN);
    let unsent = origin_rule == OriginRule::IfSent && !req.headers().contains_key(header::ORIGIN);
    if !unsent && origin != format!("http://{host}") && origin != format!("https://{host}") {
        return refuse("the demo admin session is only for the demo page itself");
    }
    let presented = header(header::HeaderName::from_static("x-demo-key"));
    if !key.is_some_and(|key| key.matches(presented)) {
        return refuse(
            "the demo key is missing or wrong: open the demo URL claimd printed at start-up",
        );
    }
    Ok(())
}

/// Headers a proxy adds to a request it relays (RFC 7239, the de-facto `X-Forwarded-*`
/// and `X-Real-IP`, RFC 9110's `Via`).
const FORWARDING_HEADERS: [&str; 7] = [
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-real-ip",
    "via",
];

/// A session for the demo's admin panel: the access token only (no refresh token: the
/// panel asks again when it needs to).
async fn admin_session(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    enabled(&state)?;
    same_machine_page(&req, state.auth.demo_key.as_ref(), OriginRule::Required)?;
    let tokens = state.auth.accounts.demo_admin_session().await?;
    Ok(HttpResponse::Ok().json(json!({
        "access_token": tokens.access_token.expose_secret(),
        "token_type": tokens.token_type,
        "expires_in": tokens.expires_in,
    })))
}

/// How many mails the mailbox shows.
#[cfg(feature = "smtp")]
const MAILBOX_SIZE: usize = 20;

/// `GET /demo/mailbox`: `{"transport", "mails": [..]}`, the newest outbox mails first
/// ([`crate::mail::mailbox::MailboxEntry`]); no mails unless `mail.transport = "outbox"`.
async fn mailbox(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    enabled(&state)?;
    same_machine_page(&req, state.auth.demo_key.as_ref(), OriginRule::IfSent)?;
    let settings = state.auth.settings();
    let transport = match settings.mail.transport {
        MailTransportKind::None => "none",
        MailTransportKind::Smtp => "smtp",
        MailTransportKind::Outbox => "outbox",
    };
    let mails = if settings.mail.transport == MailTransportKind::Outbox {
        read_outbox(settings.mail_outbox_dir()).await?
    } else {
        serde_json::Value::Array(Vec::new())
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({ "transport": transport, "mails": mails })))
}

#[cfg(feature = "smtp")]
async fn read_outbox(dir: std::path::PathBuf) -> Result<serde_json::Value, ApiError> {
    let read = tokio::task::spawn_blocking(move || {
        crate::mail::mailbox::newest(&dir, MAILBOX_SIZE)
            .map_err(|err| format!("the outbox {} cannot be read: {err}", dir.display()))
    })
    .await
    .map_err(|err| AuthError::Internal(format!("the mailbox reader stopped: {err}")))?;
    let mails = read.map_err(AuthError::Internal)?;
    Ok(json!(mails))
}

/// Without the `smtp` feature no outbox is ever written (start-up refuses one).
#[cfg(not(feature = "smtp"))]
async fn read_outbox(_dir: std::path::PathBuf) -> Result<serde_json::Value, ApiError> {
    Ok(serde_json::Value::Array(Vec::new()))
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
