//! No secret reaches the logs, even at `RUST_LOG=trace`. The real binary runs as a child
//! process with every target at trace level (claimd's own, actix-web's, sled's), and the
//! test drives every flow that handles a secret through it: a key import, the bootstrap
//! admin, register (also with an invitation), a failed and a good login, both kinds of
//! refresh, `PATCH /me`, a password change, a service credential, introspection and
//! revocation with it, forward-auth with a Bearer token and a cookie, and logout. Then
//! everything the processes wrote is searched for each password, token, client secret,
//! invitation code and private-key PEM line that was used.
//!
//! The flows log the secret-bearing answers at trace level on purpose (`token answer`,
//! `registration asked`, `token accepted`, ...): their `Debug` must be the redacted one,
//! and this test is what holds it there.

use std::path::Path;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{
    claimd_command, header_str, init_store, json_response, refreshed_response, run_to_exit,
    token_response, workdir, ClaimdProcess, Tokens, REFRESHED_TOKEN,
};

const EXIT_TIMEOUT: Duration = Duration::from_secs(60);
const BOOTSTRAP_PASSWORD: &str = "Bootstrap-passphrase-7f3a";
const ALICE_PASSWORD: &str = "Alice-first-passphrase-91c2";
const ALICE_NEW_PASSWORD: &str = "Alice-second-passphrase-4e8d";
const WRONG_PASSWORD: &str = "Wrong-guess-passphrase-0b6f";
const BOB_PASSWORD: &str = "Bob-invited-passphrase-3d5a";

/// Every secret the run used, with what it is (for the failure message).
#[derive(Default)]
struct Secrets(Vec<(String, String)>);

impl Secrets {
    /// A secret as text, and as the byte list `{:?}` prints for `&[u8]` (sled logs its keys
    /// that way at trace level).
    fn add(&mut self, what: &str, secret: &str) {
        assert!(secret.len() >= 16, "{what} is too short to search for");
        self.0.push((what.to_string(), secret.to_string()));
        let bytes = format!("{:?}", secret.as_bytes());
        let inner = bytes.trim_start_matches('[').trim_end_matches(']');
        self.0
            .push((format!("{what} (as bytes)"), inner.to_string()));
    }

    /// A JWT, and its signature alone (a log that cut the token short still leaks it).
    fn add_jwt(&mut self, what: &str, token: &str) {
        self.add(what, token);
        let signature = token.rsplit('.').next().unwrap_or_default();
        self.add(&format!("{what} (signature)"), signature);
    }

    /// A refresh token, and its MAC alone.
    fn add_refresh(&mut self, what: &str, token: &str) {
        self.add(what, token);
        let mac = token.rsplit('.').next().unwrap_or_default();
        self.add(&format!("{what} (MAC)"), mac);
    }

    fn add_tokens(&mut self, what: &str, tokens: &Tokens) {
        self.add_jwt(&format!("{what}: access token"), &tokens.access_token);
        if let Some(refresh) = &tokens.refresh_token {
            self.add_refresh(&format!("{what}: refresh token"), refresh);
        }
    }

    /// Asserts none of the secrets occurs in `logs`, naming the lines that carry one.
    fn assert_absent_from(&self, logs: &str) {
        let leaks: Vec<String> = self
            .0
            .iter()
            .filter(|(_, secret)| logs.contains(secret.as_str()))
            .map(|(what, secret)| {
                let line = logs
                    .lines()
                    .find(|line| line.contains(secret.as_str()))
                    .unwrap_or_default();
                format!("{what} in: {line}")
            })
            .collect();
        assert!(
            leaks.is_empty(),
            "secrets in the logs:\n{}",
            leaks.join("\n")
        );
    }
}

/// `claimd keys import FILE --kid imported` at trace level; returns everything it wrote.
fn import_key(dir: &Path, data: &Path, pem: &str) -> String {
    let file = dir.join("imported.pem");
    std::fs::write(&file, pem).expect("write the key file");
    let mut cmd = claimd_command(dir);
    cmd.env("CLAIMD__STORAGE__PATH", data)
        .env("RUST_LOG", "trace")
        .args(["keys", "import"])
        .arg(&file)
        .args(["--kid", "imported"]);
    let exit = run_to_exit(cmd, EXIT_TIMEOUT);
    assert!(
        exit.status.is_some_and(|s| s.success()),
        "keys import: {exit:?}"
    );
    std::fs::remove_file(&file).expect("remove the key file");
    format!("{}{}", exit.stdout, exit.stderr)
}

