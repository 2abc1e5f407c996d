//! The SMTP sink the mail tests receive with, driven by Python's smtplib (an SMTP client
//! that is not claimd's): a plain mail and a multipart/alternative one come back with
//! their envelope, raw bytes and decoded parts; refuse mode answers 451 and reject mode
//! 550 without keeping anything; a sink stopped and restarted listens on the same port and
//! numbers on.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::helpers::{link_token, run_to_exit_with_stdin, SmtpSink};

/// Sends `message` (raw bytes, CRLF line ends) with smtplib from `sender` to `recipient`
/// and prints the outcome: the final reply code (`250`), the refusal's code, or
/// `unreachable` when nothing listens.
const SEND: &str = r#"
import smtplib, sys
port, sender, recipient = sys.argv[1:]
try:
    with smtplib.SMTP("127.0.0.1", int(port), timeout=5) as smtp:
        smtp.sendmail(sender, [recipient], sys.stdin.buffer.read())
    print(250)
except smtplib.SMTPRecipientsRefused as err:
    print(err.recipients[recipient][0])
except smtplib.SMTPResponseException as err:
    print(err.smtp_code)
except OSError:
    print("unreachable")
"#;

/// What smtplib (on `sink`'s interpreter) answered for `message` sent to `sink`'s port.
fn send(sink: &SmtpSink, recipient: &str, message: &str) -> String {
    let mut cmd = Command::new(sink.python());
    cmd.args([
        "-c",
        SEND,
        &sink.port().to_string(),
        "noreply@claimd.test",
        recipient,
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let exit = run_to_exit_with_stdin(cmd, message, Duration::from_secs(10));
    assert!(
        exit.status.is_some_and(|s| s.success()),
        "smtplib ran: {exit:?}"
    );
    exit.stdout.trim().to_string()
}

/// A plain-text mail, 7bit, with a line that SMTP must dot-stuff.
const PLAIN: &str = "From: claimd <noreply@claimd.test>\r\n\
To: alice@example.com\r\n\
Subject: Verify your address\r\n\
Auto-Submitted: auto-generated\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: 7bit\r\n\
\r\n\
Open http://claimd.test/account/verify-email#token=abc_DEF-123 to verify.\r\n\
.a line that starts with a dot\r\n";

/// multipart/alternative: a quoted-printable text part whose link is cut by a soft line
/// break and holds an `=3D`, a base64 HTML part, an RFC 2047 subject.
const ALTERNATIVE: &str = "From: claimd <noreply@claimd.test>\r\n\
To: Bob <bob@example.com>\r\n\
Subject: =?utf-8?q?R=C3=A9initialiser_votre_mot_de_passe?=\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/alternative; boundary=\"b1\"\r\n\
\r\n\
--b1\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
R=C3=A9initialisez: http://claimd.test/account/reset-password#token=3DQk9CX0xJ=\r\n\
TktfMDEy-_z\r\n\
Expires in 30 minutes.\r\n\
--b1\r\n\
Content-Type: text/html; charset=utf-8\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
PHA+UsOpaW5pdGlhbGlzZXo8L3A+\r\n\
--b1--\r\n";

#[tokio::test]
#[ignore = "needs aiosmtpd"]
async fn the_sink_keeps_decodes_refuses_and_comes_back_on_its_port() {
    let mut sink = SmtpSink::start();
    assert_eq!(sink.url(), format!("smtp://127.0.0.1:{}", sink.port()));

    // Kept, in order, with the envelope, the raw bytes and the decoded parts.
    assert_eq!(send(&sink, "alice@example.com", PLAIN), "250");
    assert_eq!(send(&sink, "bob@example.com", ALTERNATIVE), "250");
    let mails = sink.wait_for(2, Duration::from_secs(5)).await;
    assert_eq!(mails.len(), 2);
    let (plain, alternative) = (&mails[0], &mails[1]);

    assert_eq!(plain.seq, 1);
    assert_eq!(
        plain.raw,
        PLAIN.as_bytes(),
        "the bytes as sent, dot-unstuffed"
    );
    assert_eq!(plain.from, "noreply@claimd.test");
    assert_eq!(plain.to, ["alice@example.com"]);
    assert_eq!(plain.subject, "Verify your address");
    assert_eq!(plain.header("auto-submitted"), Some("auto-generated"));
    assert_eq!(plain.header("Reply-To"), None);
    assert!(plain
        .text
        .ends_with("verify.\n.a line that starts with a dot\n"));
    assert_eq!(plain.html, "");
    assert!(plain.defects.is_empty(), "{:?}", plain.defects);
    assert_eq!(link_token(plain, "verify-email"), "abc_DEF-123");

    assert_eq!(alternative.seq, 2);
    assert_eq!(alternative.to, ["bob@example.com"]);
    assert_eq!(alternative.header("To"), Some("Bob <bob@example.com>"));
    assert_eq!(alternative.subject, "Réinitialiser votre mot de passe");
    assert_eq!(
        alternative.text,
        "Réinitialisez: http://claimd.test/account/reset-password#token=Qk9CX0xJTktfMDEy-_z\n\
         Expires in 30 minutes.",
        "the line end before a boundary is the boundary's"
    );
    assert_eq!(alternative.html, "<p>Réinitialisez</p>");
    assert!(alternative.defects.is_empty(), "{:?}", alternative.defects);
    assert_eq!(
        link_token(alternative, "reset-password"),
        "Qk9CX0xJTktfMDEy-_z"
    );

    // Refuse mode: a transient 451; reject mode: a permanent 550, and it wins.
    sink.refuse(true);
    assert_eq!(send(&sink, "carol@example.com", PLAIN), "451");
    sink.reject(true);
    assert_eq!(send(&sink, "carol@example.com", PLAIN), "550");
    sink.refuse(false);
    assert_eq!(send(&sink, "carol@example.com", PLAIN), "550");
    sink.reject(false);
    assert_eq!(
        sink.refusals(),
        [
            "451 carol@example.com",
            "550 carol@example.com",
            "550 carol@example.com"
        ]
    );
    assert_eq!(sink.messages().len(), 2, "nothing refused is kept");

    // Stopped: nothing listens. Restarted: the same port, the mails kept, numbering on.
    let port = sink.port();
    sink.stop();
    assert_eq!(send(&sink, "dave@example.com", PLAIN), "unreachable");
    sink.restart();
    assert_eq!(sink.port(), port);
    assert_eq!(send(&sink, "dave@example.com", PLAIN), "250");
    let mails = sink.wait_for(3, Duration::from_secs(5)).await;
    assert_eq!(mails.len(), 3);
    assert_eq!(mails[2].seq, 3);
    assert_eq!(mails[2].to, ["dave@example.com"]);

    // A restart while running stops it first.
    sink.restart();
    assert_eq!(send(&sink, "erin@example.com", PLAIN), "250");
    assert_eq!(sink.wait_for(4, Duration::from_secs(5)).await.len(), 4);
}

#[test]
#[should_panic(expected = "no `/account/magic#token=TOKEN` link")]
fn link_token_names_the_link_it_did_not_find() {
    let mail = crate::helpers::ReceivedMail {
        seq: 1,
        raw: Vec::new(),
        from: String::new(),
        to: Vec::new(),
        headers: Vec::new(),
        subject: "Sign in".to_string(),
        text: "http://claimd.test/account/verify-email#token=abc".to_string(),
        html: String::new(),
        defects: Vec::new(),
    };
    link_token(&mail, "magic");
}

#[tokio::test]
#[ignore = "needs aiosmtpd"]
#[should_panic(
    expected = "1 arrived:\n  1: to [\"alice@example.com\"], subject \"Verify your address\""
)]
async fn wait_for_lists_what_arrived_when_it_gives_up() {
    let sink = SmtpSink::start();
    assert_eq!(send(&sink, "alice@example.com", PLAIN), "250");
    sink.wait_for(2, Duration::from_millis(300)).await;
}
