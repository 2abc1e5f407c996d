//! Where the server's [`MailKey`] comes from. It must not sit in the store beside the queue
//! it keys (whoever holds both could rebuild every live link), so it is never written to
//! the store, and never to a backup of it:
//!
//! - `CLAIMD_MAIL_KEY` in the environment (32 bytes, base64 or base64url, padded or not),
//!   when set: the way to keep it off the data directory's disk, and the only way on
//!   PostgreSQL, where every node must derive the same links;
//! - otherwise, on sled, the file `mail.key` in the data directory (32 random bytes made at
//!   the first start with mail on, owner-only like everything there).
//!
//! With `mail.transport = "none"` there is no key at all.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use zeroize::Zeroizing;

use super::MailKey;
use crate::config::{MailTransportKind, Settings, StorageBackend};

/// The environment variable holding the key.
pub const MAIL_KEY_ENV: &str = "CLAIMD_MAIL_KEY";
/// The key's file in the data directory, on sled without [`MAIL_KEY_ENV`].
pub const MAIL_KEY_FILE: &str = "mail.key";

/// The mail key the settings call for; `None` when mail is off.
///
/// # Errors
/// A malformed `CLAIMD_MAIL_KEY`, a key file that cannot be read or written, or
/// PostgreSQL without `CLAIMD_MAIL_KEY` (one line each, naming what to do).
pub fn load(settings: &Settings) -> Result<Option<MailKey>, String> {
    if settings.mail.transport == MailTransportKind::None {
        return Ok(None);
    }
    if let Ok(text) = std::env::var(MAIL_KEY_ENV) {
        return from_text(&text).map(Some);
    }
    match settings.storage.backend {
        StorageBackend::Sled => from_file(&settings.storage.path.join(MAIL_KEY_FILE)).map(Some),
        StorageBackend::Postgres => Err(format!(
            "mail on PostgreSQL needs {MAIL_KEY_ENV}: 32 random bytes, base64, the same on every \
             node (e.g. `openssl rand -base64 32`)"
        )),
    }
}

/// A key from its base64 text.
fn from_text(text: &str) -> Result<MailKey, String> {
    let text = text.trim();
    let bytes = Zeroizing::new(
        URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .or_else(|_| STANDARD.decode(text))
            .map_err(|_| format!("{MAIL_KEY_ENV}: not base64"))?,
    );
    let key: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| format!("{MAIL_KEY_ENV}: expected 32 bytes, found {}", bytes.len()))?;
    Ok(MailKey::from_bytes(key))
}

/// The key in `path`, made there (owner-only, durably) when the file does not exist.
fn from_file(path: &Path) -> Result<MailKey, String> {
    let shown = path.display();
    match std::fs::read(path) {
        Ok(bytes) => {
            let bytes = Zeroizing::new(bytes);
            let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                format!("{shown}: expected 32 bytes, found {}; remove it to make a new key (links already mailed stop working)", bytes.len())
            })?;
            Ok(MailKey::from_bytes(key))
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let key = MailKey::generate();
            write_new(path, key.as_bytes()).map_err(|err| format!("{shown}: {err}"))?;
            tracing::info!(path = %shown, "made the mail key");
            Ok(key)
        }
        Err(err) => Err(format!("{shown}: {err}")),
    }
}

/// Writes `bytes` to a new `path`, owner-only, through a temporary file renamed into place
/// and both synced: a crash leaves the old state or the whole key.
fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let temporary = path.with_extension("key.new");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::{LinkGrant, LinkPurpose};

    fn grant() -> LinkGrant {
        LinkGrant {
            purpose: LinkPurpose::Magic,
            mail: crate::domain::MailId::from_bytes([1; 16]),
            user: crate::domain::UserId::from_bytes([2; 16]),
            issued_at: 1_800_000_000,
        }
    }

    #[test]
    fn a_key_file_is_made_once_and_read_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MAIL_KEY_FILE);
        let made = from_file(&path).unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let read = from_file(&path).unwrap();
        assert_eq!(
            made.token_for(&grant()).encode().expose_secret(),
            read.token_for(&grant()).encode().expose_secret()
        );
        std::fs::write(&path, b"short").unwrap();
        assert!(from_file(&path)
            .unwrap_err()
            .contains("expected 32 bytes, found 5"));
    }

    #[test]
    fn environment_keys_are_32_bytes_of_base64() {
        let key = [7u8; 32];
        let url = URL_SAFE_NO_PAD.encode(key);
        let standard = STANDARD.encode(key);
        let from_url = from_text(&url).unwrap();
        let from_standard = from_text(&standard).unwrap();
        assert_eq!(
            from_url.token_for(&grant()).encode().expose_secret(),
            from_standard.token_for(&grant()).encode().expose_secret()
        );
        assert!(from_text("not base64 at all!")
            .unwrap_err()
            .contains("not base64"));
        assert!(from_text(&STANDARD.encode([1u8; 16]))
            .unwrap_err()
            .contains("found 16"));
    }

    use crate::secret::ExposeSecret as _;
}
