//! [`SmtpSink`]: a real SMTP server on loopback for the mail tests to point claimd at
//! (`tests/support/smtp_sink.py`, aiosmtpd in a child process), and what it received as
//! [`ReceivedMail`]s, their bodies decoded by Python's email package.
//!
//! The sink writes each mail it accepts into a temporary directory of its own, the
//! message's bytes as `N.eml` and then what a test reads of it as `N.json` (so a mail is
//! listed once complete); control files there make it refuse every recipient, with a
//! transient 451 ([`SmtpSink::refuse`]) or a permanent 550 ([`SmtpSink::reject`]), from
//! the next transaction on. [`SmtpSink::stop`] and [`SmtpSink::restart`] take the mail
//! server away and bring it back on the same port and directory, as an outage would.
//!
//! Every wait is bounded, and the child is killed when the guard drops; it also stops by
//! itself when its standard input (a pipe this guard holds) closes, so a test binary that
//! dies without unwinding leaves no sink behind.

use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{mpsc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tempfile::TempDir;

use super::child_output::{pump, wait_bounded, Output};
use super::require;

/// How long python3 may take to import aiosmtpd and answer on its port.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How often [`SmtpSink::wait_for`] looks at the directory.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// The longest wait [`SmtpSink::wait_for`] accepts: a mail that takes longer is lost.
const MAX_WAIT: Duration = Duration::from_secs(120);

/// The sink's script in the repository.
fn script() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/smtp_sink.py"
    ))
}

/// The interpreter python3 names (pyenv's shim costs ~0.2 s a start; the interpreter
/// itself, ~0.05 s), once it can import aiosmtpd (asked once per test binary). Fails the
/// test, saying how to install it, without. Tests that start an [`SmtpSink`] are
/// `#[ignore = "needs aiosmtpd"]`, as for the other outside tools.
fn python_with_aiosmtpd() -> &'static Path {
    static PYTHON: OnceLock<Option<PathBuf>> = OnceLock::new();
    let python = PYTHON.get_or_init(|| {
        let output = Command::new("python3")
            .args([
                "-c",
                "import sys, aiosmtpd.controller; print(sys.executable)",
            ])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        let executable = String::from_utf8(output.stdout).ok()?;
        let executable = executable.trim();
        (output.status.success() && !executable.is_empty()).then(|| PathBuf::from(executable))
    });
    require(
        "python3 with aiosmtpd (`.ci/run tools`, or `python3 -m pip install 'aiosmtpd>=1.4'`)",
        python.is_some(),
    );
    python.as_deref().expect("required above")
}

/// One mail the sink accepted: the SMTP envelope, the bytes as received, and what a test
/// reads of them.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    /// Its number: 1, 2, ... in order of acceptance, across restarts.
    pub seq: u64,
    /// The message exactly as received (after SMTP's dot-unstuffing): grep it for what
    /// must not be there.
    pub raw: Vec<u8>,
    /// The envelope sender (`MAIL FROM`).
    pub from: String,
    /// The envelope recipients (`RCPT TO`), which may differ from the `To` header.
    pub to: Vec<String>,
    /// Every header in order, names as written, values decoded (RFC 2047 words undone).
    pub headers: Vec<(String, String)>,
    /// The `Subject` header, decoded; empty without one.
    pub subject: String,
    /// The text/plain body (the text part of a multipart/alternative), with its transfer
    /// encoding (quoted-printable, base64) and charset undone and line ends as `\n`;
    /// empty without one.
    pub text: String,
    /// The text/html body, decoded as `text`; empty without one.
    pub html: String,
    /// What Python's email package found malformed (empty for a well-formed mail).
    pub defects: Vec<String>,
}

