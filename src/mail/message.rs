//! The mails claimd sends: one per [`LinkPurpose`], each a `multipart/alternative` of a
//! plain-text part and an HTML part, composed with lettre's message builder.
//!
//! What every mail holds, and why:
//! - the link on a line of its own in the text part (API.md puts it there: a reader, a test
//!   or a person copying it finds it whole), and in the HTML part both as a button-like
//!   anchor and as text, for clients that hide anchors;
//! - how long the link lives, in words ("30 minutes"), and the product's name;
//! - `From:` (`mail.from`), an optional `Reply-To:` (`mail.reply_to`), `To:`, `Subject:`,
//!   `Date:` (the time passed in), a `Message-ID:` made of the queue entry's id and the
//!   sender's domain (a mail sent again after a crash keeps its id, so receivers can tell),
//!   and `Auto-Submitted: auto-generated` (RFC 3834: no vacation replies to it);
//! - nothing else: no images, no remote resources, no tracking pixels or redirecting links.
//!
//! Templates: each purpose has a built-in subject, text and HTML. A file in
//! `mail.templates_dir` named `<purpose>.subject`, `<purpose>.txt` or `<purpose>.html`
//! replaces that part; files are read and checked once, by [`Templates::load`] at start-up,
//! so a bad one stops the server instead of a mail. Placeholders are `{product}`, `{link}`,
//! `{expires_in}` and `{email}`; values put into the HTML part are HTML-escaped, and a
//! subject is kept to one line whatever a value holds.
//!
//! A composed mail holds a live link: [`ComposedMail`]'s `Debug` shows its id and size, never
//! its bytes, and the bytes it keeps are zeroed when it is dropped (lettre's own
//! intermediate buffers are freed, not zeroed). No body is ever logged here.
//!
//! lettre (and the IDNA tables its address parser links) is behind the cargo feature `smtp`,
//! as the SMTP client is: with it the edge binary outgrew its 8 MB. A build without it
//! still loads and checks templates, but [`Templates::compose`] answers
//! [`ComposeError::NoMail`], and the settings refuse every transport but `none`, so it is
//! never asked to.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use zeroize::Zeroizing;

use crate::config::MailSettings;
use crate::domain::MailId;
use crate::mail::{EmailAddress, LinkPurpose};

/// The placeholders templates may use.
pub const PLACEHOLDERS: [&str; 4] = ["product", "link", "expires_in", "email"];

/// Largest template file read, in bytes: a mail, not a web page.
pub const MAX_TEMPLATE_BYTES: u64 = 64 * 1024;

/// One purpose's mail before its values are filled in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Template {
    subject: String,
    text: String,
    html: String,
}

/// The mails for every purpose, the sender and the product name: built once at start-up
/// by [`Templates::load`], then used for every mail.
#[derive(Clone, Debug)]
pub struct Templates {
    #[cfg(feature = "smtp")]
    sender: mime::Sender,
    product: String,
    /// Indexed by [`purpose_index`].
    templates: [Template; 3],
}

/// Why the templates cannot be used. Each names the setting or the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// `mail.from` or `mail.reply_to` is not a mailbox.
    #[error("{key}: {why}")]
    Mailbox { key: &'static str, why: String },
    /// A template file exists but cannot be read.
    #[error("mail.templates_dir: cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A template file is read but cannot be used.
    #[error("mail.templates_dir: {}: {why}", path.display())]
    Invalid { path: PathBuf, why: String },
}

/// Why one mail could not be composed. Nothing here names the address or the link.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ComposeError {
    /// The address cannot be written into a `To:` header (lettre refuses it).
    #[error("the recipient's address cannot be written into a mail header")]
    Recipient,
    /// lettre refused the message.
    #[cfg(feature = "smtp")]
    #[error("the mail could not be built: {0}")]
    Build(#[from] lettre::error::Error),
    /// This binary cannot write mail at all.
    #[error("this build has no mail: built without the `smtp` feature")]
    NoMail,
}

