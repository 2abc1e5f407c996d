//! Where composed mails go (`mail.transport`): nowhere, an outbox directory, or a mail
//! server over SMTP (cargo feature `smtp`, on by default).
//!
//! A delivery either succeeds or fails with a [`MailFailure`] code, which is all the queue
//! and the log learn: never the server's reply text (it may quote the mail) and never a body.
//! lettre is built without its `tracing` feature, which would log what it writes.
//!
//! **Outbox.** Each mail becomes `<outbox_dir>/<mail id>.eml`, its RFC 5322 bytes. Mail ids
//! are UUIDv7, so the names sort by time of queueing; a mail delivered again after a crash
//! replaces its own file instead of adding a second. The file is written whole or not at
//! all: a temporary file in the same directory, flushed to disk, renamed over the name,
//! then the directory flushed, so a reader (the demo's mailbox) never sees half a mail and
//! a power cut leaves the old file or the new. The directory is created `0700` on first use
//! (its parent must exist); files are `0600`. It holds live links: keep it private.
//!
//! **SMTP.** One connection per mail, no pool: claimd sends a few mails an hour, and an idle
//! pooled connection only meets a server that has since hung up. How the connection is
//! secured comes from `mail.smtp_url` ([`crate::config::SmtpUrl`]): `smtps://` is TLS from
//! the first byte, `smtp://...?tls=required` must upgrade with STARTTLS or send nothing,
//! and plain `smtp://` (loopback only) has no TLS. TLS is rustls with the Mozilla roots
//! (webpki-roots): certificates are checked against the host in the URL. Connecting and
//! a whole delivery after [`SMTP_DELIVERY_TIMEOUT`] (lettre's async
//! client has no per-command timeout). The login, when set, comes from
//! `CLAIMD_SMTP_USERNAME` / `CLAIMD_SMTP_PASSWORD`.

use std::fmt;
use std::io::Write as _;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::config::{MailTransportKind, Settings};
use crate::domain::MailId;
use crate::mail::message::ComposedMail;
use crate::store::MailFailure;

/// How long connecting to the mail server may take before the attempt fails as
/// [`MailFailure::Timeout`] (lettre's default is a minute: too long to hold a queue slot).
pub const SMTP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long one whole delivery (connect, greeting, TLS, login, envelope, data, quit) may
/// take. lettre's async client times out only the connect, so a server that stops
/// answering mid-session would otherwise hold the delivery forever.
pub const SMTP_DELIVERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Mode of an outbox directory claimd creates.
const OUTBOX_DIR_MODE: u32 = 0o700;

/// The transport chosen by `mail.transport`, ready to deliver.
pub enum MailTransport {
    /// `none`: mail is off; nothing can be delivered.
    None,
    /// `outbox`: `.eml` files in this directory.
    Outbox(PathBuf),
    /// `smtp`: a mail server.
    #[cfg(feature = "smtp")]
    Smtp(Box<smtp::SmtpSender>),
}

impl fmt::Debug for MailTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MailTransport::None => f.write_str("MailTransport::None"),
            MailTransport::Outbox(dir) => write!(f, "MailTransport::Outbox({})", dir.display()),
            #[cfg(feature = "smtp")]
            MailTransport::Smtp(sender) => write!(f, "MailTransport::Smtp({sender:?})"),
        }
    }
}

impl MailTransport {
    /// Builds the transport `settings.mail` names. Nothing is connected or created yet:
    /// the outbox directory appears with the first mail, and the mail server is reached
    /// per mail.
    ///
    /// # Errors
    /// `smtp` in a build without the `smtp` feature, or without `mail.smtp_url`; the
    /// TLS settings for the host cannot be built.
    pub fn from_settings(settings: &Settings) -> Result<MailTransport, String> {
        match settings.mail.transport {
            MailTransportKind::None => Ok(MailTransport::None),
            MailTransportKind::Outbox if cfg!(feature = "smtp") => {
                Ok(MailTransport::Outbox(settings.mail_outbox_dir()))
            }
            MailTransportKind::Outbox => Err("mail.transport: this build has no mail, not even \
                 the outbox: built without the `smtp` feature"
                .to_string()),
            MailTransportKind::Smtp => Self::smtp(settings),
        }
    }