impl ReceivedMail {
    /// The first header named `name` (case-insensitive), decoded.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// `N.json` as the sink writes it.
#[derive(Deserialize)]
struct Sidecar {
    from: String,
    to: Vec<String>,
    headers: Vec<(String, String)>,
    subject: String,
    text: String,
    html: String,
    defects: Vec<String>,
}

/// The token of the first `/account/{purpose}#token=TOKEN` link in `mail`'s text part (the
/// link shape of API.md's "Mail"): the base64url characters after `#token=`. Panics,
/// showing the text, when there is none.
pub fn link_token(mail: &ReceivedMail, purpose: &str) -> String {
    let marker = format!("/account/{purpose}#token=");
    let token: Option<String> = mail.text.find(&marker).map(|at| {
        mail.text[at + marker.len()..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
            .collect()
    });
    match token {
        Some(token) if !token.is_empty() => token,
        _ => panic!(
            "no `{marker}TOKEN` link in the text part of mail {} (subject {:?}):\n{}",
            mail.seq, mail.subject, mail.text
        ),
    }
}

/// The sink's child process while it runs.
struct Running {
    child: Child,
    /// Held open: the sink stops when it closes (`--stop-on-stdin-eof`).
    _stdin: ChildStdin,
    readers: Vec<JoinHandle<()>>,
}

/// An SMTP server on `127.0.0.1` that keeps every mail it accepts; killed when dropped.
pub struct SmtpSink {
    dir: TempDir,
    port: u16,
    output: Output,
    running: Option<Running>,
}

impl SmtpSink {
    /// Starts a sink on a free port with a fresh directory, once it answers (bounded).
    /// Fails the test, saying how to install it, without aiosmtpd.
    pub fn start() -> SmtpSink {
        python_with_aiosmtpd();
        let dir = tempfile::tempdir().expect("create the sink's temp dir");
        let mut sink = SmtpSink {
            dir,
            port: 0,
            output: Output::default(),
            running: None,
        };
        sink.spawn(0);
        sink
    }

    /// The port it listens on, the same across [`restart`](Self::restart)s.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The Python interpreter the sink runs on, for a test's own SMTP client (smtplib).
    pub fn python(&self) -> &'static Path {
        python_with_aiosmtpd()
    }

    /// `smtp://127.0.0.1:PORT`: plain SMTP to loopback, for `mail.smtp_url`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The directory the mails are written to (`N.eml`, `N.json`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// From the next transaction on, refuse every recipient with `451 4.3.0 try again
    /// later` (a transient failure: the sender should retry), or stop refusing.
    pub fn refuse(&self, on: bool) {
        self.switch("REFUSE", on);
    }

    /// From the next transaction on, refuse every recipient with `550 5.7.1 message
    /// rejected` (a permanent failure: the sender should give up), or stop rejecting.
    /// Wins over [`refuse`](Self::refuse).
    pub fn reject(&self, on: bool) {
        self.switch("REJECT", on);
    }

    fn switch(&self, control: &str, on: bool) {
        let path = self.dir.path().join(control);
        if on {
            std::fs::write(&path, b"").expect("create the sink's control file");
        } else if let Err(err) = std::fs::remove_file(&path) {
            assert!(
                err.kind() == std::io::ErrorKind::NotFound,
                "remove {}: {err}",
                path.display()
            );
        }
    }

    /// Every refusal so far, 451 and 550 alike, as `CODE RECIPIENT`, in order.
    pub fn refusals(&self) -> Vec<String> {
        match std::fs::read_to_string(self.dir.path().join("refusals.log")) {
            Ok(log) => log.lines().map(str::to_string).collect(),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(err) => panic!("read the sink's refusals: {err}"),
        }
    }

    /// Stops the mail server: SIGTERM, then a bounded wait for it to exit, which must be
    /// clean. Its port is closed until [`restart`](Self::restart); what it received stays.
    pub fn stop(&mut self) {
        let Some(mut running) = self.running.take() else {
            return;
        };
        let status = Command::new("kill")
            .args(["-TERM", &running.child.id().to_string()])
            .status()
            .expect("run kill -TERM");
        assert!(status.success(), "kill -TERM the SMTP sink failed");
        let exit = wait_bounded(&mut running.child, Duration::from_secs(10));
        if exit.is_none() {
            let _ = running.child.kill();
            let _ = wait_bounded(&mut running.child, Duration::from_secs(10));
        }
        for reader in std::mem::take(&mut running.readers) {
            let _ = reader.join();
        }
        assert!(
            exit.is_some_and(|s| s.success()),
            "the SMTP sink did not exit cleanly on SIGTERM: {exit:?}\nstderr:\n{}",
            self.output.stderr()
        );
    }

    /// Starts the mail server again on the same port and directory (stopping it first if
    /// it runs); its mails are numbered on from the last one.
    pub fn restart(&mut self) {
        self.stop();
        let port = self.port;
        self.spawn(port);
        assert_eq!(self.port, port, "the sink came back on its port");
    }

    /// Every mail received so far (complete ones only), in order of acceptance.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        let mut seqs: Vec<u64> = std::fs::read_dir(self.dir.path())
            .expect("read the sink's directory")
            .filter_map(|entry| {
                let name = entry.expect("directory entry").file_name();
                name.to_str()?.strip_suffix(".json")?.parse().ok()
            })
            .collect();
        seqs.sort_unstable();
        seqs.into_iter().map(|seq| self.read_mail(seq)).collect()
    }

