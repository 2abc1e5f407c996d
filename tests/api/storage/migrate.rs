//! `claimd migrate --from sled --to postgres` with the real binary: a server on sled hands
//! out tokens, stops; the store moves; a server on PostgreSQL with the same settings honours
//! everything issued before the move (tokens, revocations, refresh rotation and reuse
//! detection, passwords, tenants, keys, service credentials, invitations). A second move
//! into the now non-empty database is refused with one line and changes nothing.
//!
//! Needs a PostgreSQL cluster (`.ci/postgres`); without one each test says so and returns.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::backend;
use crate::helpers::{
    assert_problem, assert_token_error, claimd_command, json_response, refresh_parts, run_to_exit,
    token_response, workdir, Caller, ClaimdProcess, ADMIN, ADMIN_PASSWORD, PASSWORD,
};

/// The refresh-reuse grace of every server here: short, so a replay can outwait it.
const GRACE: Duration = Duration::from_secs(1);

/// A `claimd` command on the store at `data`, with the settings every run here shares
/// (issuer, bootstrap admin, grace), on sled whatever backend the suite runs on.
fn command(workdir: &Path, data: &Path) -> Command {
    let mut cmd = claimd_command(workdir);
    cmd.env("CLAIMD__STORAGE__PATH", data)
        .env("CLAIMD__STORAGE__BACKEND", "sled")
        .env_remove("CLAIMD__STORAGE__POSTGRES_URL")
        .env("CLAIMD__BOOTSTRAP__ADMIN_USERNAME", ADMIN)
        .env("CLAIMD__BOOTSTRAP__ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env(
            "CLAIMD__TOKENS__REFRESH_REUSE_GRACE",
            format!("{}s", GRACE.as_secs()),
        );
    cmd
}

/// `claimd migrate --from FROM --to TO` into the database `url`, to its end.
fn migrate(workdir: &Path, data: &Path, url: &str, from: &str, to: &str) -> crate::helpers::Exit {
    let mut cmd = command(workdir, data);
    cmd.env("CLAIMD__STORAGE__POSTGRES_URL", url)
        .args(["migrate", "--from", from, "--to", to]);
    run_to_exit(cmd, Duration::from_secs(60))
}

/// The password in a `postgres://user:password@…` URL.
fn password_of(url: &str) -> Option<&str> {
    let credentials = url.split_once("://")?.1.split_once('@')?.0;
    credentials.split_once(':').map(|(_, password)| password)
}

