//! `claimd keys import FILE [--kid KID]`: an existing private key (PKCS#8 PEM or a private
//! JWK) joins the ring and signs from then on. With a key claimd trusts, the tests mint
//! validly signed tokens themselves: a well-formed one carrying a real user's claims is
//! accepted (the key really is trusted), and every hostile variant signed with the same key —
//! `crit`, duplicate header members, nested JWTs, a wrong `typ`, key-fetching headers, a
//! missing `exp`, `iat`/`nbf` in the future, a wrong `aud` or `iss` — is `401 token_invalid`.
//! A file that is not a key of the configured algorithm is refused with one line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::{Signer, SigningKey};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Response, StatusCode};
use serde_json::{json, Map, Value};
use tempfile::TempDir;

use crate::helpers::{
    assert_token_error, assert_token_error_any, b64url, claimd_command, header_str, init_store,
    json_response, jwks_kids, jwt_kid, now_unix, run_to_exit, workdir, ClaimdProcess, Exit,
    TestApp, Tokens, ADMIN, ADMIN_PASSWORD, PASSWORD,
};

const EXIT_TIMEOUT: Duration = Duration::from_secs(60);
const KID: &str = "hostile";

fn new_key() -> SigningKey {
    SigningKey::generate(&mut rand::rngs::OsRng)
}

fn pem_of(key: &SigningKey) -> String {
    key.to_pkcs8_pem(Default::default())
        .expect("PKCS#8 PEM")
        .to_string()
}

/// `claimd keys import FILE [--kid KID]` on `data`.
fn keys_import(dir: &Path, data: &Path, file: &Path, kid: Option<&str>) -> Exit {
    let mut cmd = claimd_command(dir);
    cmd.env("CLAIMD__STORAGE__PATH", data)
        .args(["keys", "import"])
        .arg(file);
    if let Some(kid) = kid {
        cmd.args(["--kid", kid]);
    }
    run_to_exit(cmd, EXIT_TIMEOUT)
}

fn assert_success(exit: &Exit) {
    assert!(
        exit.status.is_some_and(|s| s.success()),
        "keys import failed: {exit:?}"
    );
}

/// Non-zero exit (not a signal, no panic) with exactly one line on stderr; returns it.
fn assert_one_line_failure(exit: &Exit) -> String {
    let status = exit
        .status
        .unwrap_or_else(|| panic!("still running after {EXIT_TIMEOUT:?}: {exit:?}"));
    assert!(!status.success(), "keys import succeeded: {exit:?}");
    assert!(status.code().is_some(), "died from a signal: {exit:?}");
    assert!(
        !exit.stderr.contains("panicked") && !exit.stdout.contains("panicked"),
        "panicked: {exit:?}"
    );
    let lines: Vec<&str> = exit
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(lines.len(), 1, "exactly one line on stderr: {exit:?}");
    lines[0].to_string()
}

/// A claimd whose ring holds `key` as [`KID`] (imported before first start), with alice
/// registered and logged in.
struct Imported {
    _dir: TempDir,
    _server: ClaimdProcess,
    app: TestApp,
    key: SigningKey,
    alice: Tokens,
}

impl Imported {
    async fn start() -> Imported {
        let key = new_key();
        let (dir, data) = workdir();
        init_store(&data);
        let file = dir.path().join("key.pem");
        std::fs::write(&file, pem_of(&key)).expect("write key.pem");
        assert_success(&keys_import(dir.path(), &data, &file, Some(KID)));
        let server = ClaimdProcess::start_on(dir.path(), &data);
        let app = server.app();
        let (_, alice) = app.signed_up("alice").await;
        Imported {
            _dir: dir,
            _server: server,
            app,
            key,
            alice,
        }
    }

    /// alice's real claims, freshly dated, with a new `jti`.
    fn claims(&self) -> Map<String, Value> {
        let mut claims = self
            .alice
            .claims()
            .as_object()
            .expect("claims object")
            .clone();
        let now = now_unix();
        claims.insert("iat".into(), json!(now));
        claims.insert("exp".into(), json!(now + 300));
        claims.insert("jti".into(), json!(uuid::Uuid::now_v7().to_string()));
        claims
    }

