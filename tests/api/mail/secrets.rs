//! A mailed token is nowhere but in the mail: not in the data directory's files (sled keeps
//! deleted bytes for a while, so every byte of every file is searched) or, on PostgreSQL,
//! in any row of the store's database (`pg_dump`), not in anything the
//! binary wrote at `RUST_LOG=trace`, not in `/metrics`. The real binary runs as a child
//! process with every target at trace level through a verification, a password reset and
//! a magic link; each token is searched as its text and as its raw bytes.

use std::path::Path;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use super::support::{accepted, token_in, PROMPTLY};
use crate::helpers::{claimd_command, token_response, workdir, ClaimdProcess, SmtpSink};

/// Every file under `dir`, with its bytes.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read the data directory") {
        let entry = entry.expect("a directory entry");
        let path = entry.path();
        if path.is_dir() {
            found.extend(files(&path));
        } else {
            found.push((
                path.display().to_string(),
                std::fs::read(&path).expect("read a file"),
            ));
        }
    }
    found
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

#[tokio::test]
#[ignore = "needs aiosmtpd"]
async fn no_mailed_token_reaches_the_data_directory_the_logs_or_metrics() {
    let (work, data) = workdir();
    let sink = SmtpSink::start();
    let mut cmd = claimd_command(work.path());
    cmd.env("CLAIMD__STORAGE__PATH", &data)
        .env("CLAIMD__MAIL__TRANSPORT", "smtp")
        .env("CLAIMD__MAIL__SMTP_URL", sink.url())
        .env("RUST_LOG", "trace");
    let claimd = ClaimdProcess::start(cmd);
    let app = claimd.app();

    let (_, login) = app.signed_up_with_email("ada", "ada@example.org").await;
    accepted(app.request_verification(&login.access_token).await).await;
    let verify = token_in(
        &sink.wait_for(1, PROMPTLY).await[0],
        "verify-email",
        "ada@example.org",
    );
    assert_eq!(app.verify_email(&verify).await.status(), 200);
    accepted(app.forgot_password("ada@example.org").await).await;
    let reset = token_in(
        &sink.wait_for(2, PROMPTLY).await[1],
        "reset-password",
        "ada@example.org",
    );
    token_response(
        app.reset_password(&reset, "an entirely new passphrase")
            .await,
    )
    .await;
    accepted(app.request_magic_link("ada@example.org").await).await;
    let magic = token_in(
        &sink.wait_for(3, PROMPTLY).await[2],
        "magic",
        "ada@example.org",
    );
    token_response(app.redeem_magic_link(&magic).await).await;
    let metrics = app.metrics_text().await;

    let (exit, stdout, stderr) = claimd.terminate(Duration::from_secs(60));
    assert!(exit.is_some_and(|status| status.success()), "{stderr}");
    let logs = format!("{stdout}\n{stderr}");
    assert!(
        logs.contains("mail sent"),
        "the log is at trace and names sent mails"
    );

    for token in [&verify, &reset, &magic] {
        let raw = URL_SAFE_NO_PAD.decode(token).expect("a token is base64url");
        // The MAC half: the id half is the queue entry's key and is stored on purpose.
        let mac = &raw[16..];
        assert!(!logs.contains(token.as_str()), "a token in the logs");
        assert!(!metrics.contains(token.as_str()), "a token in /metrics");
        let stored = if crate::backend::on_postgres() {
            vec![(
                "the database".to_string(),
                crate::backend::dump_store(&data),
            )]
        } else {
            files(&data)
        };
        assert!(
            stored
                .iter()
                .any(|(_, bytes)| contains(bytes, b"ada@example.org")),
            "the search reads the stored records (the address is in them)"
        );
        let mac_hex: String = mac.iter().map(|byte| format!("{byte:02x}")).collect();
        for (path, bytes) in stored {
            assert!(
                !contains(&bytes, token.as_bytes()),
                "a token's text in {path}"
            );
            assert!(!contains(&bytes, mac), "a token's MAC bytes in {path}");
            assert!(
                !contains(&bytes, mac_hex.as_bytes()),
                "a token's MAC in hex in {path}"
            );
        }
    }
}
