//! The verified-token cache (`tokens.verified_cache_entries`) remembers only the header,
//! signature and registered-claim checks: revocation (logout, `/oauth/revoke`, a disabled
//! user) and staleness (`PATCH /me`) are seen on the very next request even when the same
//! token was verified a moment before. Every scenario runs with the default cache, a cache of
//! one entry churned by many tokens, and the cache off (0). A cached entry never vouches for
//! another token (a tampered copy) nor outlives its token's `exp`.

use std::time::Duration;

use claimd::config::Settings;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{
    assert_token_error, inactive, refreshed_response, spawn_app_on_clock, spawn_app_with,
    spawn_app_with_admin, tamper_signature, Caller, TestApp, PASSWORD,
};

/// `None`: the default size; `Some(n)`: `n` entries (0 turns the cache off).
fn cache(entries: Option<usize>) -> impl FnOnce(&mut Settings) {
    move |s: &mut Settings| {
        if let Some(n) = entries {
            s.tokens.verified_cache_entries = n;
        }
    }
}

/// Verifies `token` a few times through `/me` and `/verify`, so it is cached if it can be.
async fn warm(app: &TestApp, token: &str) {
    for _ in 0..2 {
        assert_eq!(app.me(token).await.status(), StatusCode::OK, "warm /me");
        assert_eq!(
            app.verify(Some(token)).await.status(),
            StatusCode::OK,
            "warm /verify"
        );
    }
}

async fn assert_refused_everywhere(app: &TestApp, token: &str, code: &str) {
    assert_token_error(app.me(token).await, code).await;
    assert_token_error(app.verify(Some(token)).await, code).await;
}

// ---- the scenarios ----

async fn logout_is_seen_at_once(entries: Option<usize>) {
    let app = spawn_app_with(cache(entries)).await;
    let (_, alice) = app.signed_up("alice").await;
    warm(&app, &alice.access_token).await;

    assert_eq!(
        app.logout(&alice.access_token).await.status(),
        StatusCode::NO_CONTENT
    );

    assert_refused_everywhere(&app, &alice.access_token, "token_revoked").await;
}

async fn oauth_revoke_is_seen_at_once(entries: Option<usize>) {
    let app = spawn_app_with(cache(entries)).await;
    let (_, alice) = app.signed_up("alice").await;
    let (_, bob) = app.signed_up("bob").await;
    warm(&app, &alice.access_token).await;
    warm(&app, &bob.access_token).await;

    app.revoke_ok(Caller::Anonymous, &alice.access_token).await;
    app.revoke_ok(Caller::Anonymous, bob.refresh()).await;

    assert_refused_everywhere(&app, &alice.access_token, "token_revoked").await;
    assert_refused_everywhere(&app, &bob.access_token, "token_revoked").await;
}

async fn staleness_is_seen_at_once(entries: Option<usize>) {
    let app = spawn_app_with(cache(entries)).await;
    let (_, alice) = app.signed_up("alice").await;
    let other = app.login_ok("alice", PASSWORD).await;
    warm(&app, &alice.access_token).await;
    warm(&app, &other.access_token).await;

    let (_, fresh) = refreshed_response(
        app.patch_me(&alice.access_token, &json!({"plan": "premium"}))
            .await,
    )
    .await;

    assert_refused_everywhere(&app, &alice.access_token, "token_stale").await;
    assert_refused_everywhere(&app, &other.access_token, "token_stale").await;
    warm(&app, &fresh).await;
}

async fn disabling_is_seen_at_once(entries: Option<usize>) {
    let (app, admin) = spawn_app_with_admin(cache(entries)).await;
    let service = app.create_service_ok(&admin.access_token, "api").await;
    let (user, alice) = app.signed_up("alice").await;
    warm(&app, &alice.access_token).await;
    assert_eq!(
        app.introspect_ok(service.caller(), &alice.access_token)
            .await["active"],
        json!(true)
    );

    app.admin_patch_user_ok(
        &admin.access_token,
        user["id"].as_str().unwrap(),
        &json!({"disabled": true}),
    )
    .await;

    assert_refused_everywhere(&app, &alice.access_token, "token_revoked").await;
    assert_eq!(
        app.introspect_ok(service.caller(), &alice.access_token)
            .await,
        inactive()
    );
}

