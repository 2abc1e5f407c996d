//! Refresh tokens: opaque `<sid>.<generation>.<mac>` strings, never JWTs, where
//! `mac = HMAC-SHA256(session_key, generation as 8 big-endian bytes)` in base64url.
//! One per-session key verifies every generation ever issued, so the store keeps one small
//! record per session and can tell a forged token (bad MAC: nothing happens) from a
//! replayed old one (good MAC, old generation: reuse).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::domain::SessionId;

type HmacSha256 = Hmac<Sha256>;

/// Longest refresh token we look at: a uuid, a u64, a 43-character MAC and two dots.
pub const MAX_REFRESH_TOKEN_LEN: usize = 36 + 1 + 20 + 1 + 43;

/// A session's MAC key. It never prints, and its bytes are zeroed when it is dropped (the
/// copy in the session record belongs to the store).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SessionKey([u8; 32]);

impl SessionKey {
    /// 32 fresh random bytes.
    pub fn generate() -> SessionKey {
        let mut key = SessionKey([0u8; 32]);
        OsRng.fill_bytes(&mut key.0);
        key
    }

    /// Wraps a key read from the store.
    pub fn from_bytes(bytes: [u8; 32]) -> SessionKey {
        SessionKey(bytes)
    }

    /// The bytes, for storing.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    /// HMAC-SHA256 keyed with this key. A key shorter than SHA-256's 64-byte block is
    /// zero-padded to it (RFC 2104 §2), so padding it here gives the very same MAC as
    /// keying with the 32 bytes, through the constructor that takes a block-sized key
    /// and so cannot fail.
    fn mac(&self) -> HmacSha256 {
        let mut block = Zeroizing::new(hmac::digest::Key::<HmacSha256>::default());
        block[..self.0.len()].copy_from_slice(&self.0);
        <HmacSha256 as KeyInit>::new(&block)
    }
}

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(<redacted>)")
    }
}

/// Mints the refresh token of `generation` for a session.
pub fn mint_refresh_token(sid: SessionId, key: &SessionKey, generation: u64) -> String {
    let mut mac = key.mac();
    mac.update(&generation.to_be_bytes());
    let tag = mac.finalize().into_bytes();
    format!("{sid}.{generation}.{}", URL_SAFE_NO_PAD.encode(tag))
}

/// A refresh token taken apart but not yet checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresentedRefreshToken {
    pub sid: SessionId,
    pub generation: u64,
    tag: Vec<u8>,
}

impl PresentedRefreshToken {
    /// Splits a presented token; `None` for anything not of the form.
    pub fn parse(text: &str) -> Option<PresentedRefreshToken> {
        if text.len() > MAX_REFRESH_TOKEN_LEN {
            return None;
        }
        let mut parts = text.split('.');
        let (sid, generation, tag) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || !generation.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        if tag.len() != 32 {
            return None;
        }
        let presented = PresentedRefreshToken {
            sid: SessionId::parse(sid)?,
            generation: generation.parse().ok()?,
            tag,
        };
        // Exactly the spelling claimd issued: uuid's parser also takes upper case, braces
        // and no dashes, and `01` reads as 1. One token, one string.
        presented.spelled_as_issued(text).then_some(presented)
    }

    fn spelled_as_issued(&self, text: &str) -> bool {
        let mut issued = format!("{}.{}.", self.sid, self.generation);
        URL_SAFE_NO_PAD.encode_string(&self.tag, &mut issued);
        issued == text
    }

    /// Whether the MAC is the one `key` gives for this generation (constant time).
    pub fn mac_is_valid(&self, key: &SessionKey) -> bool {
        let mut mac = key.mac();
        mac.update(&self.generation.to_be_bytes());
        mac.verify_slice(&self.tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_token_verifies_with_its_key_only() {
        let sid = SessionId::generate();
        let key = SessionKey::generate();
        let token = mint_refresh_token(sid, &key, 7);
        let presented = PresentedRefreshToken::parse(&token).unwrap();
        assert_eq!(presented.sid, sid);
        assert_eq!(presented.generation, 7);
        assert!(presented.mac_is_valid(&key));
        assert!(!presented.mac_is_valid(&SessionKey::generate()));
    }

    #[test]
    fn the_mac_binds_the_generation() {
        let sid = SessionId::generate();
        let key = SessionKey::generate();
        let token = mint_refresh_token(sid, &key, 7);
        let forged = token.replacen(".7.", ".8.", 1);
        assert!(!PresentedRefreshToken::parse(&forged)
            .unwrap()
            .mac_is_valid(&key));
    }

    #[test]
    fn malformed_tokens_do_not_parse() {
        let sid = SessionId::generate();
        let token = mint_refresh_token(sid, &SessionKey::generate(), 1);
        for bad in [
            "",
            "a.b.c",
            "x.1.y.z",
            &format!("{sid}.-1.abc"),
            &format!("{sid}.1."),
            &format!("{token}A"),
            &"a".repeat(500),
        ] {
            assert!(PresentedRefreshToken::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn only_the_issued_spelling_parses() {
        let sid = SessionId::generate();
        let token = mint_refresh_token(sid, &SessionKey::generate(), 1);
        let (_, rest) = token.split_once('.').unwrap();
        let (_, tag) = rest.split_once('.').unwrap();
        let dashless = sid.to_string().replace('-', "");
        for other in [
            format!("{sid}.01.{tag}"),
            format!("{sid}.+1.{tag}"),
            format!("{}.1.{tag}", sid.to_string().to_uppercase()),
            format!("{dashless}.1.{tag}"),
            format!("{{{sid}}}.1.{tag}"),
            format!("{sid}.1.{tag}="),
        ] {
            assert!(PresentedRefreshToken::parse(&other).is_none(), "{other}");
        }
        assert!(PresentedRefreshToken::parse(&token).is_some());
    }

    #[test]
    fn the_padded_key_gives_the_mac_of_the_key_itself() {
        let key = SessionKey::generate();
        let mut plain = <HmacSha256 as Mac>::new_from_slice(&key.to_bytes()).unwrap();
        let mut padded = key.mac();
        plain.update(b"generation");
        padded.update(b"generation");
        assert_eq!(
            plain.finalize().into_bytes(),
            padded.finalize().into_bytes()
        );
    }

    #[test]
    fn keys_do_not_print() {
        assert!(!format!("{:?}", SessionKey::generate()).contains('['));
    }
}
