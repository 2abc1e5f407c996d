//! Upgrades: today's claimd opens a data directory written by an earlier release and gives
//! the answers that release gave. Each fixture under `tests/fixtures/upgrade/` holds the
//! data directory a release wrote and its answers (`fixture.json`, see `generate.py`
//! there); the server runs on a copy, its clock set a minute after the fixture was written,
//! so the tokens in it are as live (or as revoked) as they were then.
//!
//! Answers that carry data are compared whole; refusals by status and `code` (the
//! `detail` wording may improve between releases).

use std::path::{Path, PathBuf};

use claimd::clock::ManualClock;
use claimd::startup::Application;
use reqwest::{Method, Response};
use serde_json::{json, Value};

use crate::helpers::{copy_dir, jwt_claims, test_settings, token_response, Caller, TestApp};

/// How long after the fixture was written the server's clock reads.
const AFTER_WRITING_SECS: u64 = 60;

fn fixtures() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/upgrade");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("fixtures directory")
        .map(|entry| entry.expect("fixture entry").path())
        .filter(|path| path.join("fixture.json").is_file())
        .collect();
    found.sort();
    assert!(
        !found.is_empty(),
        "no upgrade fixtures in {}",
        root.display()
    );
    found
}

/// Starts today's claimd on a copy of the fixture's data directory, on a clock set
/// [`AFTER_WRITING_SECS`] after the fixture was written.
async fn open_fixture(fixture: &Path, written: &Value) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    copy_dir(&fixture.join("data"), &data);
    let mut settings = test_settings(&data);
    // What the fixture's config.toml says (see generate.py).
    settings.tokens.issuer = "http://claimd.fixture".into();
    settings.tokens.audience = "claimd".into();
    settings.keys.publish_ahead = std::time::Duration::ZERO;
    let generated_at = written["generated_at"].as_u64().expect("generated_at");
    let clock = ManualClock::starting_at(generated_at + AFTER_WRITING_SECS);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let app = Application::build_with_listener(settings, listener, clock.clock())
        .await
        .unwrap_or_else(|err| panic!("{} does not open: {err:#}", fixture.display()));
    let port = app.port();
    tokio::spawn(app.run_until_stopped());
    TestApp::new(port, Some(dir))
}

/// Status and body of an answer.
async fn answer(resp: Response) -> Value {
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).expect("a JSON body")
    };
    json!({"status": status, "body": body})
}

/// Asserts an answer is the one the fixture recorded: everything it recorded for a success
/// (members added since may be there too), status and `code` for a refusal.
fn assert_same(name: &str, fixture: &Path, expected: &Value, actual: &Value) {
    let context = format!("{name} ({})", fixture.display());
    assert_eq!(actual["status"], expected["status"], "{context}: {actual}");
    if expected["status"]
        .as_u64()
        .is_some_and(|status| status >= 400)
    {
        assert_eq!(
            actual["body"]["code"], expected["body"]["code"],
            "{context}: {actual}"
        );
    } else {
        assert!(
            holds(&actual["body"], &expected["body"]),
            "{context}: recorded {} but answered {}",
            expected["body"],
            actual["body"]
        );
    }
}

/// Whether `actual` says everything `recorded` said: the same values, objects with at
/// least the recorded members. Members added since the recording (a `User`'s `email` and
/// `email_verified`, issue 21) are an additive change, not a different answer.
fn holds(actual: &Value, recorded: &Value) -> bool {
    match (actual, recorded) {
        (Value::Object(actual), Value::Object(recorded)) => recorded
            .iter()
            .all(|(key, value)| actual.get(key).is_some_and(|mine| holds(mine, value))),
        (Value::Array(actual), Value::Array(recorded)) => {
            actual.len() == recorded.len()
                && actual
                    .iter()
                    .zip(recorded)
                    .all(|(mine, value)| holds(mine, value))
        }
        _ => actual == recorded,
    }
}

/// The claims of a token that say who the user is and what they hold (not when or which
/// token this is).
fn lasting_claims(claims: &Value) -> Value {
    let mut claims = claims.clone();
    let object = claims.as_object_mut().expect("claims object");
    for moment in ["iat", "exp", "jti", "sid"] {
        object.remove(moment);
    }
    claims
}

/// Tests of the embedded store's own files (the data directory, its lock, a backup file):
/// nothing to test on PostgreSQL, so `.ci/run`'s PostgreSQL pass skips `::sled_files::`.
mod sled_files {
    use super::*;