    fn claims_with(&self, edit: impl FnOnce(&mut Map<String, Value>)) -> Value {
        let mut claims = self.claims();
        edit(&mut claims);
        Value::Object(claims)
    }

    /// Signs `header_text.payload_text` (both exactly as given) with the imported key.
    fn sign_raw(&self, header_text: &str, payload: &[u8]) -> String {
        sign_raw(&self.key, header_text, payload)
    }

    /// A compact JWS of `header` and `claims` signed with the imported key.
    fn sign(&self, header: &Value, claims: &Value) -> String {
        self.sign_raw(&header.to_string(), claims.to_string().as_bytes())
    }

    /// alice's claims under a good header with `edit` applied to it.
    fn with_header(&self, edit: impl FnOnce(&mut Map<String, Value>)) -> String {
        let mut header = good_header();
        edit(header.as_object_mut().unwrap());
        self.sign(&header, &Value::Object(self.claims()))
    }

    async fn assert_refused(&self, token: &str, what: &str) {
        let resp = self.app.me(token).await;
        assert_not_ok(&resp, what);
        assert_token_error(resp, "token_invalid").await;
        assert_token_error(self.app.verify(Some(token)).await, "token_invalid").await;
    }

    async fn assert_accepted(&self, token: &str, what: &str) {
        let resp = self.app.me(token).await;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        assert_eq!(status, StatusCode::OK, "{what} is accepted: {text}");
        let body: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(body["user"]["id"], self.alice.claims()["sub"], "{what}");
    }
}

fn sign_raw(key: &SigningKey, header_text: &str, payload: &[u8]) -> String {
    let input = format!("{}.{}", b64url(header_text.as_bytes()), b64url(payload));
    let signature = key.sign(input.as_bytes());
    format!("{input}.{}", b64url(&signature.to_bytes()))
}

fn good_header() -> Value {
    json!({"alg": "EdDSA", "typ": "at+jwt", "kid": KID})
}

fn assert_not_ok(resp: &Response, what: &str) {
    assert_ne!(resp.status(), StatusCode::OK, "{what} was accepted");
    assert_ne!(
        resp.status(),
        StatusCode::INTERNAL_SERVER_ERROR,
        "{what} caused a 500"
    );
}

#[tokio::test]
async fn imported_key_signs_and_is_published() {
    let imported = Imported::start().await;

    assert_eq!(
        jwt_kid(&imported.alice.access_token),
        KID,
        "the imported key signs from then on"
    );
    let jwks = imported.app.jwks_ok().await;
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == json!(KID))
        .unwrap_or_else(|| panic!("the JWKS publishes the imported key: {jwks}"))
        .clone();
    assert_eq!(jwk["kty"], json!("OKP"));
    assert_eq!(jwk["crv"], json!("Ed25519"));
    assert_eq!(
        jwk["x"],
        json!(b64url(imported.key.verifying_key().as_bytes())),
        "the published key is the imported one"
    );
    assert!(jwk.get("d").is_none(), "no private part: {jwk}");
}

#[tokio::test]
async fn a_well_formed_token_minted_with_the_imported_key_is_accepted() {
    let imported = Imported::start().await;
    let pem = pem_of(&imported.key);
    let mut header = Header::new(Algorithm::EdDSA);
    header.typ = Some("at+jwt".into());
    header.kid = Some(KID.into());
    let key = EncodingKey::from_ed_pem(pem.as_bytes()).expect("jsonwebtoken reads the PEM");

    let by_library = jsonwebtoken::encode(&header, &imported.claims(), &key).expect("encode");
    let by_hand = imported.sign(&good_header(), &Value::Object(imported.claims()));

    imported
        .assert_accepted(&by_library, "jsonwebtoken's token")
        .await;
    imported
        .assert_accepted(&by_hand, "a hand-signed token")
        .await;
    let resp = imported.app.verify(Some(&by_hand)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        header_str(resp.headers(), "x-auth-user").as_deref(),
        imported.alice.claims()["sub"].as_str()
    );
    // Within the 30s leeway, a slightly early iat is tolerated too.
    let early = imported.sign(
        &good_header(),
        &imported.claims_with(|c| {
            c.insert("iat".into(), json!(now_unix() + 10));
        }),
    );
    imported.assert_accepted(&early, "iat 10s ahead").await;
}

