//! `POST /auth/register`: the 201 shape, username normalisation (NFKC + case folding) and
//! its uniqueness, and the username/password rules.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_no_secret_fields, assert_problem, now_unix, spawn_app, PASSWORD};

#[tokio::test]
async fn register_returns_201_with_the_new_user() {
    let app = spawn_app().await;

    let resp = app.register("alice", PASSWORD).await;

    assert_eq!(resp.status(), StatusCode::CREATED);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let body: Value = resp.json().await.unwrap();
    let user = &body["user"];
    assert!(
        user["id"].as_str().is_some_and(|id| !id.is_empty()),
        "id: {body}"
    );
    assert_eq!(user["username"], json!("alice"));
    assert_eq!(user["roles"], json!([]));
    assert_eq!(user["plan"], json!("free"));
    assert_eq!(user["attrs"], json!({}));
    assert_eq!(user["claims_version"], json!(1));
    assert_eq!(user["disabled"], json!(false));
    assert!(
        user.get("tenant").is_none_or(Value::is_null),
        "no tenant: {body}"
    );
    let now = now_unix();
    for field in ["created_at", "updated_at"] {
        let ts = user[field]
            .as_u64()
            .unwrap_or_else(|| panic!("{field} is unix seconds: {body}"));
        assert!(
            ts + 60 >= now && ts <= now + 60,
            "{field} = {ts}, now = {now}"
        );
    }
}

#[tokio::test]
async fn register_never_exposes_the_password_or_its_hash() {
    let app = spawn_app().await;

    let resp = app.register("alice", PASSWORD).await;

    assert_eq!(resp.status(), StatusCode::CREATED);
    let text = resp.text().await.unwrap();
    assert!(!text.contains(PASSWORD), "password echoed: {text}");
    assert!(!text.contains("$argon2"), "hash exposed: {text}");
    assert_no_secret_fields(&serde_json::from_str(&text).unwrap());
}

#[tokio::test]
async fn two_users_get_different_ids() {
    let app = spawn_app().await;

    let alice = app.register_ok("alice", PASSWORD).await;
    let bob = app.register_ok("bob", PASSWORD).await;

    assert_ne!(alice["id"], bob["id"]);
}

#[tokio::test]
async fn username_is_stored_case_folded() {
    let app = spawn_app().await;

    let user = app.register_ok("Alice", PASSWORD).await;

    assert_eq!(user["username"], json!("alice"));
}

#[tokio::test]
async fn fullwidth_username_is_nfkc_normalised() {
    let app = spawn_app().await;

    let user = app.register_ok("ＡＬＩＣＥ", PASSWORD).await;

    assert_eq!(user["username"], json!("alice"));
}

#[tokio::test]
async fn duplicate_username_is_409() {
    let app = spawn_app().await;
    app.register_ok("alice", PASSWORD).await;

    let resp = app.register("alice", "another password").await;

    assert_problem(resp, 409, "username_taken").await;
}

#[tokio::test]
async fn username_differing_only_in_case_is_taken() {
    let app = spawn_app().await;
    app.register_ok("Alice", PASSWORD).await;

    let lower = app.register("alice", PASSWORD).await;
    assert_problem(lower, 409, "username_taken").await;
    let upper = app.register("ALICE", PASSWORD).await;
    assert_problem(upper, 409, "username_taken").await;
}

#[tokio::test]
async fn fullwidth_form_of_a_taken_username_is_taken() {
    let app = spawn_app().await;
    app.register_ok("Alice", PASSWORD).await;

    let resp = app.register("ＡＬＩＣＥ", PASSWORD).await;

    assert_problem(resp, 409, "username_taken").await;
}

#[tokio::test]
async fn compatibility_ligature_of_a_taken_username_is_taken() {
    let app = spawn_app().await;
    app.register_ok("file", PASSWORD).await;

    // U+FB01 LATIN SMALL LIGATURE FI normalises (NFKC) to "fi".
    let resp = app.register("\u{FB01}le", PASSWORD).await;

    assert_problem(resp, 409, "username_taken").await;
}