    fn read_mail(&self, seq: u64) -> ReceivedMail {
        let path = |ext: &str| self.dir.path().join(format!("{seq}.{ext}"));
        let json = std::fs::read(path("json")).expect("read a mail's N.json");
        let sidecar: Sidecar = serde_json::from_slice(&json).expect("parse a mail's N.json");
        ReceivedMail {
            seq,
            raw: std::fs::read(path("eml")).expect("read a mail's N.eml"),
            from: sidecar.from,
            to: sidecar.to,
            headers: sidecar.headers,
            subject: sidecar.subject,
            text: sidecar.text,
            html: sidecar.html,
            defects: sidecar.defects,
        }
    }

    /// Waits until at least `count` mails have arrived, looking every 50 ms, and returns
    /// them all. Panics after `timeout` (at most two minutes), listing what did arrive and
    /// what was refused. Async, so a claimd in-process on the test's runtime keeps
    /// sending while it waits.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<ReceivedMail> {
        assert!(
            timeout <= MAX_WAIT,
            "wait_for: {timeout:?} is past {MAX_WAIT:?}"
        );
        let deadline = Instant::now() + timeout;
        loop {
            let mails = self.messages();
            if mails.len() >= count {
                return mails;
            }
            if Instant::now() >= deadline {
                let arrived: Vec<String> = mails
                    .iter()
                    .map(|m| format!("  {}: to {:?}, subject {:?}", m.seq, m.to, m.subject))
                    .collect();
                panic!(
                    "waited {timeout:?} for {count} mail(s) at {}, {} arrived:\n{}\nrefusals: {:?}\nsink running: {}, stderr:\n{}",
                    self.url(),
                    mails.len(),
                    arrived.join("\n"),
                    self.refusals(),
                    self.running.is_some(),
                    self.output.stderr()
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// What the sink has written to stderr, across restarts.
    pub fn stderr(&self) -> String {
        self.output.stderr()
    }

    /// Starts the child on `port` (0: any) and waits (bounded) for the port it prints.
    fn spawn(&mut self, port: u16) {
        let mut child = Command::new(python_with_aiosmtpd())
            .arg(script())
            .arg("--dir")
            .arg(self.dir.path())
            .args(["--port", &port.to_string(), "--stop-on-stdin-eof"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn python3 with the SMTP sink");
        let pid = child.id();
        let (tx, rx) = mpsc::channel();
        let readers = vec![
            pump(
                child.stdout.take().expect("stdout piped"),
                self.output.stdout.clone(),
                Some(tx),
                "smtp-sink".to_string(),
                pid,
            ),
            pump(
                child.stderr.take().expect("stderr piped"),
                self.output.stderr.clone(),
                None,
                "smtp-sink".to_string(),
                pid,
            ),
        ];
        let stdin = child.stdin.take().expect("stdin piped");
        self.running = Some(Running {
            child,
            _stdin: stdin,
            readers,
        });
        let first = rx.recv_timeout(STARTUP_TIMEOUT);
        let listening = first.as_deref().ok().and_then(|l| l.trim().parse().ok());
        let Some(listening) = listening else {
            let status = self.running.as_mut().map(|r| r.child.try_wait());
            // Whatever it wrote before it failed, for the message.
            std::thread::sleep(Duration::from_millis(100));
            panic!(
                "the SMTP sink did not print its port within {STARTUP_TIMEOUT:?} (first line {first:?}, status {status:?})\nstderr:\n{}",
                self.output.stderr()
            );
        };
        self.port = listening;
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        if let Some(mut running) = self.running.take() {
            if let Ok(None) = running.child.try_wait() {
                let _ = running.child.kill();
            }
            let _ = wait_bounded(&mut running.child, Duration::from_secs(10));
        }
    }
}
