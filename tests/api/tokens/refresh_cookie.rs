//! Cookie mode (`tokens.refresh_cookie = true`): login, a refresh from the cookie and a
//! password change put the refresh token in `claimd_refresh` (HttpOnly, SameSite=Strict,
//! Path=/auth, Max-Age, Secure unless turned off) and leave it out of the
//! body; `/auth/refresh-token` without a body takes it from there, behind the CSRF checks
//! (`X-Requested-With`, and an `Origin`/`Referer` that is claimd's own or in
//! `server.cors_origins`); logout and logout-all clear it.
//!
//! The test client keeps no cookie jar: every cookie is read from `Set-Cookie` and sent back
//! by hand, so each test states exactly what a browser would hold.

use reqwest::header::{HeaderMap, COOKIE, ORIGIN, REFERER, SET_COOKIE};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{
    assert_problem, refresh_parts, spawn_app_with, token_response, TestApp, Tokens, PASSWORD,
    TEST_ISSUER,
};

const ALLOWED_ORIGIN: &str = "https://app.example.com";
const FOREIGN_ORIGIN: &str = "https://evil.example.net";

/// One `Set-Cookie` for `claimd_refresh`: its value and its attributes, lower-cased names.
#[derive(Debug)]
struct SetCookie {
    value: String,
    attributes: Vec<(String, Option<String>)>,
}

impl SetCookie {
    fn has(&self, name: &str) -> bool {
        self.attributes
            .iter()
            .any(|(key, _)| key.eq_ignore_ascii_case(name))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .and_then(|(_, value)| value.as_deref())
    }

    fn max_age(&self) -> i64 {
        self.get("max-age")
            .unwrap_or_else(|| panic!("Max-Age set: {self:?}"))
            .parse()
            .unwrap_or_else(|_| panic!("Max-Age is a number: {self:?}"))
    }

    /// The attributes every form of the cookie carries, set or cleared.
    fn assert_scoped(&self, secure: bool) {
        assert!(self.has("httponly"), "HttpOnly: {self:?}");
        assert_eq!(self.get("samesite"), Some("Strict"), "{self:?}");
        assert_eq!(self.get("path"), Some("/auth"), "{self:?}");
        assert_eq!(self.has("secure"), secure, "Secure is {secure}: {self:?}");
    }
}

/// The `claimd_refresh` cookie set by `headers`, if any (exactly one).
fn refresh_cookie(headers: &HeaderMap) -> Option<SetCookie> {
    let found: Vec<SetCookie> = headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .filter_map(|text| {
            let mut parts = text.split(';').map(str::trim);
            let (name, value) = parts.next()?.split_once('=')?;
            (name == "claimd_refresh").then(|| SetCookie {
                value: value.to_string(),
                attributes: parts
                    .map(|part| match part.split_once('=') {
                        Some((key, value)) => (key.to_ascii_lowercase(), Some(value.to_string())),
                        None => (part.to_ascii_lowercase(), None),
                    })
                    .collect(),
            })
        })
        .collect();
    // Every answer that sets or clears the cookie also clears it under the path earlier
    // releases used (/auth/refresh-token), so a browser upgraded mid-session never sends
    // a spent token from there.
    let (earlier, mut current): (Vec<SetCookie>, Vec<SetCookie>) = found
        .into_iter()
        .partition(|cookie| cookie.get("path") == Some("/auth/refresh-token"));
    for cookie in &earlier {
        assert_eq!(
            cookie.max_age(),
            0,
            "the earlier path is only cleared: {cookie:?}"
        );
        assert!(cookie.value.is_empty(), "{cookie:?}");
    }
    assert!(
        current.is_empty() || earlier.len() == 1,
        "the earlier path cleared with it: {earlier:?}"
    );
    assert!(current.len() <= 1, "one claimd_refresh cookie: {current:?}");
    current.pop()
}

/// The cookie a successful answer sets, asserting its attributes.
fn set_cookie(headers: &HeaderMap, secure: bool) -> SetCookie {
    let cookie = refresh_cookie(headers).expect("the answer sets claimd_refresh");
    cookie.assert_scoped(secure);
    refresh_parts(&cookie.value);
    assert!(cookie.max_age() > 0, "{cookie:?}");
    cookie
}

/// Asserts `headers` clear the cookie (same scope, `Max-Age=0`).
fn assert_cleared(headers: &HeaderMap, secure: bool) {
    let cookie = refresh_cookie(headers).expect("the answer clears claimd_refresh");
    cookie.assert_scoped(secure);
    assert_eq!(cookie.max_age(), 0, "{cookie:?}");
    assert!(cookie.value.is_empty(), "{cookie:?}");
}