#[tokio::test]
async fn login_accepts_any_case_of_the_username() {
    let app = spawn_app().await;
    app.register_ok("alice", PASSWORD).await;

    let tokens = app.login_ok("ALICE", PASSWORD).await;

    assert!(!tokens.access_token.is_empty());
    let fullwidth = app.login_ok("ａｌｉｃｅ", PASSWORD).await;
    assert!(!fullwidth.access_token.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_registrations_of_one_username_create_exactly_one_user() {
    let app = spawn_app().await;

    let tasks: Vec<_> = (0..6)
        .map(|i| {
            let name = if i % 2 == 0 { "zoe" } else { "ZOE" };
            app.post_json_task(
                "/auth/register",
                json!({"username": name, "password": PASSWORD}),
            )
        })
        .collect();

    let mut created = 0;
    for task in tasks {
        let resp = task.await.expect("request task");
        if resp.status() == StatusCode::CREATED {
            created += 1;
        } else {
            assert_problem(resp, 409, "username_taken").await;
        }
    }
    assert_eq!(created, 1, "exactly one registration wins");
}

// ---- password rule: 8..=1024 characters ----

/// A password of exactly `chars` characters that is not easy to guess.
pub fn long_password(chars: usize) -> String {
    format!("{PASSWORD} ").repeat(chars / PASSWORD.len() + 1)[..chars].to_string()
}

#[tokio::test]
async fn password_of_seven_characters_is_refused() {
    let app = spawn_app().await;

    let resp = app.register("alice", "1234567").await;

    assert_problem(resp, 400, "invalid_request").await;
}

#[tokio::test]
async fn password_of_eight_characters_is_accepted() {
    let app = spawn_app().await;

    // Eight characters that are not a common password (those have their own test).
    let resp = app.register("alice", "Tq7#vLp2").await;

    assert_eq!(resp.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn password_length_counts_characters_not_bytes() {
    let app = spawn_app().await;

    // Seven characters, fourteen bytes: still too short.
    let short = app.register("alice", "ééééééé").await;
    assert_problem(short, 400, "invalid_request").await;
    // Eight two-byte characters: long enough.
    let ok = app.register("alice", "éàüöçñßø").await;
    assert_eq!(ok.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn password_of_1024_characters_is_accepted_and_1025_refused() {
    let app = spawn_app().await;

    let too_long = app.register("alice", &long_password(1025)).await;
    assert_problem(too_long, 400, "invalid_request").await;
    let max = app.register("alice", &long_password(1024)).await;
    assert_eq!(max.status(), StatusCode::CREATED);
    app.login_ok("alice", &long_password(1024)).await;
}

#[tokio::test]
async fn empty_password_is_refused() {
    let app = spawn_app().await;

    let resp = app.register("alice", "").await;

    assert_problem(resp, 400, "invalid_request").await;
}

// ---- username rule ----

#[tokio::test]
async fn empty_username_is_refused() {
    let app = spawn_app().await;

    let resp = app.register("", PASSWORD).await;

    assert_problem(resp, 400, "invalid_request").await;
}

#[tokio::test]
async fn username_of_64_characters_is_accepted_and_65_refused() {
    let app = spawn_app().await;

    let too_long = app.register(&"a".repeat(65), PASSWORD).await;
    assert_problem(too_long, 400, "invalid_request").await;
    let max = app.register(&"a".repeat(64), PASSWORD).await;
    assert_eq!(max.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn username_length_is_measured_after_normalisation() {
    let app = spawn_app().await;

    // 22 × U+FB03 (LATIN SMALL LIGATURE FFI) is 22 characters but 66 after NFKC.
    let resp = app.register(&"\u{FB03}".repeat(22), PASSWORD).await;

    assert_problem(resp, 400, "invalid_request").await;
}

#[tokio::test]
async fn usernames_with_control_characters_are_refused() {
    let app = spawn_app().await;

    for bad in [
        "bo\u{0}b",
        "bo\u{7}b",
        "bob\n",
        "bo\tb",
        "bo\u{7F}b",
        "bo\u{85}b",
    ] {
        let resp = app.register(bad, PASSWORD).await;
        assert_problem(resp, 400, "invalid_request").await;
    }
    // Nothing was written: the clean name is still free.
    app.register_ok("bob", PASSWORD).await;
}

#[tokio::test]
async fn usernames_with_zero_width_characters_are_refused() {
    let app = spawn_app().await;

    for c in ['\u{200B}', '\u{200C}', '\u{200D}', '\u{2060}', '\u{FEFF}'] {
        let resp = app.register(&format!("bo{c}b"), PASSWORD).await;
        assert_problem(resp, 400, "invalid_request").await;
    }
    app.register_ok("bob", PASSWORD).await;
}

#[tokio::test]
async fn usernames_with_bidi_controls_are_refused() {
    let app = spawn_app().await;

    let bidi = [
        '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}',
        '\u{2068}', '\u{2069}', '\u{200E}', '\u{200F}',
    ];
    for c in bidi {
        let resp = app.register(&format!("bo{c}b"), PASSWORD).await;
        assert_problem(resp, 400, "invalid_request").await;
    }
    app.register_ok("bob", PASSWORD).await;
}

#[tokio::test]
async fn refused_registration_leaves_the_username_free() {
    let app = spawn_app().await;

    let resp = app.register("carol", "short").await;
    assert_problem(resp, 400, "invalid_request").await;

    app.register_ok("carol", PASSWORD).await;
}

/// Common and leaked passwords are refused offline, with a human reason that does not
/// repeat the password, and nothing is written: the username stays free.
#[tokio::test]
async fn a_common_or_leaked_password_is_password_too_weak() {
    let app = spawn_app().await;

    for weak in ["password1", "qwerty123", "P@ssw0rd", "alice2024"] {
        let resp = app.register("alice", weak).await;
        let (_, body) = assert_problem(resp, 400, "password_too_weak").await;
        let detail = body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains("easy to guess"), "{weak}: {body}");
        assert!(
            !detail.contains(weak),
            "the reason repeats the password: {body}"
        );
    }

    let resp = app.register("alice", PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::CREATED, "the name is still free");
}