    #[cfg(feature = "smtp")]
    fn smtp(settings: &Settings) -> Result<MailTransport, String> {
        let url = settings.mail.smtp_url.as_ref().ok_or(
            "mail.smtp_url: must be set with mail.transport = \"smtp\" (or CLAIMD__MAIL__SMTP_URL)",
        )?;
        smtp::SmtpSender::new(
            url,
            settings.mail.smtp_credentials.as_ref(),
            SMTP_TIMEOUT,
            SMTP_DELIVERY_TIMEOUT,
        )
        .map(|sender| MailTransport::Smtp(Box::new(sender)))
    }

    #[cfg(not(feature = "smtp"))]
    fn smtp(_settings: &Settings) -> Result<MailTransport, String> {
        Err("mail.transport: this build has no SMTP: built without the `smtp` feature".to_string())
    }

    /// Whether mail can be sent at all (`mail.transport` is not `none`): with it off, the
    /// mail endpoints answer 501 `mail_disabled`.
    pub fn is_enabled(&self) -> bool {
        !matches!(self, MailTransport::None)
    }

    /// Hands `mail` over: written to the outbox, or accepted by the mail server. Safe to
    /// call again for the same mail after a failure or a crash (the outbox replaces the
    /// file; a server may see the mail twice, with the same `Message-ID`).
    ///
    /// # Errors
    /// Why this attempt failed. With `none`, every mail fails as
    /// [`MailFailure::Permanent`]: nothing will ever send it.
    pub async fn deliver(&self, mail: &ComposedMail) -> Result<(), MailFailure> {
        match self {
            MailTransport::None => Err(MailFailure::Permanent),
            // Without lettre no mail is ever composed, nor an outbox built: the edge binary
            // links no outbox writer.
            MailTransport::Outbox(dir) if cfg!(feature = "smtp") => {
                deliver_to_outbox(dir, mail).await
            }
            MailTransport::Outbox(_) => Err(MailFailure::Outbox),
            #[cfg(feature = "smtp")]
            MailTransport::Smtp(sender) => sender.deliver(mail).await,
        }
    }
}

async fn deliver_to_outbox(dir: &Path, mail: &ComposedMail) -> Result<(), MailFailure> {
    let id = mail.id();
    let dir = dir.to_path_buf();
    let bytes = Zeroizing::new(mail.formatted().to_vec());
    let written = tokio::task::spawn_blocking(move || write_outbox_file(&dir, id, &bytes)).await;
    match written {
        Ok(Ok(path)) => {
            tracing::debug!(mail = %id, path = %path.display(), "mail written to the outbox");
            Ok(())
        }
        Ok(Err(err)) => {
            tracing::warn!(mail = %id, error = %err, "mail not written to the outbox");
            Err(MailFailure::Outbox)
        }
        Err(join) => {
            tracing::warn!(mail = %id, error = %join, "outbox writer did not finish");
            Err(MailFailure::Outbox)
        }
    }
}

/// The outbox file for `id`: `<dir>/<id>.eml`.
pub fn outbox_file(dir: &Path, id: MailId) -> PathBuf {
    dir.join(format!("{id}.eml"))
}