#[tokio::test]
async fn no_secret_reaches_the_logs_at_trace_level() {
    let mut secrets = Secrets::default();
    for password in [
        BOOTSTRAP_PASSWORD,
        ALICE_PASSWORD,
        ALICE_NEW_PASSWORD,
        WRONG_PASSWORD,
        BOB_PASSWORD,
    ] {
        secrets.add("a password", password);
    }

    let (dir, data) = workdir();
    init_store(&data);
    let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let pem = key
        .to_pkcs8_pem(Default::default())
        .expect("PKCS#8 PEM")
        .to_string();
    for line in pem.lines().filter(|line| !line.starts_with("-----")) {
        secrets.add("the imported private key's PEM", line);
    }
    let mut logs = import_key(dir.path(), &data, &pem);

    let mut cmd = claimd_command(dir.path());
    cmd.env("CLAIMD__STORAGE__PATH", &data)
        .env("RUST_LOG", "trace")
        .env("CLAIMD__BOOTSTRAP__ADMIN_USERNAME", "root")
        .env("CLAIMD__BOOTSTRAP__ADMIN_PASSWORD", BOOTSTRAP_PASSWORD)
        .env("CLAIMD__CLAIMS__SELF_SERVICE__PLAN", "free,premium");
    let server = ClaimdProcess::start(cmd);
    let app = server.app();

    // Accounts and sessions.
    app.register_ok("alice", ALICE_PASSWORD).await;
    let failed = app.login("alice", WRONG_PASSWORD).await;
    assert_eq!(failed.status(), 401, "a wrong password is refused");
    let login = app.login_ok("alice", ALICE_PASSWORD).await;
    secrets.add_tokens("login", &login);
    let rotated = token_response(app.refresh(login.refresh()).await).await;
    secrets.add_tokens("refresh", &rotated);
    let reminted = token_response(app.refresh_with_access(&rotated.access_token).await).await;
    secrets.add_tokens("refresh with an access token", &reminted);
    let patched = app
        .patch_me(&reminted.access_token, &json!({"plan": "premium"}))
        .await;
    let header = header_str(patched.headers(), REFRESHED_TOKEN).unwrap_or_default();
    let (_, changed) = refreshed_response(patched).await;
    secrets.add_jwt("PATCH /me: X-Refreshed-Token", &header);
    secrets.add_jwt("PATCH /me: token", &changed);
    let password_changed = token_response(
        app.change_password(&changed, ALICE_PASSWORD, ALICE_NEW_PASSWORD)
            .await,
    )
    .await;
    secrets.add_tokens("password change", &password_changed);
    let alice = app.login_ok("alice", ALICE_NEW_PASSWORD).await;
    secrets.add_tokens("login with the new password", &alice);

    // The bootstrap admin, a tenant and an invitation.
    let admin = app.login_ok("root", BOOTSTRAP_PASSWORD).await;
    secrets.add_tokens("the bootstrap admin's login", &admin);
    let tenant = app
        .create_tenant_ok(&admin.access_token, &json!({"name": "acme"}))
        .await;
    let tenant = tenant["id"].as_str().expect("tenant id").to_string();
    let invitation = app
        .create_invitation_ok(&admin.access_token, &tenant, None)
        .await;
    let code = invitation["code"].as_str().expect("invitation code");
    secrets.add("an invitation code", code);
    let bob = app
        .register_with_invitation("bob", BOB_PASSWORD, code)
        .await;
    json_response(bob, 201).await;

    // A service credential, introspection and revocation with it.
    let service = app
        .create_service_ok(&admin.access_token, "resource-server")
        .await;
    secrets.add("a client secret", &service.client_secret);
    let basic = STANDARD.encode(format!("{}:{}", service.client_id, service.client_secret));
    secrets.add("a Basic credential", &basic);
    let active = app
        .introspect_ok(service.caller(), &alice.access_token)
        .await;
    assert_eq!(active["active"], json!(true), "{active}");
    let active = app.introspect_ok(service.caller(), alice.refresh()).await;
    assert_eq!(active["active"], json!(true), "{active}");
    app.revoke_ok(service.caller(), password_changed.refresh())
        .await;

    // Forward-auth, with the token as Bearer and as cookie; then logout.
    assert_eq!(app.verify(Some(&alice.access_token)).await.status(), 200);
    let cookie = format!("access_token={}", alice.access_token);
    let resp = app.verify_with(Method::GET, &[("cookie", &cookie)]).await;
    assert_eq!(resp.status(), 200, "the cookie verifies");
    assert_eq!(app.logout(&alice.access_token).await.status(), 204);

    let (status, stdout, stderr) = server.terminate(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "clean stop\n{stderr}");
    logs.push_str(&stdout);
    logs.push_str(&stderr);

    // The logs really were at trace level, from claimd and from the HTTP server, so an
    // empty search proves something.
    for expected in [
        "TRACE",
        "token answer",
        "registration asked",
        "token accepted",
    ] {
        assert!(
            logs.contains(expected),
            "the logs hold {expected:?} ({} bytes of logs)",
            logs.len()
        );
    }
    secrets.assert_absent_from(&logs);
}
