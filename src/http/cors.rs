//! CORS (the Fetch standard's cross-origin protocol) for browser apps on other origins.
//!
//! Only origins named in `server.cors_origins` get CORS answers; `/admin/*` and `/metrics`
//! answer only those in `server.cors_admin_origins` (same-origin otherwise), judged on the
//! path the router matched; `/verify` (forward-auth, for proxies) never does. A request from
//! any other origin is served as if CORS did not exist: no `Access-Control-*` header, so
//! the browser keeps the answer from the page.
//!
//! A preflight's allowed methods are the route table's own: the request goes through the
//! router like any other, whose answer for a method no route takes is a 405 listing in
//! `Allow` the methods the resource does take (see [`super::app`]). No second list of
//! routes to drift from the first.

use std::collections::HashSet;

use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::Method;
use actix_web::HttpRequest;

use crate::config::ServerSettings;

/// Request headers a page may send: the token, a JSON or form body, the CSRF header of
/// the refresh cookie, and the change feed's resume point.
const ALLOWED_HEADERS: &str = "authorization, content-type, x-requested-with, last-event-id";

/// Answer headers a page may read besides the CORS-safelisted ones.
const EXPOSED_HEADERS: &str = "x-refreshed-token, retry-after, www-authenticate";

/// Forward-auth is asked by proxies (nginx `auth_request`, Traefik, Caddy), never by a
/// page: it is left out of CORS altogether.
const FORWARD_AUTH_PATH: &str = "/verify";

/// How long a browser may cache a preflight's answer, in seconds.
const PREFLIGHT_MAX_AGE_SECS: u32 = 600;

/// Which origins may call which paths.
#[derive(Debug, Clone)]
pub struct CorsPolicy {
    api: Origins,
    admin: Origins,
}

#[derive(Debug, Clone, Default)]
struct Origins {
    any: bool,
    exact: HashSet<String>,
}

impl Origins {
    fn from_list(list: &[String]) -> Origins {
        Origins {
            any: list.iter().any(|origin| origin == "*"),
            exact: list
                .iter()
                .filter(|origin| *origin != "*")
                .cloned()
                .collect(),
        }
    }

    fn is_empty(&self) -> bool {
        !self.any && self.exact.is_empty()
    }
}

/// What CORS adds to one answer.
#[derive(Debug, Clone)]
pub enum CorsAnswer {
    /// CORS is off: not a header added.
    Off,
    /// CORS is on, but not for this request (no `Origin`, or one not allowed here): only
    /// `Vary: Origin`, so a cache never hands this answer to an allowed origin.
    NotAllowed,
    /// Any origin may read it (`"*"`, without credentials).
    AnyOrigin,
    /// This origin may read it, credentials included.
    Origin(HeaderValue),
}

impl CorsPolicy {
    /// The policy `server.cors_origins` and `server.cors_admin_origins` describe.
    pub fn from_settings(server: &ServerSettings) -> CorsPolicy {
        let admin = Origins::from_list(&server.cors_admin_origins);
        // An admin console also logs in, refreshes and reads `/me`: origins allowed on the
        // admin paths are allowed on the others too.
        let mut api = Origins::from_list(&server.cors_origins);
        api.any |= admin.any;
        api.exact.extend(admin.exact.iter().cloned());
        CorsPolicy { api, admin }
    }

    /// What CORS adds to the answer to `req`.
    pub fn judge(&self, req: &HttpRequest) -> CorsAnswer {
        // The path as the router matches it (percent-escapes of unreserved characters
        // decoded: `/%61dmin/users` is routed as `/admin/users`), never the raw one, so a
        // spelling cannot route to an admin handler while judged as another path.
        let path = req.match_info().as_str();
        if self.api.is_empty() || path == FORWARD_AUTH_PATH {
            return CorsAnswer::Off;
        }
        let origins = if is_admin_path(path) {
            &self.admin
        } else {
            &self.api
        };
        let Some(origin) = req.headers().get(header::ORIGIN) else {
            return CorsAnswer::NotAllowed;
        };
        let named = origin
            .to_str()
            .is_ok_and(|origin| origins.exact.contains(origin));
        if named {
            CorsAnswer::Origin(origin.clone())
        } else if origins.any {
            CorsAnswer::AnyOrigin
        } else {
            CorsAnswer::NotAllowed
        }
    }
}