/// Rows of every claimd table and the log's counter, read with `psql`.
fn table_state(url: &str) -> String {
    let out = Command::new("psql")
        .args([
            "-X",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            url,
            "-c",
            "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM tenants),
                    (SELECT count(*) FROM sessions), (SELECT count(*) FROM deny),
                    (SELECT count(*) FROM keys), (SELECT count(*) FROM services),
                    (SELECT count(*) FROM invitation_books),
                    (SELECT count(*) FROM invitation_codes),
                    (SELECT last FROM change_counter),
                    (SELECT string_agg(md5(record), ',' ORDER BY id) FROM sessions),
                    (SELECT string_agg(md5(record), ',' ORDER BY id) FROM users)",
        ])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The key ids a JWKS publishes, sorted.
fn kids(jwks: &Value) -> Vec<String> {
    let mut kids: Vec<String> = jwks["keys"]
        .as_array()
        .expect("a JWKS has keys")
        .iter()
        .map(|key| key["kid"].as_str().expect("a kid").to_string())
        .collect();
    kids.sort();
    kids
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn a_sled_store_moved_to_postgres_keeps_every_token_session_and_tenant() {
    let (dir, data) = workdir();

    // Before: a server on sled.
    let sled = ClaimdProcess::start(command(dir.path(), &data));
    let app = sled.app();
    let admin = app.login_ok(ADMIN, ADMIN_PASSWORD).await;
    let tenant = app
        .create_tenant_ok(
            &admin.access_token,
            &json!({"name": "Acme", "max_accounts": 5}),
        )
        .await;
    let tenant_id = tenant["id"].as_str().expect("tenant id").to_string();
    let resp = app
        .patch_tenant(&admin.access_token, &tenant_id, &json!({"plan": "gold"}))
        .await;
    json_response(resp, 200).await;
    let resp = app
        .register_in_tenant(&admin.access_token, "carol", PASSWORD, &tenant_id)
        .await;
    json_response(resp, 201).await;
    let carol = app.login_ok("carol", PASSWORD).await;
    let (_, alice_first) = app.signed_up("alice").await;
    let alice = token_response(app.refresh(alice_first.refresh()).await).await;
    app.register_ok("bob", PASSWORD).await;
    let bob_kept = app.login_ok("bob", PASSWORD).await;
    let bob_gone = app.login_ok("bob", PASSWORD).await;
    assert_eq!(
        app.logout(&bob_gone.access_token).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_token_error(app.me(&bob_gone.access_token).await, "token_revoked").await;
    let service = app.create_service_ok(&admin.access_token, "billing").await;
    let invitation = app
        .create_invitation_ok(&admin.access_token, &tenant_id, None)
        .await;
    let code = invitation["code"]
        .as_str()
        .expect("invitation code")
        .to_string();
    let tenant_before = app.get_tenant_ok(&admin.access_token, &tenant_id).await;
    assert_eq!(tenant_before["members"], json!(1));
    assert_eq!(tenant_before["version"], json!(2));
    let jwks_before = app.jwks_ok().await;
    let (status, _, stderr) = sled.terminate(Duration::from_secs(20));
    assert!(
        status.is_some_and(|status| status.success()),
        "the sled server stops cleanly: {stderr}"
    );

    // The move.
    let url = backend::postgres_url_for(&dir.path().join("moved"));
    let moved = migrate(dir.path(), &data, &url, "sled", "postgres");
    assert!(
        moved.status.is_some_and(|status| status.success()),
        "migrate succeeds: {moved:?}"
    );
    let summary: Vec<&str> = moved
        .stdout
        .lines()
        .filter(|line| line.contains("moved to PostgreSQL"))
        .collect();
    assert_eq!(summary.len(), 1, "one summary line: {}", moved.stdout);
    for counted in [
        "users 4,",
        "tenants 1,",
        "keys 1,",
        "services 1,",
        "invitation books 1,",
        "invitation codes 1;",
    ] {
        assert!(summary[0].contains(counted), "{counted}: {}", summary[0]);
    }
    // Bob's ended session may already have been evicted; its deny entry may not.
    assert!(
        summary[0].contains("sessions 4,") || summary[0].contains("sessions 5,"),
        "{}",
        summary[0]
    );
    assert!(!summary[0].contains("deny entries 0,"), "{}", summary[0]);
    if let Some(password) = password_of(&url) {
        assert!(
            !moved.stdout.contains(password) && !moved.stderr.contains(password),
            "the database password is never printed"
        );
    }
    for secret in [service.client_secret.as_str(), code.as_str(), PASSWORD] {
        assert!(!moved.stdout.contains(secret) && !moved.stderr.contains(secret));
    }

    // After: a server on PostgreSQL with the same settings.
    let mut cmd = command(dir.path(), &data);
    cmd.env("CLAIMD__STORAGE__BACKEND", "postgres")
        .env("CLAIMD__STORAGE__POSTGRES_URL", &url)
        .env("CLAIMD__STORAGE__POSTGRES_POOL", "4");
    let pg = ClaimdProcess::start(cmd);
    let app = pg.app();

    assert_eq!(kids(&app.jwks_ok().await), kids(&jwks_before));
    for token in [&alice, &carol, &bob_kept, &admin] {
        assert_eq!(
            app.me(&token.access_token).await.status(),
            StatusCode::OK,
            "a token issued on sled verifies on PostgreSQL"
        );
    }
    assert_token_error(app.me(&bob_gone.access_token).await, "token_revoked").await;
    assert_problem(app.refresh(bob_gone.refresh()).await, 400, "invalid_grant").await;
    let introspected = app
        .introspect_ok(
            Caller::Basic(&service.client_id, &service.client_secret),
            &carol.access_token,
        )
        .await;
    assert_eq!(introspected["active"], json!(true), "{introspected}");

    // The refresh token still rotates, and its predecessor replayed past the grace window
    // is reuse: the family is revoked.
    let alice_next = token_response(app.refresh(alice.refresh()).await).await;
    assert_eq!(alice_next.session_id, alice.session_id);
    assert_eq!(refresh_parts(alice_next.refresh()).1, 3);
    assert_eq!(
        app.me(&alice_next.access_token).await.status(),
        StatusCode::OK
    );
    tokio::time::sleep(GRACE + Duration::from_millis(300)).await;
    assert_problem(app.refresh(alice.refresh()).await, 400, "invalid_grant").await;
    assert_problem(
        app.refresh(alice_next.refresh()).await,
        400,
        "invalid_grant",
    )
    .await;
    assert_token_error(app.me(&alice_next.access_token).await, "token_revoked").await;

    // Passwords, the tenant and its invitation came along.
    for name in ["alice", "bob", "carol"] {
        app.login_ok(name, PASSWORD).await;
    }
    let admin = app.login_ok(ADMIN, ADMIN_PASSWORD).await;
    assert_eq!(
        app.get_tenant_ok(&admin.access_token, &tenant_id).await,
        tenant_before
    );
    let resp = app.register_with_invitation("dave", PASSWORD, &code).await;
    json_response(resp, 201).await;
    let tenant_after = app.get_tenant_ok(&admin.access_token, &tenant_id).await;
    assert_eq!(tenant_after["members"], json!(2));

    // A second move into the database, now holding a store, is refused and changes nothing.
    let before = table_state(&url);
    let again = migrate(dir.path(), &data, &url, "sled", "postgres");
    assert!(
        again.status.is_some_and(|status| !status.success()),
        "a second migrate fails: {again:?}"
    );
    let refusal: Vec<&str> = again.stderr.lines().collect();
    assert_eq!(refusal.len(), 1, "one line: {}", again.stderr);
    assert!(
        refusal[0].starts_with("claimd: ")
            && refusal[0].contains("already holds a claimd store")
            && refusal[0].contains("migrate only into an empty one"),
        "{}",
        refusal[0]
    );
    assert_eq!(table_state(&url), before);
    assert_eq!(
        app.me(&carol.access_token).await.status(),
        StatusCode::OK,
        "the running node is undisturbed"
    );
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn other_directions_are_refused_with_one_line() {
    let (dir, data) = workdir();
    crate::helpers::init_store(&data);
    let url = backend::postgres_url_for(&dir.path().join("untouched"));

    for (from, to) in [("postgres", "sled"), ("sled", "sled"), ("sled", "mysql")] {
        let exit = migrate(dir.path(), &data, &url, from, to);

        assert!(
            exit.status.is_some_and(|status| !status.success()),
            "--from {from} --to {to} fails: {exit:?}"
        );
        let lines: Vec<&str> = exit.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line: {}", exit.stderr);
        assert!(
            lines[0].contains("--from sled --to postgres only"),
            "{}",
            lines[0]
        );
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn a_path_holding_no_store_is_refused_and_nothing_is_created() {
    let (dir, data) = workdir();
    let url = backend::postgres_url_for(&dir.path().join("untouched"));

    let exit = migrate(dir.path(), &data, &url, "sled", "postgres");

    assert!(
        exit.status.is_some_and(|status| !status.success()),
        "{exit:?}"
    );
    assert!(exit.stderr.contains("no claimd store there"), "{exit:?}");
    assert!(!data.exists(), "no store was created at storage.path");
}
