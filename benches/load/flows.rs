//! What each connection of a scenario sends and what it accepts as a right answer (API.md
//! shapes). Flows that follow a chain (a rotating refresh token, an access token replaced
//! on every claim change, a session replaced after logout) keep it in their own state, so
//! a connection never shares a chain with another.

use std::sync::Arc;

use serde_json::json;

use crate::driver::{Flow, Rng};
use crate::http::{write_request, Response};

/// A user the bench registered.
#[derive(Clone)]
pub struct Account {
    pub username: String,
    pub password: String,
}

/// One session's current tokens.
#[derive(Clone)]
pub struct Session {
    pub access: String,
    pub refresh: String,
}

const JSON: &str = "application/json";
const FORM: &str = "application/x-www-form-urlencoded";

fn expect(response: &Response, status: u16) -> Result<(), String> {
    if response.status == status {
        Ok(())
    } else {
        Err(format!(
            "status {} (expected {status}): {}",
            response.status,
            response.snippet()
        ))
    }
}

pub fn login_request(out: &mut Vec<u8>, account: &Account) {
    let body = json!({ "username": account.username, "password": account.password });
    write_request(
        out,
        "POST",
        "/auth/login",
        &[],
        Some((JSON, body.to_string().as_bytes())),
    );
}

/// Takes the pair from a 200 token response.
pub fn token_pair(response: &Response) -> Result<Session, String> {
    expect(response, 200)?;
    let body = response.json()?;
    let field = |name: &str| {
        body.get(name)
            .and_then(|value| value.as_str())
            .map(str::to_string)
            .ok_or_else(|| format!("token response without `{name}`"))
    };
    Ok(Session {
        access: field("access_token")?,
        refresh: field("refresh_token")?,
    })
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// The baseline's only route.
pub struct Baseline;

impl Flow for Baseline {
    fn next(&mut self, _: &mut Rng, out: &mut Vec<u8>) -> &'static str {
        write_request(out, "GET", "/", &[], None);
        "baseline"
    }

    fn check(&mut self, _: &'static str, response: &Response) -> Result<(), String> {
        expect(response, 200)
    }
}

/// `GET /verify`, cycling through the access tokens of many sessions.
pub struct Verify {
    pub tokens: Arc<Vec<String>>,
    pub next: usize,
}

impl Flow for Verify {
    fn next(&mut self, _: &mut Rng, out: &mut Vec<u8>) -> &'static str {
        self.next = (self.next + 1) % self.tokens.len();
        let auth = bearer(&self.tokens[self.next]);
        write_request(out, "GET", "/verify", &[("Authorization", &auth)], None);
        "verify"
    }

    fn check(&mut self, _: &'static str, response: &Response) -> Result<(), String> {
        expect(response, 200)
    }
}

/// `POST /oauth/introspect` with a service credential, cycling through tokens.
pub struct Introspect {
    pub tokens: Arc<Vec<String>>,
    pub next: usize,
    /// The `Authorization: Basic …` value.
    pub basic: Arc<str>,
}

impl Flow for Introspect {
    fn next(&mut self, _: &mut Rng, out: &mut Vec<u8>) -> &'static str {
        self.next = (self.next + 1) % self.tokens.len();
        // A JWT is base64url and dots: nothing to escape in a form.
        let body = format!("token={}", self.tokens[self.next]);
        write_request(
            out,
            "POST",
            "/oauth/introspect",
            &[("Authorization", &self.basic)],
            Some((FORM, body.as_bytes())),
        );
        "introspect"
    }

    fn check(&mut self, _: &'static str, response: &Response) -> Result<(), String> {
        expect(response, 200)?;
        let active = response.json()?.get("active").and_then(|v| v.as_bool());
        if active == Some(true) {
            Ok(())
        } else {
            Err(format!("not active: {}", response.snippet()))
        }
    }
}

fn refresh_request(out: &mut Vec<u8>, session: &Session) {
    let body = json!({ "refresh_token": session.refresh });
    write_request(
        out,
        "POST",
        "/auth/refresh-token",
        &[],
        Some((JSON, body.to_string().as_bytes())),
    );
}

