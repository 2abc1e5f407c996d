//! Delivery that survives what goes wrong: a mail server that refuses for a while or is
//! down, and a claimd killed (-9) after it answered and before it sent. The mail arrives
//! once things are back, with a link that works, and is counted in `/metrics`.

use std::time::Duration;

use crate::helpers::{
    claimd_command, metric_sum, token_response, workdir, ClaimdProcess, SmtpSink,
};

use super::support::{accepted, app_with_mail, token_in, PROMPTLY};

/// Longer than the first retries' backoff (5 s, then 10 s, ±20 %).
const AFTER_RETRIES: Duration = Duration::from_secs(40);
/// Longer than a dead sender's claim on a mail (40 s) and the retry after it.
const AFTER_A_DEAD_SENDER: Duration = Duration::from_secs(90);

#[tokio::test]
#[ignore = "needs aiosmtpd"]
async fn a_mail_server_refusing_for_a_while_delays_the_mail_and_loses_nothing() {
    let (app, sink) = app_with_mail(|_| {}).await;
    app.signed_up_with_email("ada", "ada@example.org").await;
    sink.refuse(true);
    accepted(app.request_magic_link("ada@example.org").await).await;
    // Refused at least once, nothing kept.
    let deadline = tokio::time::Instant::now() + PROMPTLY;
    while sink.refusals().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "claimd never tried");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(sink.messages().is_empty());
    let failed = metric_sum(&app.metrics_text().await, "claimd_mail_failed_total", &[]);
    assert!(failed >= 1.0, "failures are counted");

    sink.refuse(false);
    let mails = sink.wait_for(1, AFTER_RETRIES).await;
    let token = token_in(&mails[0], "magic", "ada@example.org");
    token_response(app.redeem_magic_link(&token).await).await;
    let metrics = app.metrics_text().await;
    assert_eq!(
        metric_sum(&metrics, "claimd_mail_sent_total", &[]),
        1.0,
        "{metrics}"
    );
}

#[tokio::test]
#[ignore = "needs aiosmtpd"]
async fn a_mail_server_that_is_down_gets_the_mail_when_it_is_back() {
    let (app, mut sink) = app_with_mail(|_| {}).await;
    app.signed_up_with_email("ada", "ada@example.org").await;
    sink.stop();
    accepted(app.forgot_password("ada@example.org").await).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    sink.restart();
    let mails = sink.wait_for(1, AFTER_RETRIES).await;
    let token = token_in(&mails[0], "reset-password", "ada@example.org");
    token_response(
        app.reset_password(&token, "an entirely new passphrase")
            .await,
    )
    .await;
}

#[tokio::test]
#[ignore = "needs aiosmtpd"]
async fn a_crash_between_the_answer_and_the_send_sends_after_the_restart() {
    let (work, data) = workdir();
    let mut sink = SmtpSink::start();
    let start = |sink: &SmtpSink| {
        let mut cmd = claimd_command(work.path());
        cmd.env("CLAIMD__STORAGE__PATH", &data)
            .env("CLAIMD__MAIL__TRANSPORT", "smtp")
            .env("CLAIMD__MAIL__SMTP_URL", sink.url());
        ClaimdProcess::start(cmd)
    };
    let first = start(&sink);
    let app = first.app();
    app.signed_up_with_email("ada", "ada@example.org").await;
    // Nothing can be sent: the answer comes from the queued, durable entry alone.
    sink.stop();
    accepted(app.forgot_password("ada@example.org").await).await;
    first.kill9();

    sink.restart();
    let second = start(&sink);
    let mails = sink.wait_for(1, AFTER_A_DEAD_SENDER).await;
    let token = token_in(&mails[0], "reset-password", "ada@example.org");
    token_response(
        second
            .app()
            .reset_password(&token, "an entirely new passphrase")
            .await,
    )
    .await;
}