impl Templates {
    /// The built-in templates with any overrides from `mail.templates_dir`, the sender
    /// and the product name from `settings`. Reads every override file now, so that a
    /// missing link or an unknown placeholder stops the start rather than a mail.
    ///
    /// # Errors
    /// `mail.from` or `mail.reply_to` is not a mailbox; a template file cannot be read, is
    /// not UTF-8, is too large, uses an unknown placeholder, lacks `{link}` (text and HTML)
    /// or, for a subject, is empty, spans lines or holds `{link}`.
    pub fn load(settings: &MailSettings) -> Result<Templates, TemplateError> {
        if !cfg!(feature = "smtp") {
            // Nothing is composed without lettre (module docs), so nothing is read or
            // checked: the edge binary links none of it.
            return Ok(Templates {
                #[cfg(feature = "smtp")]
                sender: mime::Sender::new(settings)?,
                product: String::new(),
                templates: LinkPurpose::ALL.map(|_| Template::default()),
            });
        }
        #[cfg(feature = "smtp")]
        let sender = mime::Sender::new(settings)?;
        let mut templates = LinkPurpose::ALL.map(built_in);
        if let Some(dir) = &settings.templates_dir {
            for purpose in LinkPurpose::ALL {
                let template = &mut templates[purpose_index(purpose)];
                let name = purpose.path();
                if let Some(subject) =
                    read_override(dir, &format!("{name}.subject"), Part::Subject)?
                {
                    template.subject = subject;
                }
                if let Some(text) = read_override(dir, &format!("{name}.txt"), Part::Text)? {
                    template.text = text;
                }
                if let Some(html) = read_override(dir, &format!("{name}.html"), Part::Html)? {
                    template.html = html;
                }
            }
        }
        Ok(Templates {
            #[cfg(feature = "smtp")]
            sender,
            product: settings.product_name.trim().to_string(),
            templates,
        })
    }

    /// The mail for `purpose` to `to`, carrying `link` (which lives `link_ttl`), dated
    /// `now` (Unix seconds, from the caller's clock). `id` is the queue entry's: it makes
    /// the `Message-ID`, so composing the same entry again gives the same id.
    ///
    /// # Errors
    /// lettre cannot write the address into `To:` or refuses the message; the build has no
    /// mail (feature `smtp` off).
    #[allow(
        clippy::too_many_arguments,
        reason = "each is one fact of the mail; a struct would only rename them"
    )]
    pub fn compose(
        &self,
        id: MailId,
        purpose: LinkPurpose,
        to: &EmailAddress,
        link: &str,
        link_ttl: Duration,
        now: u64,
    ) -> Result<ComposedMail, ComposeError> {
        if !cfg!(feature = "smtp") {
            return Err(ComposeError::NoMail);
        }
        let template = &self.templates[purpose_index(purpose)];
        let expires_in = human_duration(link_ttl);
        let values = Values {
            product: &self.product,
            link,
            expires_in: &expires_in,
            email: to.as_str(),
        };
        let rendered = Rendered {
            subject: one_line(&render(&template.subject, &values, Escape::None)),
            text: Zeroizing::new(render(&template.text, &values, Escape::None)),
            html: Zeroizing::new(render(&template.html, &values, Escape::Html)),
        };
        self.assemble(id, to, rendered, now)
    }

    #[cfg(feature = "smtp")]
    fn assemble(
        &self,
        id: MailId,
        to: &EmailAddress,
        rendered: Rendered,
        now: u64,
    ) -> Result<ComposedMail, ComposeError> {
        let (envelope, bytes) = self.sender.assemble(id, to, &rendered, now)?;
        Ok(ComposedMail {
            id,
            envelope,
            bytes,
        })
    }

    #[cfg(not(feature = "smtp"))]
    fn assemble(
        &self,
        _id: MailId,
        _to: &EmailAddress,
        _rendered: Rendered,
        _now: u64,
    ) -> Result<ComposedMail, ComposeError> {
        Err(ComposeError::NoMail)
    }
}

/// One mail's parts, its placeholders filled in.
#[cfg_attr(
    not(feature = "smtp"),
    allow(
        dead_code,
        reason = "only lettre reads them; without it nothing is sent"
    )
)]
struct Rendered {
    subject: String,
    text: Zeroizing<String>,
    html: Zeroizing<String>,
}

