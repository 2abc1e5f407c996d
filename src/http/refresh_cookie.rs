//! The refresh token in a cookie, for browsers (`tokens.refresh_cookie = true`).
//!
//! Login, a refresh from the cookie and a password change answer with the refresh token in
//! `claimd_refresh` (`HttpOnly`, `SameSite=Strict`, `Path=/auth`, `Max-Age` the session's
//! remaining life, `Secure` unless `tokens.refresh_cookie_secure = false`) and leave it
//! out of the JSON body: a script on the page never sees it. The path reaches
//! `/auth/refresh-token` and `/auth/logout`: logout must be able to end the session the
//! cookie holds when the page's access token has run out. Logout and logout-all clear it
//! (under the path earlier releases used too).
//!
//! A request the cookie authenticates is a CSRF target, so it must carry
//! `X-Requested-With` (which a cross-site form cannot set, and which a cross-origin script
//! can set only after a CORS preflight claimd answers for allowed origins alone), and when
//! it names where it comes from (`Origin`, else `Referer`), that origin must be claimd's
//! own or one of `server.cors_origins`. Otherwise: 403 `csrf_refused`.

use actix_web::cookie::{time, Cookie, SameSite};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};
use secrecy::ExposeSecret as _;

use super::error::ApiError;
use crate::auth::TokenResponse;
use crate::config::Settings;
use crate::secret::SecretString;

/// The cookie's name.
pub const COOKIE_NAME: &str = "claimd_refresh";

/// The path the cookie is sent under: the token endpoint and logout.
pub const COOKIE_PATH: &str = "/auth";

/// The path releases before 0.2 set the cookie under; cleared with the current one.
const EARLIER_COOKIE_PATH: &str = "/auth/refresh-token";

/// The header a cookie-authenticated request must carry (any non-empty value).
pub const CSRF_HEADER: &str = "x-requested-with";

/// Whether cookie mode is on.
pub fn enabled(settings: &Settings) -> bool {
    settings.tokens.refresh_cookie
}

fn cookie(settings: &Settings, value: String, max_age_secs: u64) -> Cookie<'static> {
    cookie_at(settings, COOKIE_PATH, value, max_age_secs)
}

fn cookie_at(
    settings: &Settings,
    path: &'static str,
    value: String,
    max_age_secs: u64,
) -> Cookie<'static> {
    Cookie::build(COOKIE_NAME, value)
        .http_only(true)
        .same_site(SameSite::Strict)
        .path(path)
        .secure(settings.tokens.refresh_cookie_secure)
        .max_age(time::Duration::seconds(
            i64::try_from(max_age_secs).unwrap_or(i64::MAX),
        ))
        .finish()
}

/// A token answer in cookie mode: the refresh token moves from the body to the cookie.
/// An answer without a refresh token is left as it is.
pub fn move_refresh_token_to_cookie(
    settings: &Settings,
    response: &mut HttpResponseBuilder,
    tokens: &mut TokenResponse,
) {
    if let Some(refresh) = tokens.refresh_token.take() {
        let max_age = tokens
            .refresh_expires_in
            .unwrap_or(settings.tokens.refresh_ttl.as_secs());
        response.cookie(cookie(
            settings,
            refresh.expose_secret().to_string(),
            max_age,
        ));
        // A browser still holding a cookie under the earlier, longer path would send that
        // one first (the more specific path wins) and so replay a spent token next time.
        response.cookie(cookie_at(settings, EARLIER_COOKIE_PATH, String::new(), 0));
    }
}

/// Adds a `Set-Cookie` that removes the cookie (same name and path, `Max-Age=0`), in
/// cookie mode.
pub fn clear(settings: &Settings, response: &mut HttpResponse) {
    if !enabled(settings) {
        return;
    }
    // A cookie that cannot be rendered into a header is impossible here (fixed name,
    // empty value); nothing to clear then.
    for path in [COOKIE_PATH, EARLIER_COOKIE_PATH] {
        let _ = response.add_cookie(&cookie_at(settings, path, String::new(), 0));
    }
}

/// The refresh token from the cookie, in cookie mode, after the CSRF checks; `None` when
/// cookie mode is off or the request carries no such cookie.
///
/// # Errors
/// 403 `csrf_refused` for a cookie-carrying request without `X-Requested-With` or from an
/// origin other than claimd's own and `server.cors_origins`.
pub fn presented(req: &HttpRequest, settings: &Settings) -> Result<Option<SecretString>, ApiError> {
    if !enabled(settings) {
        return Ok(None);
    }
    let Some(cookie) = req.cookie(COOKIE_NAME) else {
        return Ok(None);
    };
    if cookie.value().is_empty() {
        return Ok(None);
    }
    check_csrf(req, settings)?;
    Ok(Some(cookie.value().into()))
}

/// The CSRF checks for a request the cookie authenticates.
fn check_csrf(req: &HttpRequest, settings: &Settings) -> Result<(), ApiError> {
    let marked = req
        .headers()
        .get(CSRF_HEADER)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| !value.trim().is_empty());
    if !marked {
        return Err(ApiError::csrf_refused(
            "a request authenticated by the refresh cookie must carry X-Requested-With",
        ));
    }
    let text = |name| {
        req.headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
    };
    let origin = match text(header::ORIGIN) {
        Some(origin) => Some(origin.to_string()),
        None => text(header::REFERER).map(origin_of),
    };
    match origin {
        Some(origin) if !origin_allowed(&origin, settings) => Err(ApiError::csrf_refused(
            "the refresh cookie may not be used from this origin",
        )),
        _ => Ok(()),
    }
}

/// Whether `origin` is claimd's own or listed in `server.cors_origins` (scheme and host
/// compare without case, as browsers serialise them in lower case).
fn origin_allowed(origin: &str, settings: &Settings) -> bool {
    let same = |allowed: &str| allowed.trim_end_matches('/').eq_ignore_ascii_case(origin);
    same(settings.own_origin())
        || settings
            .server
            .cors_origins
            .iter()
            .any(|allowed| same(allowed))
}

/// The origin (`scheme://host[:port]`) of a URL such as a `Referer`.
fn origin_of(url: &str) -> String {
    let after_scheme = url.find("://").map_or(0, |at| at + 3);
    let end = url[after_scheme..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |at| after_scheme + at);
    url[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_origin_of_a_referer_is_its_scheme_and_authority() {
        assert_eq!(
            origin_of("https://app.example.com:8443/path?q#f"),
            "https://app.example.com:8443"
        );
        assert_eq!(origin_of("http://localhost:5173"), "http://localhost:5173");
        assert_eq!(origin_of("http://h?x=/y"), "http://h");
    }

    #[test]
    fn own_origin_and_listed_origins_are_allowed_others_not() {
        let mut settings = Settings::default();
        settings.tokens.issuer = "https://auth.example.com/base".to_string();
        settings.server.cors_origins = vec!["https://app.example.com".to_string()];
        assert!(origin_allowed("https://auth.example.com", &settings));
        assert!(origin_allowed("https://APP.example.com", &settings));
        assert!(!origin_allowed("https://evil.example.com", &settings));
        assert!(!origin_allowed("null", &settings));
        assert!(!origin_allowed(
            "https://auth.example.com.evil.com",
            &settings
        ));
    }
}