async fn a_tampered_copy_never_hits_the_entry(entries: Option<usize>) {
    let app = spawn_app_with(cache(entries)).await;
    let (_, alice) = app.signed_up("alice").await;
    warm(&app, &alice.access_token).await;

    let tampered = tamper_signature(&alice.access_token);

    assert_refused_everywhere(&app, &tampered, "token_invalid").await;
    let padded = format!("{}A", alice.access_token);
    assert_refused_everywhere(&app, &padded, "token_invalid").await;
    assert_eq!(app.me(&alice.access_token).await.status(), StatusCode::OK);
}

async fn a_cached_token_still_expires(entries: Option<usize>) {
    let app = spawn_app_on_clock(|s| {
        cache(entries)(s);
        s.tokens.access_ttl = Duration::from_secs(2);
        s.tokens.leeway = Duration::from_secs(0);
    })
    .await;
    let (_, alice) = app.signed_up("alice").await;
    warm(&app, &alice.access_token).await;
    let exp = alice.claims()["exp"].as_u64().unwrap();

    app.advance_until_past(exp, 1100);

    assert_refused_everywhere(&app, &alice.access_token, "token_expired").await;
}

/// Many tokens in turn (more than a one-entry cache holds): each change is seen at once for
/// exactly the token it concerns, the others keep passing.
async fn many_tokens_in_rotation(entries: Option<usize>) {
    let (app, admin) = spawn_app_with_admin(cache(entries)).await;
    let mut users = Vec::new();
    for name in ["u0", "u1", "u2", "u3", "u4", "u5"] {
        users.push(app.signed_up(name).await);
    }
    let tokens: Vec<String> = users.iter().map(|(_, t)| t.access_token.clone()).collect();
    for _ in 0..3 {
        for token in &tokens {
            assert_eq!(app.me(token).await.status(), StatusCode::OK);
        }
    }

    // u1 logs out, u3's claims change, u5 is revoked through /oauth/revoke.
    assert_eq!(
        app.logout(&tokens[1]).await.status(),
        StatusCode::NO_CONTENT
    );
    app.admin_patch_user_ok(
        &admin.access_token,
        users[3].0["id"].as_str().unwrap(),
        &json!({"plan": "enterprise"}),
    )
    .await;
    app.revoke_ok(Caller::Anonymous, &tokens[5]).await;

    for round in 0..3 {
        for (i, token) in tokens.iter().enumerate() {
            let resp = app.me(token).await;
            match i {
                1 | 5 => {
                    assert_token_error(resp, "token_revoked").await;
                }
                3 => {
                    assert_token_error(resp, "token_stale").await;
                }
                _ => assert_eq!(resp.status(), StatusCode::OK, "u{i}, round {round}"),
            }
        }
    }
}

macro_rules! for_each_cache_size {
    ($($scenario:ident),* $(,)?) => {
        mod default_size {
            $(
                #[tokio::test]
                async fn $scenario() {
                    super::$scenario(None).await;
                }
            )*
        }
        mod one_entry {
            $(
                #[tokio::test]
                async fn $scenario() {
                    super::$scenario(Some(1)).await;
                }
            )*
        }
        mod off {
            $(
                #[tokio::test]
                async fn $scenario() {
                    super::$scenario(Some(0)).await;
                }
            )*
        }
    };
}

for_each_cache_size!(
    logout_is_seen_at_once,
    oauth_revoke_is_seen_at_once,
    staleness_is_seen_at_once,
    disabling_is_seen_at_once,
    a_tampered_copy_never_hits_the_entry,
    a_cached_token_still_expires,
    many_tokens_in_rotation,
);
