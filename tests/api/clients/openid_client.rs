//! claimd's token, introspection and revocation endpoints driven by openid-client 6
//! (panva's OAuth 2.0 client for Node, `tests/oauth_client/openid_client.mjs`), beside the
//! Authlib test in `token_endpoint`: discovery with the issuer check, a public client's
//! refresh, `client_credentials` by `client_secret_basic` and `client_secret_post`,
//! introspection, revocation by the service and by the holder, and RFC 6749 §5.2 errors,
//! which openid-client reads only from an `application/json` body (`invalid_grant`,
//! `invalid_scope`, `unsupported_grant_type`, `invalid_client` at all three endpoints, each
//! with claimd's `code`, `title`, `status` and `detail` too), and discovery's `audience`
//! matching the tokens' `aud`. Afterwards claimd itself confirms what the library got.
//!
//! `#[ignore = "needs openid-client"]`: `.ci/run` installs it with `npm ci` in
//! `tests/oauth_client` (its `package-lock.json` pins it) and runs `--include-ignored`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{
    inactive, jwt_claims, refresh_parts, require, run_to_exit, spawn_app_on_issuer, token_response,
    Caller, ADMIN, ADMIN_PASSWORD,
};

const NODE_TIMEOUT: Duration = Duration::from_secs(90);

/// `tests/oauth_client`: the script, its `package.json` and, after `npm ci`, `node_modules`.
fn client_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oauth_client")
}

/// Fails, saying how to install it, unless Node and the locked openid-client are there.
fn require_openid_client() {
    let node = Command::new("node")
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    require("node (20 or later)", node);
    let package = client_dir().join("node_modules/openid-client/package.json");
    assert!(
        package.is_file(),
        "openid-client is needed by this test (run by `--include-ignored`) and {} is missing: \
         run `npm ci` in tests/oauth_client (`.ci/run` does)",
        package.display()
    );
}

/// The script's `name=value` lines.
fn printed(stdout: &str) -> HashMap<&str, &str> {
    stdout
        .lines()
        .filter_map(|line| line.split_once('='))
        .collect()
}

#[tokio::test]
#[ignore = "needs openid-client"]
async fn openid_client_refreshes_fetches_introspects_revokes_and_reads_the_errors() {
    require_openid_client();
    // The issuer is the server's real URL: openid-client checks discovery's `issuer`
    // against the URL it was given.
    let app = spawn_app_on_issuer(|s| {
        s.bootstrap.admin_username = Some(ADMIN.to_string());
        s.bootstrap.admin_password = Some(ADMIN_PASSWORD.into());
    })
    .await;
    let admin = app.login_ok(ADMIN, ADMIN_PASSWORD).await;
    let svc = app
        .create_service_ok(&admin.access_token, "openid-client")
        .await;
    let (user, login) = app.signed_up("alice").await;

    let mut cmd = Command::new("node");
    cmd.current_dir(client_dir())
        .arg(client_dir().join("openid_client.mjs"))
        .args([
            app.address.as_str(),
            login.refresh(),
            svc.client_id.as_str(),
            svc.client_secret.as_str(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for proxy in [
        "http_proxy",
        "HTTP_PROXY",
        "all_proxy",
        "ALL_PROXY",
        "NODE_USE_ENV_PROXY",
    ] {
        cmd.env_remove(proxy);
    }
    let exit = tokio::task::spawn_blocking(move || run_to_exit(cmd, NODE_TIMEOUT))
        .await
        .expect("node runs");
    assert_eq!(
        exit.status.and_then(|s| s.code()),
        Some(0),
        "the openid-client script succeeds:\n--- stderr\n{}\n--- stdout\n{}",
        exit.stderr,
        exit.stdout
    );

    let lines = printed(&exit.stdout);
    let line = |name: &str| -> &str {
        lines
            .get(name)
            .copied()
            .unwrap_or_else(|| panic!("the script prints {name}=…: {exit:?}"))
    };

    // The rotated refresh token openid-client kept is the session's current one: it
    // refreshes again, although the access token that came with it was revoked.
    let rotated = line("rotated_refresh_token");
    let (sid, generation, _) = refresh_parts(rotated);
    assert_eq!(sid, refresh_parts(login.refresh()).0, "same session");
    assert_eq!(generation, 2, "rotated once");
    let again = token_response(app.refresh(rotated).await).await;
    assert_eq!(refresh_parts(again.refresh()).1, 3);

    // The user's access token it revoked as a public client is the user's, and dead.
    let user_access = line("user_access_token");
    assert_eq!(jwt_claims(user_access)["sub"], user["id"], "{user}");
    let by_admin = Caller::Bearer(&admin.access_token);
    assert_eq!(app.introspect_ok(by_admin, user_access).await, inactive());
    assert_eq!(app.me(user_access).await.status(), StatusCode::UNAUTHORIZED);

    // The service token it revoked is the service's, and dead; the other one is active
    // until claimd is asked to revoke it too.
    let revoked = line("revoked_service_token");
    assert_eq!(jwt_claims(revoked)["client_id"], json!(svc.client_id));
    assert_eq!(app.introspect_ok(by_admin, revoked).await, inactive());
    let service_token = line("service_token");
    let answer = app.introspect_ok(by_admin, service_token).await;
    assert_eq!(answer["active"], json!(true), "{answer}");
    assert_eq!(answer["client_id"], json!(svc.client_id), "{answer}");
    app.revoke_ok(Caller::Anonymous, service_token).await;
    assert_eq!(app.introspect_ok(by_admin, service_token).await, inactive());
}