#[tokio::test]
async fn crit_headers_are_refused() {
    let imported = Imported::start().await;

    let exp = imported.with_header(|h| {
        h.insert("crit".into(), json!(["exp"]));
    });
    imported.assert_refused(&exp, "crit [exp]").await;
    let b64 = imported.with_header(|h| {
        h.insert("crit".into(), json!(["b64"]));
    });
    imported.assert_refused(&b64, "crit [b64]").await;
    let b64_false = imported.with_header(|h| {
        h.insert("crit".into(), json!(["b64"]));
        h.insert("b64".into(), json!(false));
    });
    imported
        .assert_refused(&b64_false, "crit [b64], b64 false")
        .await;
    let custom = imported.with_header(|h| {
        h.insert("crit".into(), json!(["x-custom"]));
        h.insert("x-custom".into(), json!(true));
    });
    imported.assert_refused(&custom, "crit [x-custom]").await;
}

#[tokio::test]
async fn duplicate_header_members_are_refused() {
    let imported = Imported::start().await;
    let payload = Value::Object(imported.claims()).to_string();

    for header in [
        r#"{"alg":"EdDSA","typ":"at+jwt","kid":"hostile","typ":"at+jwt"}"#,
        r#"{"alg":"EdDSA","typ":"at+jwt","kid":"other","kid":"hostile"}"#,
        r#"{"alg":"none","typ":"at+jwt","kid":"hostile","alg":"EdDSA"}"#,
        r#"{"alg":"EdDSA","typ":"JWT","kid":"hostile","typ":"at+jwt"}"#,
        r#"{"alg":"EdDSA","typ":"at+jwt","kid":"hostile","alg":"EdDSA"}"#,
    ] {
        let token = imported.sign_raw(header, payload.as_bytes());
        imported.assert_refused(&token, header).await;
    }
    // The same members once each: accepted (the refusals above are about the duplicates).
    let single = imported.sign_raw(
        r#"{"alg":"EdDSA","typ":"at+jwt","kid":"hostile"}"#,
        payload.as_bytes(),
    );
    imported
        .assert_accepted(&single, "the header without duplicates")
        .await;
}

#[tokio::test]
async fn nested_jwts_are_refused() {
    let imported = Imported::start().await;
    let inner = imported.sign(&good_header(), &Value::Object(imported.claims()));

    let mut cty = good_header();
    cty["cty"] = json!("JWT");
    let header_text = cty.to_string();
    let nested = imported.sign_raw(&header_text, inner.as_bytes());
    imported
        .assert_refused(&nested, "cty JWT around a JWT")
        .await;
    let bare = imported.sign_raw(&good_header().to_string(), inner.as_bytes());
    imported.assert_refused(&bare, "a JWT as the payload").await;
    let mut cty_lower = good_header();
    cty_lower["cty"] = json!("jwt");
    let nested_lower = imported.sign_raw(&cty_lower.to_string(), inner.as_bytes());
    imported
        .assert_refused(&nested_lower, "cty jwt around a JWT")
        .await;
}

/// Issue 9 item 8: a token claimd could have minted but for a header member claimd never
/// writes. `cty` over plain claims was accepted before; only `alg`, `typ` and `kid` are.
#[tokio::test]
async fn header_members_claimd_does_not_write_are_refused() {
    let imported = Imported::start().await;
    let plain = imported.with_header(|_| {});
    imported.assert_accepted(&plain, "the good header").await;

    for (name, value) in [
        ("cty", json!("JWT")),
        ("cty", json!("json")),
        ("x-custom", json!("anything")),
        ("b64", json!(true)),
        ("enc", json!("A256GCM")),
    ] {
        let token = imported.with_header(|h| {
            h.insert(name.into(), value.clone());
        });
        imported
            .assert_refused(&token, &format!("header {name}: {value}"))
            .await;
    }
}