/// A token response in cookie mode: no refresh token in the body.
async fn cookie_mode_tokens(resp: Response, secure: bool) -> (Tokens, SetCookie) {
    let cookie = set_cookie(resp.headers(), secure);
    let tokens = token_response(resp).await;
    assert_eq!(tokens.refresh_token, None, "{}", tokens.body);
    (tokens, cookie)
}

async fn cookie_app(tweak: impl FnOnce(&mut claimd::config::Settings)) -> TestApp {
    spawn_app_with(|s| {
        s.tokens.refresh_cookie = true;
        s.server.cors_origins = vec![ALLOWED_ORIGIN.to_string()];
        // A refused request that had spent the token would show as reuse at once.
        s.tokens.refresh_reuse_grace = std::time::Duration::ZERO;
        tweak(s);
    })
    .await
}

/// Registers and logs `username` in, in cookie mode.
async fn cookie_login(app: &TestApp, username: &str, secure: bool) -> (Tokens, SetCookie) {
    app.register_ok(username, PASSWORD).await;
    cookie_mode_tokens(app.login(username, PASSWORD).await, secure).await
}

/// `POST /auth/refresh-token` carrying `cookie`, with `headers` (name, value) and no body.
async fn refresh_with_cookie(app: &TestApp, cookie: &str, headers: &[(&str, &str)]) -> Response {
    let mut req = app
        .client
        .post(app.url("/auth/refresh-token"))
        .header(COOKIE, format!("claimd_refresh={cookie}"));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.send().await.expect("request sent")
}

const MARKED: (&str, &str) = ("x-requested-with", "claimd");

