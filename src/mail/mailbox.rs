//! The outbox read back as a mailbox (`GET /demo/mailbox`): the newest `.eml` files of
//! `mail.outbox_dir`, each parsed with an independent MIME parser into what a mail reader
//! shows (when, to whom, the subject, the text part). Only the demo page asks for it; what
//! it reads is what [`super::transport`] wrote, so a file that is not a mail, too big or
//! half-written is skipped rather than refused.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;

/// A file bigger than this is not one of claimd's mails (they are a few KiB).
const MAX_MAIL_BYTES: u64 = 256 * 1024;

/// One mail as the mailbox shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MailboxEntry {
    /// The file's name without `.eml`: the mail's id.
    pub id: String,
    /// The `Date:` header, Unix seconds.
    pub date: Option<i64>,
    /// The recipients' addresses.
    pub to: Vec<String>,
    pub subject: String,
    /// The plain-text part, decoded.
    pub text: String,
}

/// The newest `limit` mails in `dir`, newest first; an absent directory is an empty
/// mailbox (the outbox appears with the first mail).
///
/// # Errors
/// The directory exists but cannot be listed.
pub fn newest(dir: &Path, limit: usize) -> std::io::Result<Vec<MailboxEntry>> {
    let listing = match std::fs::read_dir(dir) {
        Ok(listing) => listing,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err),
    };
    let mut files: Vec<(SystemTime, PathBuf)> = listing
        .filter_map(Result::ok)
        .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "eml"))
        .filter_map(|entry| {
            let meta = entry.metadata().ok()?;
            (meta.is_file() && meta.len() <= MAX_MAIL_BYTES).then(|| {
                (
                    meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    entry.path(),
                )
            })
        })
        .collect();
    files.sort_by(|a, b| b.cmp(a));
    Ok(files
        .into_iter()
        .filter_map(|(_, path)| read_one(&path))
        .take(limit)
        .collect())
}

/// One `.eml` file parsed; `None` when it cannot be read or is not a mail.
fn read_one(path: &Path) -> Option<MailboxEntry> {
    let raw = std::fs::read(path).ok()?;
    parse(path.file_stem()?.to_str()?, &raw)
}

/// A mail's raw RFC 5322 bytes as the mailbox shows them.
fn parse(id: &str, raw: &[u8]) -> Option<MailboxEntry> {
    let message = mail_parser::MessageParser::default().parse(raw)?;
    let to = message
        .to()
        .map(|to| {
            to.iter()
                .filter_map(|addr| addr.address().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Some(MailboxEntry {
        id: id.to_string(),
        date: message.date().map(mail_parser::DateTime::to_timestamp),
        to,
        subject: message.subject().unwrap_or_default().to_string(),
        text: message
            .body_text(0)
            .map(|text| text.replace("\r\n", "\n"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAIL: &str = "From: claimd <no-reply@localhost>\r\n\
To: ada@example.org\r\n\
Subject: =?utf-8?q?V=C3=A9rifiez?=\r\n\
Date: Tue, 08 Dec 2026 10:00:00 +0000\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/alternative; boundary=\"b\"\r\n\
\r\n\
--b\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Open http://x/account/magic#token=3DAB=\r\n\
CD\r\n\
--b\r\n\
Content-Type: text/html; charset=utf-8\r\n\
\r\n\
<p>html</p>\r\n\
--b--\r\n";

    #[test]
    fn a_mail_reads_back_decoded() {
        let entry = parse("m1", MAIL.as_bytes()).unwrap();

        assert_eq!(entry.id, "m1");
        assert_eq!(entry.to, ["ada@example.org"]);
        assert_eq!(entry.subject, "Vérifiez");
        assert_eq!(entry.date, Some(1_796_724_000));
        assert_eq!(
            entry.text.trim_end(),
            "Open http://x/account/magic#token=ABCD"
        );
    }

    #[test]
    fn the_newest_come_first_and_other_files_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old.eml");
        std::fs::write(&old, MAIL).unwrap();
        let past = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        std::fs::File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(past)
            .unwrap();
        std::fs::write(dir.path().join("new.eml"), MAIL).unwrap();
        std::fs::write(dir.path().join("new.eml.tmp"), MAIL).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "hello").unwrap();
        std::fs::write(dir.path().join("empty.eml"), "").unwrap();

        let ids: Vec<_> = newest(dir.path(), 10)
            .unwrap()
            .into_iter()
            .map(|entry| entry.id)
            .collect();

        assert_eq!(ids, ["new", "old"]);
        assert_eq!(newest(dir.path(), 1).unwrap().len(), 1);
        assert!(newest(&dir.path().join("absent"), 10).unwrap().is_empty());
    }
}