#[tokio::test]
async fn only_typ_at_jwt_is_accepted() {
    let imported = Imported::start().await;

    for typ in [
        json!("JWT"),
        json!("application/at+jwt"),
        json!("AT+JWT"),
        json!("at+jwt "),
        json!("jwt"),
        json!(null),
    ] {
        let token = imported.with_header(|h| {
            h.insert("typ".into(), typ.clone());
        });
        imported.assert_refused(&token, &format!("typ {typ}")).await;
    }
    let no_typ = imported.with_header(|h| {
        h.remove("typ");
    });
    imported.assert_refused(&no_typ, "no typ").await;
}

#[tokio::test]
async fn key_fetching_headers_are_refused() {
    let imported = Imported::start().await;
    let public_jwk = json!({
        "kty": "OKP",
        "crv": "Ed25519",
        "x": b64url(imported.key.verifying_key().as_bytes()),
    });

    for (name, value) in [
        ("jwk", public_jwk),
        ("jku", json!("http://127.0.0.1:1/jwks.json")),
        ("x5u", json!("http://127.0.0.1:1/cert.pem")),
        (
            "x5c",
            json!(["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]),
        ),
    ] {
        let token = imported.with_header(|h| {
            h.insert(name.into(), value.clone());
        });
        imported
            .assert_refused(&token, &format!("header {name}"))
            .await;
    }
}

#[tokio::test]
async fn wrong_alg_or_kid_with_a_trusted_key_is_refused() {
    let imported = Imported::start().await;

    for alg in ["Ed25519", "ES256", "HS256", "none", "eddsa"] {
        let token = imported.with_header(|h| {
            h.insert("alg".into(), json!(alg));
        });
        imported.assert_refused(&token, &format!("alg {alg}")).await;
    }
    let unknown_kid = imported.with_header(|h| {
        h.insert("kid".into(), json!("not-a-key-we-hold"));
    });
    imported.assert_refused(&unknown_kid, "unknown kid").await;
    let no_kid = imported.with_header(|h| {
        h.remove("kid");
    });
    imported.assert_refused(&no_kid, "no kid").await;
}

#[tokio::test]
async fn registered_claim_violations_are_refused() {
    let imported = Imported::start().await;
    let now = now_unix();

    let cases: Vec<(&str, Value)> = vec![
        (
            "no exp",
            imported.claims_with(|c| {
                c.remove("exp");
            }),
        ),
        (
            "exp a string",
            imported.claims_with(|c| {
                c.insert("exp".into(), json!((now + 300).to_string()));
            }),
        ),
        (
            "iat 2 minutes ahead",
            imported.claims_with(|c| {
                c.insert("iat".into(), json!(now + 120));
            }),
        ),
        (
            "nbf 2 minutes ahead",
            imported.claims_with(|c| {
                c.insert("nbf".into(), json!(now + 120));
            }),
        ),
        (
            "aud other",
            imported.claims_with(|c| {
                c.insert("aud".into(), json!("other"));
            }),
        ),
        (
            "aud [other]",
            imported.claims_with(|c| {
                c.insert("aud".into(), json!(["other"]));
            }),
        ),
        (
            "no aud",
            imported.claims_with(|c| {
                c.remove("aud");
            }),
        ),
        (
            "iss evil",
            imported.claims_with(|c| {
                c.insert("iss".into(), json!("https://evil.example"));
            }),
        ),
        (
            "iss with a trailing slash",
            imported.claims_with(|c| {
                c.insert("iss".into(), json!("http://127.0.0.1:8080/"));
            }),
        ),
        (
            "no iss",
            imported.claims_with(|c| {
                c.remove("iss");
            }),
        ),
    ];
    for (what, claims) in cases {
        let token = imported.sign(&good_header(), &claims);
        imported.assert_refused(&token, what).await;
    }
}

#[tokio::test]
async fn expired_or_foreign_tokens_signed_with_the_trusted_key_are_refused() {
    let imported = Imported::start().await;
    let now = now_unix();

    let expired = imported.sign(
        &good_header(),
        &imported.claims_with(|c| {
            c.insert("iat".into(), json!(now - 600));
            c.insert("exp".into(), json!(now - 300));
        }),
    );
    assert_token_error(imported.app.me(&expired).await, "token_expired").await;

    let stranger = imported.sign(
        &good_header(),
        &imported.claims_with(|c| {
            c.insert("sub".into(), json!(uuid::Uuid::now_v7().to_string()));
            c.insert("sid".into(), json!(uuid::Uuid::now_v7().to_string()));
        }),
    );
    let resp = imported.app.me(&stranger).await;
    assert_not_ok(&resp, "a token for a user that does not exist");
    assert_token_error_any(resp, &["token_invalid", "token_revoked"]).await;

    // A trusted key does not make old claims current.
    let old_uv = imported.alice.claims()["uv"].as_u64().expect("uv");
    let stale = imported.sign(
        &good_header(),
        &imported.claims_with(|c| {
            c.insert("uv".into(), json!(old_uv.saturating_sub(1)));
        }),
    );
    assert_token_error(imported.app.me(&stale).await, "token_stale").await;

    // Nor does it bring a revoked session back.
    assert_eq!(
        imported
            .app
            .logout(&imported.alice.access_token)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    let after_logout = imported.sign(&good_header(), &Value::Object(imported.claims()));
    assert_token_error(imported.app.me(&after_logout).await, "token_revoked").await;
}

// ---- what can be imported ----

#[tokio::test]
async fn a_private_jwk_imports_with_its_own_kid() {
    let key = new_key();
    let (dir, data) = workdir();
    init_store(&data);
    let jwk = json!({
        "kty": "OKP",
        "crv": "Ed25519",
        "d": b64url(key.as_bytes()),
        "x": b64url(key.verifying_key().as_bytes()),
        "kid": "from-jwk",
    });
    let file = dir.path().join("key.jwk");
    std::fs::write(&file, jwk.to_string()).expect("write key.jwk");

    assert_success(&keys_import(dir.path(), &data, &file, None));

    let server = ClaimdProcess::start_on(dir.path(), &data);
    let app = server.app();
    let (_, alice) = app.signed_up("alice").await;
    assert_eq!(jwt_kid(&alice.access_token), "from-jwk");
    assert!(jwks_kids(&app.jwks_ok().await).contains(&"from-jwk".to_string()));
    let mut claims = alice.claims();
    claims["jti"] = json!(uuid::Uuid::now_v7().to_string());
    let header = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "from-jwk"});
    let minted = sign_raw(&key, &header.to_string(), claims.to_string().as_bytes());
    let body = json_response(app.me(&minted).await, 200).await;
    assert_eq!(body["user"]["id"], alice.claims()["sub"]);
}

#[tokio::test]
async fn import_keeps_the_old_key_verifying_for_a_migration() {
    let (dir, data) = workdir();
    init_store(&data);
    let server = ClaimdProcess::start_on(dir.path(), &data);
    let (_, before) = server.app().signed_up("alice").await;
    let (status, out, err) = server.terminate(Duration::from_secs(20));
    assert!(status.is_some(), "claimd stops on SIGTERM: {out}\n{err}");
    let file = dir.path().join("key.pem");
    std::fs::write(&file, pem_of(&new_key())).expect("write key.pem");

    assert_success(&keys_import(dir.path(), &data, &file, Some(KID)));

    let server = ClaimdProcess::start_on(dir.path(), &data);
    let app = server.app();
    let kids = jwks_kids(&app.jwks_ok().await);
    assert!(kids.contains(&KID.to_string()), "{kids:?}");
    assert!(kids.contains(&jwt_kid(&before.access_token)), "{kids:?}");
    assert_eq!(app.me(&before.access_token).await.status(), StatusCode::OK);
    let after = app.login_ok("alice", PASSWORD).await;
    assert_eq!(jwt_kid(&after.access_token), KID);
}

/// Writes `text` to a file in `dir`, runs the import, and checks it fails with one line and
/// leaves the store usable with its own single key.
async fn assert_import_refused(text: &[u8], name: &str) -> String {
    let (dir, data) = workdir();
    init_store(&data);
    let file: PathBuf = dir.path().join(name);
    std::fs::write(&file, text).expect("write key file");

    let line = assert_one_line_failure(&keys_import(dir.path(), &data, &file, Some(KID)));

    let server = ClaimdProcess::start_on(dir.path(), &data);
    let app = server.app();
    let kids = jwks_kids(&app.jwks_ok().await);
    assert_eq!(kids.len(), 1, "nothing was imported: {kids:?}");
    assert!(!kids.contains(&KID.to_string()), "{kids:?}");
    let (_, alice) = app.signed_up("alice").await;
    assert_ne!(jwt_kid(&alice.access_token), KID);
    line
}

#[tokio::test]
async fn importing_garbage_fails_with_one_line() {
    let line = assert_import_refused(b"this is not a key\n", "garbage.pem").await;

    assert!(!line.contains("panicked"), "{line}");
}

#[tokio::test]
async fn importing_a_truncated_pem_fails_with_one_line() {
    let pem = pem_of(&new_key());
    let truncated = &pem[..pem.len() / 2];

    assert_import_refused(truncated.as_bytes(), "truncated.pem").await;
}

#[tokio::test]
async fn importing_an_es256_key_into_an_eddsa_server_fails_with_one_line() {
    use p256::pkcs8::EncodePrivateKey as _;
    let es256 = p256::SecretKey::random(&mut rand::rngs::OsRng)
        .to_pkcs8_pem(Default::default())
        .expect("P-256 PKCS#8 PEM")
        .to_string();

    assert_import_refused(es256.as_bytes(), "es256.pem").await;
}

#[tokio::test]
async fn importing_a_public_key_fails_with_one_line() {
    let jwk = json!({
        "kty": "OKP",
        "crv": "Ed25519",
        "x": b64url(new_key().verifying_key().as_bytes()),
    });

    assert_import_refused(jwk.to_string().as_bytes(), "public.jwk").await;
}

#[tokio::test]
async fn importing_a_missing_file_fails_with_one_line() {
    let (dir, data) = workdir();
    init_store(&data);

    let exit = keys_import(dir.path(), &data, &dir.path().join("nope.pem"), None);

    let line = assert_one_line_failure(&exit);
    assert!(line.contains("nope.pem"), "names the file: {line}");
}

/// No token claimd mints lives longer than `tokens.access_ttl` (+ leeway): one signed with
/// a trusted key but an `exp` a year ahead would outlive its session's logout.
#[tokio::test]
async fn a_token_living_longer_than_the_access_ttl_is_refused() {
    let imported = Imported::start().await;
    let now = now_unix();
    let a_year = imported.sign(
        &good_header(),
        &imported.claims_with(|c| {
            c.insert("exp".into(), json!(now + 365 * 86_400));
        }),
    );
    imported.assert_refused(&a_year, "exp a year ahead").await;
    // 15 minutes (the default access_ttl) and the 30 s leeway are still a token claimd
    // could have minted.
    let at_the_cap = imported.sign(
        &good_header(),
        &imported.claims_with(|c| {
            c.insert("exp".into(), json!(now + 15 * 60 + 30));
        }),
    );
    imported
        .assert_accepted(&at_the_cap, "exp at access_ttl + leeway")
        .await;
}

/// A `tid` other than the user's tenant, with the user's current `uv`, was not minted by
/// claimd (a tenant move bumps `uv`): refused, like a `uv` from the future.
#[tokio::test]
async fn a_current_token_naming_another_tenant_is_refused() {
    let imported = Imported::start().await;
    let foreign = imported.sign(
        &good_header(),
        &imported.claims_with(|c| {
            c.insert("tid".into(), json!(uuid::Uuid::now_v7().to_string()));
            c.insert("tv".into(), json!(1));
        }),
    );
    imported
        .assert_refused(&foreign, "a tid not the user's")
        .await;
}

/// A `tv` above the tenant's current version is from the future: refused, not accepted.
#[tokio::test]
async fn a_tenant_version_from_the_future_is_refused() {
    let key = new_key();
    let (_dir, _server, app, admin) = with_admin_signing_with(&key).await;
    let tenant = app
        .create_tenant_ok(&admin.access_token, &json!({"name": "acme"}))
        .await;
    let tenant_id = tenant["id"].as_str().expect("tenant id").to_string();
    let resp = app
        .register_in_tenant(&admin.access_token, "carol", PASSWORD, &tenant_id)
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let carol = app.login_ok("carol", PASSWORD).await;
    let claims = carol.claims();
    assert_eq!(claims["tid"], json!(tenant_id));

    let mut ahead = claims.as_object().expect("claims").clone();
    let tv = ahead["tv"].as_u64().expect("tv");
    ahead.insert("tv".into(), json!(tv + 1));
    ahead.insert("jti".into(), json!(uuid::Uuid::now_v7().to_string()));
    let token = sign_raw(
        &key,
        &good_header().to_string(),
        Value::Object(ahead).to_string().as_bytes(),
    );
    let resp = app.me(&token).await;
    assert_token_error(resp, "token_invalid").await;
    let resp = app.me(&carol.access_token).await;
    assert_eq!(resp.status(), StatusCode::OK, "carol's own token is fine");
}

/// A claimd whose ring holds `key` as [`KID`], started with the bootstrap admin, and that
/// admin's tokens.
async fn with_admin_signing_with(key: &SigningKey) -> (TempDir, ClaimdProcess, TestApp, Tokens) {
    let (dir, data) = workdir();
    init_store(&data);
    let file = dir.path().join("key.pem");
    std::fs::write(&file, pem_of(key)).expect("write key.pem");
    assert_success(&keys_import(dir.path(), &data, &file, Some(KID)));
    let mut cmd = claimd_command(dir.path());
    cmd.env("CLAIMD__STORAGE__PATH", &data)
        .env("CLAIMD__BOOTSTRAP__ADMIN_USERNAME", ADMIN)
        .env("CLAIMD__BOOTSTRAP__ADMIN_PASSWORD", ADMIN_PASSWORD);
    let server = ClaimdProcess::start(cmd);
    let app = server.app();
    let admin = app.login_ok(ADMIN, ADMIN_PASSWORD).await;
    (dir, server, app, admin)
}

/// claimd-verify refuses the lives claimd refuses, with the cap claimd announces.
#[tokio::test]
async fn the_verifier_library_refuses_a_life_longer_than_claimd_issues() {
    let key = new_key();
    let (_dir, _server, app, admin) = with_admin_signing_with(&key).await;
    let service = app.create_service_ok(&admin.access_token, "verifier").await;
    let config = claimd_verify::VerifierConfig::builder(
        &app.address,
        service.client_id.clone(),
        service.client_secret.clone(),
    )
    .build()
    .expect("a valid configuration");
    let verifier = claimd_verify::Verifier::start(config)
        .await
        .expect("the verifier starts");
    let now = now_unix();
    let signed_with_life = |life: u64| {
        let mut claims = admin.claims().as_object().expect("claims").clone();
        claims.insert("iat".into(), json!(now));
        claims.insert("exp".into(), json!(now + life));
        claims.insert("jti".into(), json!(uuid::Uuid::now_v7().to_string()));
        sign_raw(
            &key,
            &good_header().to_string(),
            Value::Object(claims).to_string().as_bytes(),
        )
    };

    let a_year = verifier.verify(&signed_with_life(365 * 86_400)).await;
    let at_the_cap = verifier.verify(&signed_with_life(15 * 60 + 30)).await;

    assert_eq!(
        a_year
            .as_ref()
            .map_err(claimd_verify::VerifyError::code)
            .err(),
        Some("token_invalid"),
        "a year-long token: {a_year:?}"
    );
    assert!(at_the_cap.is_ok(), "access_ttl + leeway: {at_the_cap:?}");
}

/// Tests of the embedded store's own files (the data directory, its lock, a backup file):
/// nothing to test on PostgreSQL, so `.ci/run`'s PostgreSQL pass skips `::sled_files::`.
mod sled_files {
    use super::*;

    #[tokio::test]
    async fn import_refuses_a_data_dir_the_server_holds() {
        let (dir, data) = workdir();
        init_store(&data);
        let server = ClaimdProcess::start_on(dir.path(), &data);
        let file = dir.path().join("key.pem");
        std::fs::write(&file, pem_of(&new_key())).expect("write key.pem");

        let exit = keys_import(dir.path(), &data, &file, Some(KID));

        assert_one_line_failure(&exit);
        let app = server.app();
        assert!(!jwks_kids(&app.jwks_ok().await).contains(&KID.to_string()));
    }
}
