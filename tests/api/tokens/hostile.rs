//! Hostile and garbage access tokens: every header trick (alg none, HS256 with the public key,
//! wrong typ, key-fetching headers, unknown crit/kid), tampering, expiry, oversize tokens and
//! malformed `Authorization` headers must end in a 401 problem with a Bearer challenge —
//! never a 200, never a 500.

use std::time::Duration;

use hmac::{Hmac, Mac};
use reqwest::header::HeaderValue;
use reqwest::StatusCode;
use serde_json::{json, Map, Value};
use sha2::Sha256;

use crate::helpers::{
    assert_token_error, assert_token_error_any, b64url, b64url_decode, jwt_claims, jwt_header,
    spawn_app, spawn_app_on_clock, spawn_app_with, TestApp, PASSWORD,
};
use claimd::config::SigningAlgorithm;

fn segments(token: &str) -> (String, String, String) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    (parts[0].into(), parts[1].into(), parts[2].into())
}

fn encode_json(value: &Value) -> String {
    b64url(&serde_json::to_vec(value).unwrap())
}

/// The token with its header rewritten by `edit`; payload and signature kept.
fn with_header(token: &str, edit: impl FnOnce(&mut Map<String, Value>)) -> String {
    let (_, payload, signature) = segments(token);
    let mut header = jwt_header(token);
    edit(header.as_object_mut().expect("header is an object"));
    format!("{}.{payload}.{signature}", encode_json(&header))
}

/// The token with its claims rewritten by `edit`; header and signature kept.
fn with_claims(token: &str, edit: impl FnOnce(&mut Map<String, Value>)) -> String {
    let (header, _, signature) = segments(token);
    let mut claims = jwt_claims(token);
    edit(claims.as_object_mut().expect("claims are an object"));
    format!("{header}.{}.{signature}", encode_json(&claims))
}

fn hs256(header: &Value, payload_segment: &str, key: &[u8]) -> String {
    let signing_input = format!("{}.{payload_segment}", encode_json(header));
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("hmac accepts any key length");
    mac.update(signing_input.as_bytes());
    format!("{signing_input}.{}", b64url(&mac.finalize().into_bytes()))
}

async fn alice(app: &TestApp) -> String {
    app.signed_up("alice").await.1.access_token
}

/// The token must be refused on `/me` as `token_invalid`, and the genuine token still work.
async fn assert_refused(app: &TestApp, hostile: &str, what: &str) {
    let resp = app.me(hostile).await;
    assert_ne!(resp.status(), StatusCode::OK, "{what} was accepted");
    assert_ne!(
        resp.status(),
        StatusCode::INTERNAL_SERVER_ERROR,
        "{what} caused a 500"
    );
    assert_token_error(resp, "token_invalid").await;
}