/// Writes `bytes` as `<dir>/<id>.eml`, whole or not at all (module docs), creating `dir`
/// `0700` if it is missing.
///
/// # Errors
/// The directory cannot be created, or the file written, flushed or renamed; the error
/// names the path.
fn write_outbox_file(dir: &Path, id: MailId, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let named = |err: std::io::Error, what: &str, path: &Path| {
        std::io::Error::new(err.kind(), format!("{what} {}: {err}", path.display()))
    };
    match std::fs::DirBuilder::new().mode(OUTBOX_DIR_MODE).create(dir) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => {}
        Err(err) => return Err(named(err, "cannot create", dir)),
    }
    let target = outbox_file(dir, id);
    let mut temporary = tempfile::Builder::new()
        .prefix(&format!(".{id}."))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|err| named(err, "cannot create a file in", dir))?;
    temporary
        .write_all(bytes)
        .and_then(|()| temporary.as_file().sync_all())
        .map_err(|err| named(err, "cannot write", temporary.path()))?;
    temporary
        .persist(&target)
        .map_err(|err| named(err.error, "cannot rename onto", &target))?;
    std::fs::File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(|err| named(err, "cannot flush", dir))?;
    Ok(target)
}

#[cfg(feature = "smtp")]
mod smtp {
    use std::fmt;
    use std::time::Duration;

    use lettre::transport::smtp::authentication::Credentials;
    use lettre::transport::smtp::client::{Tls, TlsParameters};
    use lettre::{AsyncSmtpTransport, AsyncTransport as _, Tokio1Executor};
    use secrecy::ExposeSecret as _;

    use crate::config::{SmtpCredentials, SmtpSecurity, SmtpUrl};
    use crate::mail::message::ComposedMail;
    use crate::store::MailFailure;

    /// lettre's SMTP client for one server, where that server is (for the log), and how
    /// long one delivery may take.
    pub struct SmtpSender {
        client: AsyncSmtpTransport<Tokio1Executor>,
        url: SmtpUrl,
        deadline: Duration,
    }

    impl fmt::Debug for SmtpSender {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            // The host and how it is secured; never the login.
            write!(
                f,
                "{}:{} ({:?})",
                self.url.host, self.url.port, self.url.security
            )
        }
    }

    impl SmtpSender {
        /// A client for `url`, logging in with `credentials` when given; connecting times
        /// out after `connect_timeout`, a whole delivery after `deadline`.
        pub(super) fn new(
            url: &SmtpUrl,
            credentials: Option<&SmtpCredentials>,
            connect_timeout: Duration,
            deadline: Duration,
        ) -> Result<SmtpSender, String> {
            let tls_parameters = || {
                TlsParameters::builder(url.host.clone())
                    .build_rustls()
                    .map_err(|err| format!("mail.smtp_url: TLS for `{}`: {err}", url.host))
            };
            let tls = match url.security {
                SmtpSecurity::ImplicitTls => Tls::Wrapper(tls_parameters()?),
                SmtpSecurity::StartTls => Tls::Required(tls_parameters()?),
                SmtpSecurity::Plain => Tls::None,
            };
            let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&url.host)
                .port(url.port)
                .tls(tls)
                .timeout(Some(connect_timeout));
            if let Some(login) = credentials {
                builder = builder.credentials(Credentials::new(
                    login.username.clone(),
                    login.password.expose_secret().to_string(),
                ));
            }
            Ok(SmtpSender {
                client: builder.build(),
                url: url.clone(),
                deadline,
            })
        }

        pub(super) async fn deliver(&self, mail: &ComposedMail) -> Result<(), MailFailure> {
            let sent = tokio::time::timeout(
                self.deadline,
                self.client.send_raw(mail.envelope(), mail.formatted()),
            )
            .await;
            let Ok(sent) = sent else {
                tracing::warn!(
                    mail = %mail.id(),
                    server = ?self,
                    failure = MailFailure::Timeout.code(),
                    "mail not accepted: the delivery took too long"
                );
                return Err(MailFailure::Timeout);
            };
            match sent {
                Ok(_) => {
                    tracing::debug!(mail = %mail.id(), server = ?self, "mail accepted by the server");
                    Ok(())
                }
                Err(err) => {
                    let failure = classify(&err);
                    let reply = err
                        .status()
                        .map(|code| code.to_string())
                        .unwrap_or_default();
                    // The reply code and the failure's kind only: a reply's text may quote
                    // the mail, and the error's Display carries it.
                    tracing::warn!(
                        mail = %mail.id(),
                        server = ?self,
                        failure = failure.code(),
                        reply = %reply,
                        "mail not accepted"
                    );
                    Err(failure)
                }
            }
        }
    }

    /// The failure code for one of lettre's SMTP errors: a 4xx reply is
    /// [`MailFailure::Transient`], a 5xx [`MailFailure::Permanent`]; a timeout (connecting
    /// or waiting for a reply) [`MailFailure::Timeout`]; a TLS handshake or certificate
    /// failure, or a server that cannot STARTTLS when it is required, [`MailFailure::Tls`];
    /// a garbled reply [`MailFailure::Transient`]; anything else that kept the mail from
    /// the server (refused, reset, unresolvable, no usable login mechanism) is
    /// [`MailFailure::Connect`].
    pub(crate) fn classify(err: &lettre::transport::smtp::Error) -> MailFailure {
        if err.is_transient() {
            MailFailure::Transient
        } else if err.is_permanent() {
            MailFailure::Permanent
        } else if err.is_timeout() {
            MailFailure::Timeout
        } else if err.is_tls() || caused_by_tls(err) {
            MailFailure::Tls
        } else if err.is_response() {
            MailFailure::Transient
        } else {
            MailFailure::Connect
        }
    }

    /// Whether a rustls error is in the chain (tokio-rustls wraps it in an `io::Error`), or
    /// lettre refused to go on without the STARTTLS a `?tls=required` URL demands.
    fn caused_by_tls(err: &lettre::transport::smtp::Error) -> bool {
        let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
        while let Some(cause) = source {
            if cause.downcast_ref::<rustls::Error>().is_some() {
                return true;
            }
            if let Some(io) = cause.downcast_ref::<std::io::Error>() {
                if io
                    .get_ref()
                    .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
                {
                    return true;
                }
            }
            source = cause.source();
        }
        err.is_client() && err.to_string().contains("STARTTLS")
    }
}