/// One mail ready to hand to a transport: its envelope and its RFC 5322 bytes.
pub struct ComposedMail {
    id: MailId,
    #[cfg(feature = "smtp")]
    envelope: lettre::address::Envelope,
    bytes: Zeroizing<Vec<u8>>,
}

impl ComposedMail {
    /// The queue entry this mail was composed for.
    pub fn id(&self) -> MailId {
        self.id
    }

    /// The whole message as RFC 5322 text (CRLF line ends): what an outbox file holds and
    /// what SMTP sends after `DATA`. It carries a live link: write it only where the mail
    /// is meant to go, never to a log.
    pub fn formatted(&self) -> &[u8] {
        &self.bytes
    }

    /// `MAIL FROM` and `RCPT TO`.
    #[cfg(feature = "smtp")]
    pub fn envelope(&self) -> &lettre::address::Envelope {
        &self.envelope
    }
}

impl fmt::Debug for ComposedMail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The body holds a live token, and the envelope a person's address.
        f.debug_struct("ComposedMail")
            .field("id", &self.id)
            .field("bytes", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

/// Puts a duration in words, to the minute, rounded down (a link never lives shorter than
/// its mail says): "30 minutes", "1 hour and 30 minutes", "7 days".
pub fn human_duration(duration: Duration) -> String {
    let minutes = (duration.as_secs() / 60).max(1);
    let (days, hours, minutes) = (minutes / 1440, minutes % 1440 / 60, minutes % 60);
    let mut parts = Vec::new();
    for (count, unit) in [(days, "day"), (hours, "hour"), (minutes, "minute")] {
        match count {
            0 => {}
            1 => parts.push(format!("1 {unit}")),
            _ => parts.push(format!("{count} {unit}s")),
        }
    }
    match parts.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => "1 minute".to_string(),
    }
}

fn purpose_index(purpose: LinkPurpose) -> usize {
    match purpose {
        LinkPurpose::VerifyEmail => 0,
        LinkPurpose::ResetPassword => 1,
        LinkPurpose::Magic => 2,
    }
}

/// What a template file is for: what it must and must not hold.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Subject,
    Text,
    Html,
}

/// `dir/name` when it exists, checked for its part; `None` when there is no such file.
fn read_override(dir: &Path, name: &str, part: Part) -> Result<Option<String>, TemplateError> {
    let path = dir.join(name);
    let read = |source| TemplateError::Read {
        path: path.clone(),
        source,
    };
    let metadata = match std::fs::metadata(&path) {
        Ok(metadata) => metadata,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(read(err)),
    };
    let invalid = |why: &str| TemplateError::Invalid {
        path: path.clone(),
        why: why.to_string(),
    };
    if !metadata.is_file() {
        return Err(invalid("not a file"));
    }
    if metadata.len() > MAX_TEMPLATE_BYTES {
        return Err(invalid("larger than 64 KiB"));
    }
    let bytes = std::fs::read(&path).map_err(read)?;
    let text = String::from_utf8(bytes).map_err(|_| invalid("not UTF-8"))?;
    check_template(&text, part).map_err(|why| invalid(&why))?;
    Ok(Some(match part {
        Part::Subject => text.trim().to_string(),
        Part::Text | Part::Html => text,
    }))
}

/// What a template must satisfy to be used: only known placeholders; `{link}` in the text
/// and HTML parts; a subject on one line, without the link (subjects end up in logs and
/// notifications).
fn check_template(text: &str, part: Part) -> Result<(), String> {
    if let Some(unknown) = placeholders(text).find(|name| !PLACEHOLDERS.contains(name)) {
        return Err(format!(
            "unknown placeholder {{{unknown}}}; the known ones are {{product}}, {{link}}, \
             {{expires_in}} and {{email}}"
        ));
    }
    let has_link = placeholders(text).any(|name| name == "link");
    match part {
        Part::Subject => {
            let subject = text.trim();
            if subject.is_empty() {
                return Err("the subject is empty".to_string());
            }
            if subject.contains(['\r', '\n']) {
                return Err("a subject is one line".to_string());
            }
            if has_link {
                return Err("a subject must not hold {link}".to_string());
            }
        }
        Part::Text | Part::Html => {
            if !has_link {
                return Err("the template does not hold {link}".to_string());
            }
        }
    }
    Ok(())
}