#[tokio::test]
async fn login_sets_the_cookie_and_leaves_the_refresh_token_out_of_the_body() {
    let app = cookie_app(|_| {}).await;

    let (tokens, cookie) = cookie_login(&app, "alice", true).await;

    let lifetime = tokens.refresh_expires_in.expect("refresh_expires_in");
    assert!(
        (lifetime as i64 - cookie.max_age()).abs() <= 1,
        "Max-Age is the refresh token's life ({lifetime}): {cookie:?}"
    );
    assert_eq!(lifetime, 30 * 86_400);
    assert_eq!(app.me(&tokens.access_token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_cookie_is_not_secure_when_configured_for_plain_http() {
    let app = cookie_app(|s| s.tokens.refresh_cookie_secure = false).await;

    let (_, cookie) = cookie_login(&app, "alice", false).await;

    assert!(!cookie.has("secure"));
}

#[tokio::test]
async fn without_cookie_mode_no_cookie_is_set_and_none_is_read() {
    let app = spawn_app_with(|_| {}).await;
    let (_, tokens) = app.signed_up("alice").await;
    let login = app.login("alice", PASSWORD).await;
    assert!(refresh_cookie(login.headers()).is_none());
    assert!(token_response(login).await.refresh_token.is_some());

    let resp = refresh_with_cookie(&app, tokens.refresh(), &[MARKED]).await;

    assert_problem(resp, 400, "invalid_request").await;
    let resp = app.logout(&tokens.access_token).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(refresh_cookie(resp.headers()).is_none());
}

#[tokio::test]
async fn a_refresh_from_the_cookie_rotates_it() {
    let app = cookie_app(|_| {}).await;
    let (login, first) = cookie_login(&app, "alice", true).await;

    let resp = refresh_with_cookie(&app, &first.value, &[MARKED]).await;
    let (refreshed, second) = cookie_mode_tokens(resp, true).await;

    let (sid, generation, _) = refresh_parts(&first.value);
    assert_eq!(refresh_parts(&second.value).0, sid, "same session");
    assert_eq!(refresh_parts(&second.value).1, generation + 1, "rotated");
    assert_eq!(refreshed.session_id, login.session_id);
    assert_eq!(
        app.me(&refreshed.access_token).await.status(),
        StatusCode::OK
    );

    // An empty JSON object is "no body" too.
    let resp = app
        .client
        .post(app.url("/auth/refresh-token"))
        .header(COOKIE, format!("claimd_refresh={}", second.value))
        .header(MARKED.0, MARKED.1)
        .json(&json!({}))
        .send()
        .await
        .expect("request sent");
    let (_, third) = cookie_mode_tokens(resp, true).await;
    assert_eq!(refresh_parts(&third.value).1, generation + 2);

    // The rotated-away cookie is a replay: refused, and the answer clears the cookie.
    let resp = refresh_with_cookie(&app, &first.value, &[MARKED]).await;
    assert_cleared(resp.headers(), true);
    let (_, body) = assert_problem(resp, 400, "invalid_grant").await;
    assert_eq!(body["error"], json!("invalid_grant"), "{body}");
}

#[tokio::test]
async fn a_refresh_token_presented_in_the_body_is_answered_in_the_body() {
    let app = cookie_app(|_| {}).await;
    let (_, cookie) = cookie_login(&app, "alice", true).await;

    let resp = app.refresh(&cookie.value).await;

    assert!(refresh_cookie(resp.headers()).is_none(), "no cookie set");
    let tokens = token_response(resp).await;
    assert_eq!(refresh_parts(tokens.refresh()).1, 2);
}

#[tokio::test]
async fn a_cookie_request_without_x_requested_with_is_refused() {
    let app = cookie_app(|_| {}).await;
    let (_, cookie) = cookie_login(&app, "alice", true).await;

    for headers in [&[][..], &[("x-requested-with", "")][..]] {
        let resp = refresh_with_cookie(&app, &cookie.value, headers).await;
        assert!(refresh_cookie(resp.headers()).is_none());
        assert_problem(resp, 403, "csrf_refused").await;
    }

    // Nothing was spent: the cookie still refreshes (reuse would be refused at once).
    let resp = refresh_with_cookie(&app, &cookie.value, &[MARKED]).await;
    cookie_mode_tokens(resp, true).await;
}

#[tokio::test]
async fn a_cookie_request_from_a_foreign_origin_is_refused() {
    let app = cookie_app(|_| {}).await;
    let (_, cookie) = cookie_login(&app, "alice", true).await;

    let origin = ORIGIN.as_str();
    let referer = REFERER.as_str();
    let foreign_page = format!("{FOREIGN_ORIGIN}/page");
    for headers in [
        vec![MARKED, (origin, FOREIGN_ORIGIN)],
        vec![MARKED, (origin, "null")],
        vec![MARKED, (referer, foreign_page.as_str())],
        // Origin wins over Referer.
        vec![
            MARKED,
            (origin, FOREIGN_ORIGIN),
            (referer, "https://app.example.com/"),
        ],
    ] {
        let resp = refresh_with_cookie(&app, &cookie.value, &headers).await;
        assert_problem(resp, 403, "csrf_refused").await;
    }

    let resp = refresh_with_cookie(&app, &cookie.value, &[MARKED]).await;
    cookie_mode_tokens(resp, true).await;
}

#[tokio::test]
async fn a_cookie_request_from_an_allowed_or_the_own_origin_is_accepted() {
    let app = cookie_app(|_| {}).await;
    let (_, mut cookie) = cookie_login(&app, "alice", true).await;
    let origin = ORIGIN.as_str();
    let referer = REFERER.as_str();
    let own_page = format!("{TEST_ISSUER}/demo");

    for headers in [
        vec![MARKED, (origin, ALLOWED_ORIGIN)],
        vec![MARKED, (origin, TEST_ISSUER)],
        vec![MARKED, (referer, own_page.as_str())],
        vec![MARKED, (referer, "https://app.example.com/account?tab=1")],
    ] {
        let resp = refresh_with_cookie(&app, &cookie.value, &headers).await;
        let status = resp.status();
        assert_eq!(status, StatusCode::OK, "{headers:?}");
        if headers.iter().any(|(_, value)| *value == ALLOWED_ORIGIN) {
            assert_eq!(
                crate::helpers::header_str(resp.headers(), "access-control-allow-origin"),
                Some(ALLOWED_ORIGIN.to_string()),
                "the allowed origin may read the answer"
            );
        }
        cookie = cookie_mode_tokens(resp, true).await.1;
    }
}

#[tokio::test]
async fn logout_clears_the_cookie_and_ends_its_session() {
    let app = cookie_app(|_| {}).await;
    let (tokens, cookie) = cookie_login(&app, "alice", true).await;

    let resp = app.logout(&tokens.access_token).await;

    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_cleared(resp.headers(), true);
    let resp = refresh_with_cookie(&app, &cookie.value, &[MARKED]).await;
    assert_problem(resp, 400, "invalid_grant").await;

    // A logout that is refused (here: no token at all) clears the cookie just the same.
    let resp = app
        .client
        .post(app.url("/auth/logout"))
        .send()
        .await
        .expect("sent");
    assert_cleared(resp.headers(), true);
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn logout_all_clears_the_cookie_and_ends_every_session() {
    let app = cookie_app(|s| s.tokens.refresh_cookie_secure = false).await;
    let (tokens, cookie) = cookie_login(&app, "alice", false).await;
    let (_, other) = cookie_mode_tokens(app.login("alice", PASSWORD).await, false).await;

    let resp = app.logout_all(&tokens.access_token).await;

    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_cleared(resp.headers(), false);
    for dead in [&cookie, &other] {
        let resp = refresh_with_cookie(&app, &dead.value, &[MARKED]).await;
        assert_problem(resp, 400, "invalid_grant").await;
    }
}

#[tokio::test]
async fn a_password_change_sets_the_new_cookie() {
    let app = cookie_app(|_| {}).await;
    let (tokens, before) = cookie_login(&app, "alice", true).await;

    let resp = app
        .change_password(&tokens.access_token, PASSWORD, "a brand new passphrase")
        .await;
    let (changed, after) = cookie_mode_tokens(resp, true).await;

    assert_ne!(after.value, before.value);
    assert_eq!(changed.session_id, tokens.session_id);
    let resp = refresh_with_cookie(&app, &after.value, &[MARKED]).await;
    let (refreshed, _) = cookie_mode_tokens(resp, true).await;
    let body: Value = refreshed.body;
    assert!(body.get("refresh_token").is_none(), "{body}");
}

/// `POST /auth/logout` carrying the refresh cookie (and `headers`), with `bearer` if given.
async fn logout_with_cookie(
    app: &TestApp,
    cookie: &str,
    bearer: Option<&str>,
    headers: &[(&str, &str)],
) -> Response {
    let mut req = app
        .client
        .post(app.url("/auth/logout"))
        .header(COOKIE, format!("claimd_refresh={cookie}"));
    if let Some(bearer) = bearer {
        req = req.bearer_auth(bearer);
    }
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.send().await.expect("request sent")
}

#[tokio::test]
async fn the_cookie_alone_ends_its_session_at_logout() {
    let app = cookie_app(|_| {}).await;
    let (tokens, cookie) = cookie_login(&app, "alice", true).await;

    let resp = logout_with_cookie(&app, &cookie.value, None, &[MARKED]).await;

    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_cleared(resp.headers(), true);
    let resp = refresh_with_cookie(&app, &cookie.value, &[MARKED]).await;
    assert_problem(resp, 400, "invalid_grant").await;
    crate::helpers::assert_token_error(app.me(&tokens.access_token).await, "token_revoked").await;
}

#[tokio::test]
async fn a_bearer_that_proves_nothing_falls_back_to_the_cookie_at_logout() {
    let app = cookie_app(|_| {}).await;
    let (_, cookie) = cookie_login(&app, "alice", true).await;

    let resp = logout_with_cookie(&app, &cookie.value, Some("not.a.token"), &[MARKED]).await;

    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let resp = refresh_with_cookie(&app, &cookie.value, &[MARKED]).await;
    assert_problem(resp, 400, "invalid_grant").await;
}

#[tokio::test]
async fn the_cookie_at_logout_is_behind_the_csrf_checks() {
    let app = cookie_app(|_| {}).await;
    let (_, cookie) = cookie_login(&app, "alice", true).await;

    let resp = logout_with_cookie(&app, &cookie.value, None, &[]).await;
    assert_problem(resp, 403, "csrf_refused").await;
    let resp = logout_with_cookie(
        &app,
        &cookie.value,
        None,
        &[MARKED, (ORIGIN.as_str(), FOREIGN_ORIGIN)],
    )
    .await;
    assert_problem(resp, 403, "csrf_refused").await;

    let resp = refresh_with_cookie(&app, &cookie.value, &[MARKED]).await;
    assert_eq!(resp.status(), StatusCode::OK, "the session lives on");
}

/// A good Bearer token ends its session whatever the cookie beside it: the cookie is
/// consulted, behind its CSRF checks, only when the Bearer token proved nothing.
#[tokio::test]
async fn a_good_bearer_is_not_refused_for_the_cookie_beside_it() {
    let app = cookie_app(|_| {}).await;
    let (tokens, cookie) = cookie_login(&app, "alice", true).await;

    let resp = logout_with_cookie(&app, &cookie.value, Some(&tokens.access_token), &[]).await;

    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let resp = refresh_with_cookie(&app, &cookie.value, &[MARKED]).await;
    assert_problem(resp, 400, "invalid_grant").await;
}