#[cfg(test)]
#[cfg(not(feature = "smtp"))]
mod tests_without_smtp {
    use super::*;
    use crate::config::SmtpUrl;

    #[test]
    fn a_build_without_smtp_refuses_smtp_and_the_outbox() {
        let mut settings = Settings::default();
        settings.mail.transport = MailTransportKind::Smtp;
        settings.mail.smtp_url = Some(SmtpUrl::parse("smtp://127.0.0.1:25").unwrap());
        let refused = MailTransport::from_settings(&settings).unwrap_err();
        assert!(
            refused.contains("this build has no SMTP: built without the `smtp` feature"),
            "{refused}"
        );
        settings.mail.transport = MailTransportKind::Outbox;
        let refused = MailTransport::from_settings(&settings).unwrap_err();
        assert!(
            refused.contains("built without the `smtp` feature"),
            "{refused}"
        );
        settings.mail.transport = MailTransportKind::None;
        assert!(!MailTransport::from_settings(&settings)
            .unwrap()
            .is_enabled());
    }
}

/// Delivery needs a composed mail, and composing needs lettre (feature `smtp`).
#[cfg(test)]
#[cfg(feature = "smtp")]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;
    use std::time::Duration;

    use super::*;
    use crate::config::{MailSettings, SmtpUrl};
    use crate::mail::message::Templates;
    use crate::mail::{EmailAddress, LinkPurpose};

    const LINK: &str =
        "http://127.0.0.1:8080/account/magic#token=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

    fn composed(id: MailId) -> ComposedMail {
        let templates = Templates::load(&MailSettings::default()).unwrap();
        templates
            .compose(
                id,
                LinkPurpose::Magic,
                &EmailAddress::parse("ada@example.org").unwrap(),
                LINK,
                Duration::from_secs(1800),
                1_760_000_000,
            )
            .unwrap()
    }

    fn outbox_settings(dir: &Path) -> Settings {
        let mut settings = Settings::default();
        settings.mail.transport = MailTransportKind::Outbox;
        settings.mail.outbox_dir = Some(dir.to_path_buf());
        settings
    }

    #[tokio::test]
    async fn the_outbox_writes_one_private_eml_per_mail_that_parses_back() {
        let data = tempfile::tempdir().unwrap();
        let dir = data.path().join("outbox");
        let transport = MailTransport::from_settings(&outbox_settings(&dir)).unwrap();
        assert!(transport.is_enabled());
        let id = MailId::generate();
        transport.deliver(&composed(id)).await.unwrap();

        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "the outbox directory is the owner's");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, [format!("{id}.eml")], "one file, no temporary left");
        let file = outbox_file(&dir, id);
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        let raw = std::fs::read(&file).unwrap();
        let message = mail_parser::MessageParser::default().parse(&raw).unwrap();
        assert_eq!(
            message.to().unwrap().first().unwrap().address(),
            Some("ada@example.org")
        );
        assert_eq!(
            message.from().unwrap().first().unwrap().address(),
            Some("no-reply@localhost")
        );
        assert_eq!(message.subject(), Some("Your sign-in link for claimd"));
        assert_eq!(
            message.message_id(),
            Some(format!("{id}@localhost").as_str())
        );
        assert_eq!(
            message.header_raw("Auto-Submitted").map(str::trim),
            Some("auto-generated")
        );
        let text = message.body_text(0).unwrap();
        assert!(text.lines().any(|line| line == LINK), "{text}");
    }

    #[tokio::test]
    async fn delivering_the_same_mail_again_replaces_its_file() {
        let data = tempfile::tempdir().unwrap();
        let dir = data.path().join("outbox");
        let transport = MailTransport::Outbox(dir.clone());
        let id = MailId::generate();
        let first = composed(id);
        transport.deliver(&first).await.unwrap();
        let again = composed(id);
        transport.deliver(&again).await.unwrap();
        let other = MailId::generate();
        transport.deliver(&composed(other)).await.unwrap();

        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, [format!("{id}.eml"), format!("{other}.eml")]);
        assert_eq!(
            std::fs::read(outbox_file(&dir, id)).unwrap(),
            again.formatted()
        );
    }

    #[tokio::test]
    async fn an_outbox_that_cannot_be_created_fails_as_outbox() {
        let data = tempfile::tempdir().unwrap();
        // Its parent is missing: claimd creates the outbox itself, never a tree of them.
        let transport = MailTransport::Outbox(data.path().join("missing").join("outbox"));
        assert_eq!(
            transport.deliver(&composed(MailId::generate())).await,
            Err(MailFailure::Outbox)
        );
        let file = data.path().join("a-file");
        std::fs::write(&file, b"").unwrap();
        assert_eq!(
            MailTransport::Outbox(file)
                .deliver(&composed(MailId::generate()))
                .await,
            Err(MailFailure::Outbox)
        );
    }

    #[test]
    fn the_default_outbox_is_in_the_data_directory() {
        let mut settings = Settings::default();
        settings.storage.path = PathBuf::from("/var/lib/claimd");
        settings.mail.transport = MailTransportKind::Outbox;
        match MailTransport::from_settings(&settings).unwrap() {
            MailTransport::Outbox(dir) => assert_eq!(dir, Path::new("/var/lib/claimd/outbox")),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn none_sends_nothing() {
        let transport = MailTransport::from_settings(&Settings::default()).unwrap();
        assert!(!transport.is_enabled());
        assert_eq!(
            transport.deliver(&composed(MailId::generate())).await,
            Err(MailFailure::Permanent)
        );
    }

    mod smtp_errors {
        //! lettre's errors cannot be built by hand, so these provoke real ones from servers
        //! on loopback that misbehave in one way each, within a short timeout.

        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        use tokio::net::TcpListener;

        use super::*;
        use crate::config::SmtpCredentials;

        /// A listener on loopback that answers each connection with `greeting` (or stays
        /// silent) and then reads until the client hangs up.
        async fn misbehaving_server(greeting: Option<&'static [u8]>) -> u16 {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            tokio::spawn(async move {
                while let Ok((mut stream, _)) = listener.accept().await {
                    tokio::spawn(async move {
                        if let Some(greeting) = greeting {
                            let _ = stream.write_all(greeting).await;
                        }
                        let mut sink = [0u8; 512];
                        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
                    });
                }
            });
            port
        }

        fn sender(url: &str, timeout: Duration) -> smtp::SmtpSender {
            smtp::SmtpSender::new(&SmtpUrl::parse(url).unwrap(), None, timeout, timeout).unwrap()
        }

        async fn failure(url: &str) -> MailFailure {
            sender(url, Duration::from_millis(500))
                .deliver(&composed(MailId::generate()))
                .await
                .unwrap_err()
        }

        #[tokio::test]
        async fn a_4xx_greeting_is_transient_and_a_5xx_permanent() {
            let busy = misbehaving_server(Some(b"421 try later\r\n")).await;
            assert_eq!(
                failure(&format!("smtp://127.0.0.1:{busy}")).await,
                MailFailure::Transient
            );
            let no = misbehaving_server(Some(b"554 no service\r\n")).await;
            assert_eq!(
                failure(&format!("smtp://127.0.0.1:{no}")).await,
                MailFailure::Permanent
            );
        }

        #[tokio::test]
        async fn a_closed_port_is_connect() {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            drop(listener);
            assert_eq!(
                failure(&format!("smtp://127.0.0.1:{port}")).await,
                MailFailure::Connect
            );
        }

        #[tokio::test]
        async fn a_silent_server_is_a_timeout() {
            let silent = misbehaving_server(None).await;
            assert_eq!(
                failure(&format!("smtp://127.0.0.1:{silent}")).await,
                MailFailure::Timeout
            );
        }

        #[tokio::test]
        async fn plain_text_where_tls_is_expected_is_tls() {
            let plain = misbehaving_server(Some(b"220 plain.example ESMTP\r\n")).await;
            assert_eq!(
                failure(&format!("smtps://127.0.0.1:{plain}")).await,
                MailFailure::Tls
            );
        }

        #[tokio::test]
        async fn a_server_without_starttls_is_tls_when_it_is_required() {
            let port = {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                let port = listener.local_addr().unwrap().port();
                tokio::spawn(async move {
                    let (stream, _) = listener.accept().await.unwrap();
                    let (read, mut write) = stream.into_split();
                    let mut lines = tokio::io::BufReader::new(read);
                    write
                        .write_all(b"220 plain.example ESMTP\r\n")
                        .await
                        .unwrap();
                    let mut line = String::new();
                    while {
                        line.clear();
                        tokio::io::AsyncBufReadExt::read_line(&mut lines, &mut line)
                            .await
                            .unwrap()
                            > 0
                    } {
                        let reply: &[u8] = if line.starts_with("EHLO") {
                            b"250-plain.example\r\n250 8BITMIME\r\n"
                        } else if line.starts_with("QUIT") {
                            b"221 bye\r\n"
                        } else {
                            b"502 no\r\n"
                        };
                        write.write_all(reply).await.unwrap();
                    }
                });
                port
            };
            assert_eq!(
                failure(&format!("smtp://127.0.0.1:{port}?tls=required")).await,
                MailFailure::Tls
            );
        }

        #[test]
        fn debug_names_the_server_but_never_the_login() {
            let url = SmtpUrl::parse("smtps://mail.example.org").unwrap();
            let login = SmtpCredentials {
                username: "claimd-user".to_string(),
                password: "hunter2-secret".into(),
            };
            let sender =
                smtp::SmtpSender::new(&url, Some(&login), SMTP_TIMEOUT, SMTP_DELIVERY_TIMEOUT)
                    .unwrap();
            let debug = format!("{:?}", MailTransport::Smtp(Box::new(sender)));
            assert!(debug.contains("mail.example.org:465"), "{debug}");
            assert!(
                !debug.contains("hunter2") && !debug.contains("claimd-user"),
                "{debug}"
            );
        }
    }
}