/// `POST /auth/refresh-token` along this connection's own rotating chain.
pub struct Refresh {
    pub session: Session,
}

impl Flow for Refresh {
    fn next(&mut self, _: &mut Rng, out: &mut Vec<u8>) -> &'static str {
        refresh_request(out, &self.session);
        "refresh"
    }

    fn check(&mut self, _: &'static str, response: &Response) -> Result<(), String> {
        self.session = token_pair(response)?;
        Ok(())
    }
}

fn change_request(out: &mut Vec<u8>, rng: &mut Rng, access: &str) {
    use crate::server::CHANGE_PLANS;
    let plan = CHANGE_PLANS
        .get(usize::try_from(rng.below(CHANGE_PLANS.len() as u64)).unwrap_or(0))
        .copied()
        .unwrap_or("p0");
    let body = json!({ "plan": plan });
    write_request(
        out,
        "PATCH",
        "/me",
        &[("Authorization", &bearer(access))],
        Some((JSON, body.to_string().as_bytes())),
    );
}

/// The access token refresh-on-change gave back: the header, else the body.
fn refreshed_access(response: &Response) -> Result<String, String> {
    expect(response, 200)?;
    if let Some(token) = &response.refreshed_token {
        return Ok(token.clone());
    }
    response
        .json()?
        .pointer("/token/access_token")
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .ok_or_else(|| "PATCH /me answer without a refreshed token".into())
}

/// `PATCH /me` (refresh-on-change): each answer's token is the one the next request uses,
/// since the change made the previous one stale. One user per connection.
pub struct Change {
    pub access: String,
}

impl Flow for Change {
    fn next(&mut self, rng: &mut Rng, out: &mut Vec<u8>) -> &'static str {
        change_request(out, rng, &self.access);
        "change"
    }

    fn check(&mut self, _: &'static str, response: &Response) -> Result<(), String> {
        self.access = refreshed_access(response)?;
        Ok(())
    }
}

/// `POST /auth/login`, cycling through the accounts.
pub struct Login {
    pub accounts: Arc<Vec<Account>>,
    pub next: usize,
}

impl Flow for Login {
    fn next(&mut self, _: &mut Rng, out: &mut Vec<u8>) -> &'static str {
        self.next = (self.next + 1) % self.accounts.len();
        login_request(out, &self.accounts[self.next]);
        "login"
    }

    fn check(&mut self, _: &'static str, response: &Response) -> Result<(), String> {
        token_pair(response).map(drop)
    }
}

/// 90% verify, 5% refresh, 2% change, 2% login, 1% logout followed by a login that
/// replaces the ended session. One user and one current session per connection, so a
/// claim change or a logout here never spoils another connection's tokens.
pub struct Mixed {
    pub account: Account,
    pub session: Session,
    /// The last request was a logout: the next one logs in again.
    pub logged_out: bool,
}

impl Flow for Mixed {
    fn next(&mut self, rng: &mut Rng, out: &mut Vec<u8>) -> &'static str {
        if self.logged_out {
            login_request(out, &self.account);
            return "login";
        }
        match rng.below(100) {
            0..=89 => {
                let auth = bearer(&self.session.access);
                write_request(out, "GET", "/verify", &[("Authorization", &auth)], None);
                "verify"
            }
            90..=94 => {
                refresh_request(out, &self.session);
                "refresh"
            }
            95..=96 => {
                change_request(out, rng, &self.session.access);
                "change"
            }
            97..=98 => {
                login_request(out, &self.account);
                "login"
            }
            _ => {
                let auth = bearer(&self.session.access);
                write_request(
                    out,
                    "POST",
                    "/auth/logout",
                    &[("Authorization", &auth)],
                    None,
                );
                "logout"
            }
        }
    }

    fn check(&mut self, op: &'static str, response: &Response) -> Result<(), String> {
        match op {
            "verify" => expect(response, 200),
            "refresh" | "login" => {
                self.session = token_pair(response)?;
                self.logged_out = false;
                Ok(())
            }
            "change" => {
                self.session.access = refreshed_access(response)?;
                Ok(())
            }
            _ => {
                // Whatever the answer, the session is not to be used again.
                self.logged_out = true;
                expect(response, 204)
            }
        }
    }
}