/// `/admin/*` and `/metrics`: same-origin unless `server.cors_admin_origins` says otherwise.
fn is_admin_path(path: &str) -> bool {
    path == "/metrics" || path == "/admin" || path.starts_with("/admin/")
}

/// A CORS preflight: `OPTIONS` with `Origin` and `Access-Control-Request-Method`.
pub fn is_preflight(req: &HttpRequest) -> bool {
    req.method() == Method::OPTIONS
        && req.headers().contains_key(header::ORIGIN)
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

impl CorsAnswer {
    /// Adds this answer's headers to a response.
    pub fn apply(&self, headers: &mut HeaderMap) {
        let allowed = match self {
            CorsAnswer::Off => return,
            CorsAnswer::NotAllowed => None,
            CorsAnswer::AnyOrigin => Some(HeaderValue::from_static("*")),
            CorsAnswer::Origin(origin) => Some(origin.clone()),
        };
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
        let Some(allowed) = allowed else {
            return;
        };
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSED_HEADERS),
        );
        if matches!(self, CorsAnswer::Origin(_)) {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
    }

    /// Adds a preflight's headers: the methods the resource takes (its `Allow`) and the
    /// request headers claimd reads. Nothing for an origin that is not allowed.
    pub fn apply_preflight(&self, allow: Option<&HeaderValue>, headers: &mut HeaderMap) {
        if !matches!(self, CorsAnswer::Origin(_) | CorsAnswer::AnyOrigin) {
            return;
        }
        if let Some(allow) = allow {
            headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, allow.clone());
        }
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOWED_HEADERS),
        );
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from(PREFLIGHT_MAX_AGE_SECS),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn policy(api: &[&str], admin: &[&str]) -> CorsPolicy {
        let server = ServerSettings {
            cors_origins: api.iter().map(|o| (*o).to_string()).collect(),
            cors_admin_origins: admin.iter().map(|o| (*o).to_string()).collect(),
            ..ServerSettings::default()
        };
        CorsPolicy::from_settings(&server)
    }

    fn judge(policy: &CorsPolicy, path: &str, origin: Option<&str>) -> CorsAnswer {
        let mut req = TestRequest::get().uri(path);
        if let Some(origin) = origin {
            req = req.insert_header((header::ORIGIN, origin));
        }
        policy.judge(&req.to_http_request())
    }

    #[test]
    fn only_named_origins_are_allowed_and_admin_paths_need_their_own_list() {
        let app = "https://app.example.com";
        let console = "https://console.example.com";
        let p = policy(&[app], &[console]);
        assert!(matches!(judge(&p, "/me", Some(app)), CorsAnswer::Origin(o) if o == app));
        assert!(matches!(
            judge(&p, "/me", Some("https://evil.example")),
            CorsAnswer::NotAllowed
        ));
        assert!(matches!(
            judge(&p, "/me", Some("https://app.example.com.evil")),
            CorsAnswer::NotAllowed
        ));
        assert!(matches!(judge(&p, "/me", None), CorsAnswer::NotAllowed));
        assert!(matches!(
            judge(&p, "/admin/users", Some(app)),
            CorsAnswer::NotAllowed
        ));
        assert!(matches!(
            judge(&p, "/metrics", Some(app)),
            CorsAnswer::NotAllowed
        ));
        assert!(matches!(
            judge(&p, "/admin/users", Some(console)),
            CorsAnswer::Origin(_)
        ));
        assert!(matches!(
            judge(&p, "/auth/login", Some(console)),
            CorsAnswer::Origin(_)
        ));
        // `/administrator` is not an admin path, and not a route either.
        assert!(matches!(
            judge(&p, "/administrator", Some(app)),
            CorsAnswer::Origin(_)
        ));
    }

    #[test]
    fn off_adds_nothing_and_star_never_allows_credentials() {
        let off = policy(&[], &[]);
        let mut headers = HeaderMap::new();
        judge(&off, "/me", Some("https://a.example")).apply(&mut headers);
        assert!(headers.is_empty());

        let any = policy(&["*"], &[]);
        let answer = judge(&any, "/me", Some("https://a.example"));
        answer.apply(&mut headers);
        assert_eq!(
            headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).unwrap(),
            "*"
        );
        assert!(!headers.contains_key(header::ACCESS_CONTROL_ALLOW_CREDENTIALS));
        assert!(matches!(
            judge(&any, "/admin/users", Some("https://a.example")),
            CorsAnswer::NotAllowed
        ));
    }
}