/// The names of `{name}` placeholders in `text` (lowercase letters and `_` only, so CSS and
/// other braces are left alone).
fn placeholders(text: &str) -> impl Iterator<Item = &str> {
    text.split('{').skip(1).filter_map(|after| {
        let (name, _) = after.split_once('}')?;
        let is_name = !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        is_name.then_some(name)
    })
}

/// The values placeholders stand for in one mail.
struct Values<'a> {
    product: &'a str,
    link: &'a str,
    expires_in: &'a str,
    email: &'a str,
}

impl Values<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        match name {
            "product" => Some(self.product),
            "link" => Some(self.link),
            "expires_in" => Some(self.expires_in),
            "email" => Some(self.email),
            _ => None,
        }
    }
}

#[derive(Clone, Copy)]
enum Escape {
    None,
    Html,
}

/// Fills in the placeholders, left to right in one pass (a value is never read as a
/// template, so a product name holding `{link}` stays text). Anything else in braces is
/// copied as it is.
fn render(template: &str, values: &Values<'_>, escape: Escape) -> String {
    let mut out = String::with_capacity(template.len() + values.link.len() * 2);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let value = after
            .split_once('}')
            .and_then(|(name, _)| values.get(name).map(|value| (name, value)));
        match value {
            Some((name, value)) => {
                match escape {
                    Escape::None => out.push_str(value),
                    Escape::Html => escape_html(value, &mut out),
                }
                rest = &after[name.len() + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Escapes text for HTML content and double- or single-quoted attribute values.
fn escape_html(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// A subject is one header line: any control character a value brought in becomes a space.
fn one_line(subject: &str) -> String {
    subject
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The built-in mail for `purpose`. ASCII only, so the text part goes as 7bit and the link
/// line is left whole in the raw message.
fn built_in(purpose: LinkPurpose) -> Template {
    let (subject, intro, action, button, outro) = match purpose {
        LinkPurpose::VerifyEmail => (
            "Confirm your email address for {product}",
            "Someone, most likely you, asked to use {email} with {product}.",
            "To confirm that this address is yours, open this link:",
            "Confirm my address",
            "If this was not you, ignore this mail: the address stays unconfirmed.",
        ),
        LinkPurpose::ResetPassword => (
            "Reset your {product} password",
            "Someone, most likely you, asked to reset the password of the {product} account for {email}.",
            "To choose a new password, open this link:",
            "Choose a new password",
            "If this was not you, ignore this mail: your password stays as it is. Setting a new \
             one signs you out everywhere else.",
        ),
        LinkPurpose::Magic => (
            "Your sign-in link for {product}",
            "Someone, most likely you, asked to sign in to {product} as {email}.",
            "To sign in, open this link:",
            "Sign in",
            "If this was not you, ignore this mail: nobody can sign in without this link.",
        ),
    };
    let text = format!(
        "Hello,\n\
         \n\
         {intro}\n\
         {action}\n\
         \n\
         {{link}}\n\
         \n\
         The link works once and expires in {{expires_in}}.\n\
         \n\
         {outro}\n\
         \n\
         -- \n\
         {{product}}\n"
    );
    let html = format!(
        "<!DOCTYPE html>\n\
         <html>\n\
         <head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>{subject}</title></head>\n\
         <body style=\"margin:0;padding:24px;font-family:sans-serif;font-size:16px;line-height:1.5;color:#1f2328;background:#ffffff\">\n\
         <p>Hello,</p>\n\
         <p>{intro}<br>{action}</p>\n\
         <p><a href=\"{{link}}\" style=\"display:inline-block;padding:12px 20px;border-radius:6px;\
         background:#1f6feb;color:#ffffff;font-weight:bold;text-decoration:none\">{button}</a></p>\n\
         <p>Or copy this link into your browser:<br>\n\
         <span style=\"word-break:break-all;font-family:monospace\">{{link}}</span></p>\n\
         <p>The link works once and expires in {{expires_in}}.</p>\n\
         <p style=\"color:#59636e\">{outro}</p>\n\
         <p>{{product}}</p>\n\
         </body>\n\
         </html>\n"
    );
    Template {
        subject: subject.to_string(),
        text,
        html,
    }
}

#[cfg(feature = "smtp")]
pub(crate) use mime::parse_mailbox;

/// The lettre half: the sender's mailboxes, and a rendered mail turned into RFC 5322 bytes.
#[cfg(feature = "smtp")]
mod mime {
    use std::time::{Duration, UNIX_EPOCH};

    use lettre::address::{Address, Envelope};
    use lettre::message::header::{ContentTransferEncoding, HeaderName, HeaderValue};
    use lettre::message::{Body, Mailbox, MultiPart};
    use lettre::Message;
    use zeroize::{Zeroize as _, Zeroizing};

    use super::{ComposeError, Rendered, TemplateError};
    use crate::config::MailSettings;
    use crate::domain::MailId;
    use crate::mail::EmailAddress;

    /// RFC 3834 §5: mail a program sends on its own. Auto-responders leave it alone.
    const AUTO_SUBMITTED: HeaderName = HeaderName::new_from_ascii_str("Auto-Submitted");

    /// Who every mail is from.
    #[derive(Clone, Debug)]
    pub(super) struct Sender {
        from: Mailbox,
        reply_to: Option<Mailbox>,
        /// The right-hand side of every `Message-ID`: the `From:` address's domain.
        message_id_domain: String,
    }

    impl Sender {
        pub(super) fn new(settings: &MailSettings) -> Result<Sender, TemplateError> {
            let from = parse_mailbox(&settings.from).map_err(|why| TemplateError::Mailbox {
                key: "mail.from",
                why,
            })?;
            let reply_to = match &settings.reply_to {
                Some(text) => Some(parse_mailbox(text).map_err(|why| TemplateError::Mailbox {
                    key: "mail.reply_to",
                    why,
                })?),
                None => None,
            };
            Ok(Sender {
                message_id_domain: from.email.domain().to_string(),
                from,
                reply_to,
            })
        }

        /// The envelope and the bytes of one mail.
        pub(super) fn assemble(
            &self,
            id: MailId,
            to: &EmailAddress,
            rendered: &Rendered,
            now: u64,
        ) -> Result<(Envelope, Zeroizing<Vec<u8>>), ComposeError> {
            let recipient: Address = to.as_str().parse().map_err(|_| ComposeError::Recipient)?;
            let mut builder = Message::builder()
                .from(self.from.clone())
                .to(Mailbox::new(None, recipient))
                .subject(rendered.subject.clone())
                .date(UNIX_EPOCH + Duration::from_secs(now))
                .message_id(Some(format!("<{id}@{}>", self.message_id_domain)))
                .raw_header(HeaderValue::new(
                    AUTO_SUBMITTED,
                    "auto-generated".to_string(),
                ));
            if let Some(reply_to) = &self.reply_to {
                builder = builder.reply_to(reply_to.clone());
            }
            let message = builder.multipart(MultiPart::alternative_plain_html(
                body(&rendered.text),
                body(&rendered.html),
            ))?;
            Ok((
                message.envelope().clone(),
                Zeroizing::new(message.formatted()),
            ))
        }
    }

    /// Reads a mailbox as `mail.from` and `mail.reply_to` spell it: `Name <address>` or a bare
    /// address.
    ///
    /// # Errors
    /// Why lettre refuses it.
    pub(crate) fn parse_mailbox(text: &str) -> Result<Mailbox, String> {
        text.trim().parse::<Mailbox>().map_err(|err| {
            format!("`{text}` is not a mailbox like `claimd <no-reply@example.org>` ({err})")
        })
    }

    /// Longest line 7bit allows (RFC 5322 §2.1.1), in bytes before the CRLF.
    const MAX_LINE_BYTES: usize = 998;

    /// A part's body: 7bit when it is ASCII with lines of at most 998 bytes (the built-in
    /// templates always are), so the link stays whole in the raw message for anyone reading an
    /// outbox file; otherwise lettre's choice (quoted-printable or base64), which a mail
    /// reader decodes. lettre alone would pick quoted-printable for any line over 76
    /// characters, and a link is longer than that.
    fn body(text: &str) -> Body {
        let mut crlf = String::with_capacity(text.len() + text.len() / 32);
        for line in text.split_inclusive('\n') {
            let line = line.strip_suffix('\n').unwrap_or(line);
            crlf.push_str(line.strip_suffix('\r').unwrap_or(line));
            crlf.push_str("\r\n");
        }
        let seven_bit = crlf.split("\r\n").all(|line| {
            line.len() <= MAX_LINE_BYTES
                && line
                    .bytes()
                    .all(|b| b.is_ascii() && b != 0 && b != b'\r' && b != b'\n')
        });
        if seven_bit {
            Body::dangerous_pre_encoded(crlf.into_bytes(), ContentTransferEncoding::SevenBit)
        } else {
            crlf.zeroize();
            Body::new(text.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(feature = "smtp")]
    use mail_parser::MimeHeaders as _;

    use super::*;

    const LINK: &str = "https://id.example/account/reset-password#token=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

    fn settings() -> MailSettings {
        MailSettings {
            from: "Example ID <no-reply@id.example>".to_string(),
            reply_to: Some("help@id.example".to_string()),
            product_name: "Example ID".to_string(),
            ..MailSettings::default()
        }
    }

    #[cfg(feature = "smtp")]
    fn compose_with(templates: &Templates, purpose: LinkPurpose) -> String {
        let to = EmailAddress::parse("ada@example.org").unwrap();
        let mail = templates
            .compose(
                MailId::generate(),
                purpose,
                &to,
                LINK,
                Duration::from_secs(30 * 60),
                1_760_000_000,
            )
            .unwrap();
        String::from_utf8(mail.formatted().to_vec()).unwrap()
    }

    #[cfg(feature = "smtp")]
    fn parsed(raw: &str) -> mail_parser::Message<'_> {
        mail_parser::MessageParser::default()
            .parse(raw.as_bytes())
            .unwrap()
    }

    #[cfg(feature = "smtp")]
    #[test]
    fn the_text_part_holds_the_link_on_a_line_of_its_own() {
        let templates = Templates::load(&settings()).unwrap();
        for purpose in LinkPurpose::ALL {
            let raw = compose_with(&templates, purpose);
            let message = parsed(&raw);
            let text = message.body_text(0).unwrap();
            assert!(
                text.lines().any(|line| line.trim_end() == LINK),
                "{purpose}: {text}"
            );
            assert!(text.contains("expires in 30 minutes"), "{text}");
            assert!(text.contains("Example ID"), "{text}");
            // ASCII templates go as 7bit: the raw message holds the link whole too.
            assert!(raw.contains(&format!("\r\n{LINK}\r\n")), "{purpose}: {raw}");
        }
    }

    #[cfg(feature = "smtp")]
    #[test]
    fn the_html_part_links_as_a_button_and_as_text_with_nothing_remote() {
        let templates = Templates::load(&settings()).unwrap();
        let raw = compose_with(&templates, LinkPurpose::Magic);
        let message = parsed(&raw);
        let html = message.body_html(0).unwrap();
        assert!(html.contains(&format!("<a href=\"{LINK}\"")), "{html}");
        assert!(html.contains(&format!(">{LINK}</span>")), "{html}");
        for remote in ["<img", "src=", "url(", "<link", "<script", "@import"] {
            assert!(!html.contains(remote), "{remote} in {html}");
        }
        let hrefs = html.matches("href=").count();
        assert_eq!(hrefs, 1, "the link is the only link");
    }

    #[cfg(feature = "smtp")]
    #[test]
    fn the_mail_is_multipart_alternative_with_the_required_headers() {
        let templates = Templates::load(&settings()).unwrap();
        let to = EmailAddress::parse("Ada@Example.org").unwrap();
        let id = MailId::generate();
        let mail = templates
            .compose(
                id,
                LinkPurpose::VerifyEmail,
                &to,
                LINK,
                Duration::from_secs(3600),
                1_760_000_000,
            )
            .unwrap();
        let raw = String::from_utf8(mail.formatted().to_vec()).unwrap();
        let message = parsed(&raw);
        assert!(raw.contains("Auto-Submitted: auto-generated\r\n"), "{raw}");
        assert_eq!(
            message.message_id(),
            Some(format!("{id}@id.example").as_str())
        );
        let reply_to = message.reply_to().unwrap().first().unwrap();
        assert_eq!(reply_to.address(), Some("help@id.example"));
        let from = message.from().unwrap().first().unwrap();
        assert_eq!(from.address(), Some("no-reply@id.example"));
        assert_eq!(from.name(), Some("Example ID"));
        assert_eq!(
            message.to().unwrap().first().unwrap().address(),
            Some("Ada@Example.org")
        );
        assert_eq!(
            message.subject(),
            Some("Confirm your email address for Example ID")
        );
        assert_eq!(message.date().unwrap().to_timestamp(), 1_760_000_000);
        let content_type = message.content_type().unwrap();
        assert_eq!(content_type.ctype(), "multipart");
        assert_eq!(content_type.subtype(), Some("alternative"));
        assert!(message.body_text(0).unwrap().contains("expires in 1 hour"));
        assert_eq!(mail.id(), id);
        assert_eq!(mail.envelope().to().len(), 1);
        assert_eq!(
            mail.envelope().from().unwrap().to_string(),
            "no-reply@id.example"
        );
    }

    #[cfg(feature = "smtp")]
    #[test]
    fn without_reply_to_there_is_no_reply_to_header() {
        let templates = Templates::load(&MailSettings {
            reply_to: None,
            ..settings()
        })
        .unwrap();
        let raw = compose_with(&templates, LinkPurpose::Magic);
        assert!(parsed(&raw).reply_to().is_none(), "{raw}");
    }

    #[cfg(feature = "smtp")]
    #[test]
    fn a_hostile_product_name_is_escaped_in_html_and_kept_to_one_line_in_the_subject() {
        let hostile = "<script>alert(\"x\")</script> & 'co' {link}";
        let templates = Templates::load(&MailSettings {
            product_name: hostile.to_string(),
            ..settings()
        })
        .unwrap();
        let raw = compose_with(&templates, LinkPurpose::ResetPassword);
        let message = parsed(&raw);
        let html = message.body_html(0).unwrap();
        assert!(!html.contains("<script>"), "{html}");
        assert!(
            html.contains(
                "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;co&#39; {link}"
            ),
            "{html}"
        );
        // A value is never read as a template: the {link} in the name stays text.
        assert_eq!(html.matches(LINK).count(), 2, "{html}");
        let text = message.body_text(0).unwrap();
        assert!(text.contains(hostile), "the text part is plain: {text}");
        assert_eq!(
            message.subject(),
            Some(format!("Reset your {hostile} password").as_str())
        );
    }

    #[test]
    fn a_subject_never_spans_lines_whatever_a_value_holds() {
        assert_eq!(
            one_line("Reset\r\nBcc: eve@example.org  now"),
            "Reset Bcc: eve@example.org now"
        );
    }

    #[cfg(feature = "smtp")]
    #[test]
    fn override_files_win_and_missing_ones_fall_back() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("magic.subject"),
            "  Sign in to {product} now\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("magic.txt"),
            "Custom text for {email}:\n{link}\nValid {expires_in}.\n",
        )
        .unwrap();
        let templates = Templates::load(&MailSettings {
            templates_dir: Some(dir.path().to_path_buf()),
            ..settings()
        })
        .unwrap();
        let raw = compose_with(&templates, LinkPurpose::Magic);
        let message = parsed(&raw);
        assert_eq!(message.subject(), Some("Sign in to Example ID now"));
        assert_eq!(
            message.body_text(0).unwrap().replace("\r\n", "\n"),
            format!("Custom text for ada@example.org:\n{LINK}\nValid 30 minutes.\n")
        );
        // No magic.html: the built-in HTML part.
        assert!(message.body_html(0).unwrap().contains(">Sign in</a>"));
        // Other purposes keep their built-in mails.
        let reset = compose_with(&templates, LinkPurpose::ResetPassword);
        assert_eq!(
            parsed(&reset).subject(),
            Some("Reset your Example ID password")
        );
    }

    #[cfg(feature = "smtp")]
    #[test]
    fn bad_override_files_fail_at_load_naming_the_file() {
        for (name, content, why) in [
            (
                "magic.txt",
                "no link here {product}",
                "does not hold {link}",
            ),
            (
                "verify-email.html",
                "<p>{link} {user}</p>",
                "unknown placeholder {user}",
            ),
            (
                "reset-password.subject",
                "Reset {link}",
                "must not hold {link}",
            ),
            ("reset-password.subject", "Reset\nnow", "one line"),
            ("reset-password.subject", "  \n", "empty"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join(name), content).unwrap();
            let err = Templates::load(&MailSettings {
                templates_dir: Some(dir.path().to_path_buf()),
                ..settings()
            })
            .unwrap_err()
            .to_string();
            assert!(err.starts_with("mail.templates_dir: "), "{err}");
            assert!(err.contains(name) && err.contains(why), "{name}: {err}");
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("magic.txt"), [0xff, 0xfe, b'{']).unwrap();
        let err = Templates::load(&MailSettings {
            templates_dir: Some(dir.path().to_path_buf()),
            ..settings()
        })
        .unwrap_err();
        assert!(err.to_string().contains("not UTF-8"), "{err}");
    }

    #[cfg(not(feature = "smtp"))]
    #[test]
    fn a_build_without_smtp_loads_templates_but_composes_nothing() {
        let templates = Templates::load(&settings()).unwrap();
        let to = EmailAddress::parse("ada@example.org").unwrap();
        let refused = templates.compose(
            MailId::generate(),
            LinkPurpose::Magic,
            &to,
            LINK,
            Duration::from_secs(60),
            1_760_000_000,
        );
        assert!(matches!(refused, Err(ComposeError::NoMail)), "{refused:?}");
    }

    #[test]
    fn css_braces_are_not_placeholders() {
        assert_eq!(
            placeholders("p { margin: 0 } a{color:red} {link} {} {expires_in}").collect::<Vec<_>>(),
            ["link", "expires_in"]
        );
        assert!(check_template("<style>p { margin: 0 }</style>{link}", Part::Html).is_ok());
    }

    #[test]
    fn render_fills_known_placeholders_once_and_leaves_other_braces() {
        let values = Values {
            product: "P {email}",
            link: "L",
            expires_in: "E",
            email: "a@b.example",
        };
        assert_eq!(
            render(
                "{product}|{link}|{expires_in}|{email}|{other}|{|}",
                &values,
                Escape::None
            ),
            "P {email}|L|E|a@b.example|{other}|{|}"
        );
    }

    #[test]
    fn durations_read_as_words() {
        for (seconds, words) in [
            (60, "1 minute"),
            (90, "1 minute"),
            (30 * 60, "30 minutes"),
            (3600, "1 hour"),
            (5400, "1 hour and 30 minutes"),
            (86_400 + 7200 + 60, "1 day, 2 hours and 1 minute"),
            (7 * 86_400, "7 days"),
        ] {
            assert_eq!(human_duration(Duration::from_secs(seconds)), words);
        }
    }

    #[cfg(feature = "smtp")]
    #[test]
    fn bad_mailboxes_name_their_key() {
        let err = Templates::load(&MailSettings {
            from: "not a mailbox".to_string(),
            ..settings()
        })
        .unwrap_err();
        assert!(err.to_string().starts_with("mail.from: "), "{err}");
        let err = Templates::load(&MailSettings {
            reply_to: Some("<>".to_string()),
            ..settings()
        })
        .unwrap_err();
        assert!(err.to_string().starts_with("mail.reply_to: "), "{err}");
        assert!(parse_mailbox("claimd <no-reply@localhost>").is_ok());
        assert!(parse_mailbox("no-reply@example.org").is_ok());
    }

    #[cfg(feature = "smtp")]
    #[test]
    fn debug_shows_no_body_and_no_address() {
        let templates = Templates::load(&settings()).unwrap();
        let to = EmailAddress::parse("ada@example.org").unwrap();
        let mail = templates
            .compose(
                MailId::generate(),
                LinkPurpose::Magic,
                &to,
                LINK,
                Duration::from_secs(60),
                1_760_000_000,
            )
            .unwrap();
        let debug = format!("{mail:?}");
        assert!(!debug.contains("token="), "{debug}");
        assert!(!debug.contains("ada@"), "{debug}");
        assert!(debug.starts_with("ComposedMail { id: MailId("), "{debug}");
    }
}