    #[tokio::test]
    async fn a_data_directory_written_by_an_earlier_release_answers_the_same() {
        for fixture in fixtures() {
            let written: Value = serde_json::from_str(
                &std::fs::read_to_string(fixture.join("fixture.json")).expect("fixture.json"),
            )
            .expect("fixture.json parses");
            let expected = &written["expected"];
            let tokens = &written["tokens"];
            let token = |who: &str, which: &str| {
                tokens[who][which]
                    .as_str()
                    .unwrap_or_else(|| panic!("tokens.{who}.{which}"))
                    .to_string()
            };
            let app = open_fixture(&fixture, &written).await;
            let same = |name: &str, actual: &Value| {
                assert_same(name, &fixture, &expected[name], actual);
            };

            // Keys: both survive, the same JWKS, tokens signed by either still verify.
            same("jwks", &answer(app.jwks().await).await);
            same(
                "me_first_key",
                &answer(app.me(&token("alice_first", "access_token")).await).await,
            );
            same(
                "me_second_key",
                &answer(app.me(&token("alice_second", "access_token")).await).await,
            );
            same(
                "me_tenant_member",
                &answer(app.me(&token("bob", "access_token")).await).await,
            );

            // Revocation: the deny entry and the ended session still refuse.
            same(
                "me_revoked",
                &answer(app.me(&token("carol_revoked", "access_token")).await).await,
            );
            same(
                "refresh_revoked",
                &answer(app.refresh(&token("carol_revoked", "refresh_token")).await).await,
            );

            // The service credential still authenticates.
            let service = &written["service"];
            let client_id = service["client_id"].as_str().expect("client_id");
            let secret = service["client_secret"].as_str().expect("client_secret");
            same(
                "introspect_live",
                &answer(
                    app.introspect(
                        Caller::Basic(client_id, secret),
                        &token("alice_second", "access_token"),
                    )
                    .await,
                )
                .await,
            );

            // Accounts, tenants, services, invitations and sessions as an admin sees them.
            let passwords = &written["passwords"];
            let password = |who: &str| passwords[who].as_str().expect("password").to_string();
            let admin = token_response(app.login("admin", &password("admin")).await)
                .await
                .access_token;
            let ids = &written["ids"];
            let tenant = ids["tenant"].as_str().expect("tenant id");
            let alice = ids["alice"].as_str().expect("alice id");
            // The fixture's last request, a login of alice's (its claims are below), came after
            // her sessions were listed: it is the one session more.
            let recorded = expected["login_claims"].as_str().expect("login_claims");
            let recorded = jwt_claims(&format!("x.{recorded}.x"));
            let mut sessions = answer(
                app.request(Method::GET, &format!("/admin/users/{alice}"), Some(&admin))
                    .await,
            )
            .await;
            let listed = sessions["body"]["sessions"]
                .as_array_mut()
                .expect("sessions");
            let before = listed.len();
            listed.retain(|session| session["id"] != recorded["sid"]);
            assert_eq!(listed.len() + 1, before, "the last login's session is kept");
            same("alice_sessions", &sessions);
            for (name, path) in [
                ("users", "/admin/users".to_string()),
                ("tenants", "/admin/tenants".to_string()),
                ("services", "/admin/services".to_string()),
                (
                    "invitations",
                    format!("/admin/tenants/{tenant}/invitations"),
                ),
            ] {
                same(
                    name,
                    &answer(app.request(Method::GET, &path, Some(&admin)).await).await,
                );
            }

            // Logging in with the stored password hash mints the same claims.
            let login = token_response(app.login("alice", &password("alice")).await).await;
            assert_eq!(
                lasting_claims(&jwt_claims(&login.access_token)),
                lasting_claims(&recorded),
                "{}: a login's claims",
                fixture.display()
            );

            // Live refresh tokens rotate, with the claims the session had.
            for who in ["alice_second", "bob"] {
                let refreshed =
                    token_response(app.refresh(&token(who, "refresh_token")).await).await;
                assert_eq!(
                    lasting_claims(&jwt_claims(&refreshed.access_token)),
                    lasting_claims(&jwt_claims(&token(who, "access_token"))),
                    "{}: {who}'s refreshed claims",
                    fixture.display()
                );
            }

            // The outstanding invitation admits a new member of the tenant.
            let code = written["invitation_code"]
                .as_str()
                .expect("invitation code");
            let joined = app
                .post_json(
                    "/auth/register",
                    &json!({"username": "dave", "password": "fixture dave password 1", "invitation": code}),
                )
                .await;
            let joined = crate::helpers::json_response(joined, 201).await;
            assert_eq!(joined["user"]["tenant"], tenant, "{}", fixture.display());
        }
    }
}