#[tokio::test]
async fn genuine_token_is_accepted() {
    let app = spawn_app().await;
    let token = alice(&app).await;

    assert_eq!(app.me(&token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn alg_none_in_any_case_is_refused() {
    let app = spawn_app().await;
    let token = alice(&app).await;
    let (_, payload, signature) = segments(&token);

    for alg in ["none", "NONE", "nOnE", "None"] {
        let header = with_header(&token, |h| {
            h.insert("alg".into(), json!(alg));
        });
        let (header, _, _) = segments(&header);
        assert_refused(
            &app,
            &format!("{header}.{payload}."),
            &format!("alg {alg}, no sig"),
        )
        .await;
        assert_refused(
            &app,
            &format!("{header}.{payload}.{signature}"),
            &format!("alg {alg}, real sig"),
        )
        .await;
    }
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_refused() {
    let app = spawn_app().await;
    let token = alice(&app).await;
    let jwks = app.jwks_ok().await;
    let jwk = &jwks["keys"][0];
    let x_text = jwk["x"].as_str().expect("Ed25519 JWK has x");
    let x = b64url_decode(x_text);
    // SubjectPublicKeyInfo for Ed25519: fixed prefix then the 32 key bytes.
    let mut spki = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    spki.extend_from_slice(&x);
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &spki)
    );
    let jwk_text = serde_json::to_string(jwk).unwrap();
    let (_, payload, _) = segments(&token);
    let header = json!({"alg": "HS256", "typ": "at+jwt", "kid": jwt_header(&token)["kid"]});

    let keys: [(&str, &[u8]); 5] = [
        ("raw x", &x),
        ("x text", x_text.as_bytes()),
        ("spki der", &spki),
        ("pem", pem.as_bytes()),
        ("jwk json", jwk_text.as_bytes()),
    ];
    for (what, key) in keys {
        assert_refused(
            &app,
            &hs256(&header, &payload, key),
            &format!("HS256 with {what}"),
        )
        .await;
    }
}

#[tokio::test]
async fn wrong_or_missing_typ_is_refused() {
    let app = spawn_app().await;
    let token = alice(&app).await;

    for typ in [
        json!("JWT"),
        json!("jwt"),
        json!("at+jwt "),
        json!("application/jwt"),
        json!(1),
    ] {
        let forged = with_header(&token, |h| {
            h.insert("typ".into(), typ.clone());
        });
        assert_refused(&app, &forged, &format!("typ {typ}")).await;
    }
    let no_typ = with_header(&token, |h| {
        h.remove("typ");
    });
    assert_refused(&app, &no_typ, "no typ").await;
}

#[tokio::test]
async fn key_fetching_headers_are_refused() {
    let app = spawn_app().await;
    let token = alice(&app).await;
    let jwk = app.jwks_ok().await["keys"][0].clone();

    let extras = [
        ("jku", json!("http://127.0.0.1:1/jwks.json")),
        ("x5u", json!("http://127.0.0.1:1/cert.pem")),
        (
            "x5c",
            json!(["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]),
        ),
        ("jwk", jwk),
    ];
    for (name, value) in extras {
        let forged = with_header(&token, |h| {
            h.insert(name.into(), value.clone());
        });
        assert_refused(&app, &forged, &format!("header {name}")).await;
    }
}

#[tokio::test]
async fn unknown_crit_is_refused() {
    let app = spawn_app().await;
    let token = alice(&app).await;

    let unknown = with_header(&token, |h| {
        h.insert("crit".into(), json!(["x-custom"]));
        h.insert("x-custom".into(), json!(true));
    });
    assert_refused(&app, &unknown, "crit x-custom").await;
    let exp_crit = with_header(&token, |h| {
        h.insert("crit".into(), json!(["exp"]));
    });
    assert_refused(&app, &exp_crit, "crit exp").await;
}

#[tokio::test]
async fn unknown_or_missing_kid_is_refused() {
    let app = spawn_app().await;
    let token = alice(&app).await;

    for kid in [
        json!("no-such-key"),
        json!(""),
        json!(7),
        json!("../../etc/passwd"),
    ] {
        let forged = with_header(&token, |h| {
            h.insert("kid".into(), kid.clone());
        });
        assert_refused(&app, &forged, &format!("kid {kid}")).await;
    }
    let no_kid = with_header(&token, |h| {
        h.remove("kid");
    });
    assert_refused(&app, &no_kid, "no kid").await;
}

#[tokio::test]
async fn other_algorithms_in_the_header_are_refused() {
    let app = spawn_app().await;
    let token = alice(&app).await;

    for alg in [
        "ES256", "RS256", "HS256", "PS256", "EdDSA ", "eddsa", "Ed25519",
    ] {
        let forged = with_header(&token, |h| {
            h.insert("alg".into(), json!(alg));
        });
        assert_refused(&app, &forged, &format!("alg {alg}")).await;
    }
}

#[tokio::test]
async fn tampered_claims_are_refused() {
    let app = spawn_app().await;
    let token = alice(&app).await;

    let admin = with_claims(&token, |c| {
        c.insert("roles".into(), json!(["admin"]));
    });
    assert_refused(&app, &admin, "roles admin").await;
    let premium = with_claims(&token, |c| {
        c.insert("plan".into(), json!("premium"));
    });
    assert_refused(&app, &premium, "plan premium").await;
    let longer = with_claims(&token, |c| {
        let exp = c["exp"].as_u64().unwrap();
        c.insert("exp".into(), json!(exp + 86400));
    });
    assert_refused(&app, &longer, "exp extended").await;
    assert_eq!(app.me(&token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn tampered_signature_is_refused() {
    let app = spawn_app().await;
    let token = alice(&app).await;
    let (header, payload, signature) = segments(&token);
    let mut sig = b64url_decode(&signature);
    sig[0] ^= 0x01;

    assert_refused(
        &app,
        &format!("{header}.{payload}.{}", b64url(&sig)),
        "flipped bit",
    )
    .await;
    assert_refused(&app, &format!("{header}.{payload}."), "empty signature").await;
    assert_refused(
        &app,
        &format!("{header}.{payload}.{}", b64url(&sig[..32])),
        "short",
    )
    .await;
}

#[tokio::test]
async fn token_from_another_claimd_is_refused() {
    let app = spawn_app().await;
    let other = spawn_app().await;
    let foreign = alice(&other).await;
    alice(&app).await;

    assert_refused(&app, &foreign, "token signed by another instance").await;
}

#[tokio::test]
async fn es256_token_from_another_claimd_is_refused() {
    let app = spawn_app().await;
    let other = spawn_app_with(|s| s.tokens.algorithm = SigningAlgorithm::ES256).await;
    let foreign = alice(&other).await;

    assert_refused(&app, &foreign, "ES256 token at an EdDSA server").await;
}

#[tokio::test]
async fn another_users_token_with_swapped_sub_is_refused() {
    let app = spawn_app().await;
    let (bob, _) = app.signed_up("bob").await;
    let token = alice(&app).await;

    let forged = with_claims(&token, |c| {
        c.insert("sub".into(), bob["id"].clone());
    });

    assert_refused(&app, &forged, "sub swapped to bob").await;
}

#[tokio::test]
async fn expired_token_is_token_expired() {
    let app = spawn_app_on_clock(|s| {
        s.tokens.access_ttl = Duration::from_secs(1);
        s.tokens.leeway = Duration::from_secs(0);
    })
    .await;
    let token = alice(&app).await;
    app.advance_until_past(jwt_claims(&token)["exp"].as_u64().unwrap(), 1100);

    let resp = app.me(&token).await;

    assert_token_error(resp, "token_expired").await;
}

#[tokio::test]
async fn token_just_past_exp_is_accepted_within_leeway() {
    let app = spawn_app_on_clock(|s| {
        s.tokens.access_ttl = Duration::from_secs(1);
        s.tokens.leeway = Duration::from_secs(30);
    })
    .await;
    let token = alice(&app).await;
    app.advance_until_past(jwt_claims(&token)["exp"].as_u64().unwrap(), 1100);

    let resp = app.me(&token).await;

    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "leeway of 30s covers 1s past exp"
    );
}

#[tokio::test]
async fn token_issued_in_the_future_is_refused() {
    let app = spawn_app_with(|s| s.tokens.leeway = Duration::from_secs(0)).await;
    let token = alice(&app).await;

    // Tampering breaks the signature anyway; the point is no 200 and no 500.
    let future = with_claims(&token, |c| {
        let iat = c["iat"].as_u64().unwrap();
        c.insert("iat".into(), json!(iat + 3600));
        c.insert("nbf".into(), json!(iat + 3600));
    });

    assert_refused(&app, &future, "iat and nbf in the future").await;
}

#[tokio::test]
async fn oversize_tokens_are_refused() {
    let app = spawn_app().await;
    let token = alice(&app).await;

    let padded = with_claims(&token, |c| {
        c.insert("pad".into(), json!("x".repeat(9000)));
    });
    assert!(padded.len() > 8 * 1024);
    assert_refused(&app, &padded, "oversize signed-looking token").await;
    let junk = format!(
        "{}.{}.{}",
        "a".repeat(3000),
        "b".repeat(3000),
        "c".repeat(3000)
    );
    assert_refused(&app, &junk, "oversize junk").await;
}

#[tokio::test]
async fn structurally_broken_tokens_are_refused() {
    let app = spawn_app().await;
    let token = alice(&app).await;
    let (header, payload, signature) = segments(&token);

    let broken = [
        "a.b".to_string(),
        "a.b.c".to_string(),
        "a.b.c.d".to_string(),
        "..".to_string(),
        "!!!.@@@.###".to_string(),
        format!("{header}.{payload}"),
        format!("{header}.{payload}.{signature}.{signature}"),
        format!("{}.{payload}.{signature}", encode_json(&json!([]))),
        format!("{}.{payload}.{signature}", encode_json(&json!(null))),
        format!(
            "{}.{payload}.{signature}",
            encode_json(&json!({"alg": 123}))
        ),
        format!("{}.{payload}.{signature}", b64url(b"not json")),
        format!("{header}.{}.{signature}", b64url(b"not json")),
        format!("{header}.{}.{signature}", encode_json(&json!("a string"))),
        format!("{header}==.{payload}.{signature}"),
        token.replace('-', "+").replace('_', "/") + "+/",
    ];
    for (i, bad) in broken.iter().enumerate() {
        assert_refused(&app, bad, &format!("broken token #{i}")).await;
    }
}

#[tokio::test]
async fn garbage_authorization_headers_are_401_with_a_bearer_challenge() {
    let app = spawn_app().await;
    let token = alice(&app).await;

    let headers: Vec<HeaderValue> = vec![
        HeaderValue::from_static("Bearer"),
        HeaderValue::from_static("Bearer "),
        HeaderValue::from_static("Basic dXNlcjpwYXNz"),
        HeaderValue::from_static("Bearer a.b"),
        HeaderValue::from_static("Bearer a.b.c"),
        HeaderValue::from_static("Token abc"),
        HeaderValue::from_str(&format!("Basic {token}")).unwrap(),
        HeaderValue::from_str(&format!("Bearer {token} extra")).unwrap(),
        HeaderValue::from_str(&format!("Bearer  {token}x")).unwrap(),
        HeaderValue::from_bytes(b"Bearer \xc3\xa9\xc3\xa9.\xff\xfe.\x80").unwrap(),
        HeaderValue::from_bytes("Bearer ñandú.ñandú.ñandú".as_bytes()).unwrap(),
    ];
    for value in headers {
        let shown = format!("{value:?}");
        let resp = app.get_with_authorization("/me", value).await;
        assert_ne!(
            resp.status(),
            StatusCode::INTERNAL_SERVER_ERROR,
            "{shown} caused a 500"
        );
        assert_ne!(resp.status(), StatusCode::OK, "{shown} was accepted");
        assert_token_error_any(resp, &["token_invalid", "token_missing"]).await;
    }
}

#[tokio::test]
async fn refresh_token_is_not_an_access_token() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;

    assert_refused(&app, login.refresh(), "refresh token as bearer").await;
    let resp = app.logout(login.refresh()).await;
    assert_token_error(resp, "token_invalid").await;
    assert_eq!(app.me(&login.access_token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn hostile_tokens_do_not_disturb_the_genuine_session() {
    let app = spawn_app().await;
    let (_, login) = app.signed_up("alice").await;
    let token = &login.access_token;
    let hostile = with_header(token, |h| {
        h.insert("alg".into(), json!("none"));
    });

    assert_refused(&app, &hostile, "alg none").await;
    let resp = app.logout(&hostile).await;
    assert_token_error(resp, "token_invalid").await;

    assert_eq!(app.me(token).await.status(), StatusCode::OK);
    app.login_ok("alice", PASSWORD).await;
}
