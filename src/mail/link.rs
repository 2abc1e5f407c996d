//! Mail links and their tokens: `{public_url}/account/{purpose}#token=TOKEN` (API.md,
//! "Mail"). A token is derived from the server's [`MailKey`] and the queued mail it was
//! sent in, never stored, so neither the store's files (sled keeps deleted bytes for a
//! while) nor the database ever hold one.
//!
//! # The token
//!
//! 32 bytes, base64url without padding (43 characters):
//!
//! ```text
//! token = mail id (16 bytes) || HMAC-SHA256(mail key, grant)[..16]
//! grant = "claimd mail link v1" 0x00 || len(purpose) || purpose
//!         || mail id (16) || user id (16) || issued_at (8, big-endian)
//! ```
//!
//! Why this shape: redemption must find the queue entry a presented token belongs to
//! without the store holding the token or anything it can be rebuilt from. The entry's id,
//! carried in clear in the token's first half, is that lookup key (it is no secret; it only
//! says which entry to check). The second half is the MAC of everything the entry grants,
//! keyed by a secret the store does not hold: a token for another purpose, user, entry or
//! issue time, or from another key, does not check. A 128-bit tag truncated from
//! HMAC-SHA256 (RFC 2104 §5 allows truncation to half the output) leaves a forger 2^-128
//! per guess, the same as a random 128-bit secret; the whole token stays at the 32 bytes
//! API.md names. Hashing a random token for lookup would work too, but would store a
//! digest a stolen copy of the store could be matched against, and would need the token
//! itself kept until the mail is sent; a derived token is recomputed at send time (after a
//! crash as well) and exists only in the mail.
//!
//! Checking is constant-time on the tag (`subtle`). Every token that is not the issued
//! spelling (length, padding, alphabet, non-zero trailing bits) is refused as
//! [`LinkTokenError::Malformed`] before any MAC is computed; parsing never panics.
//!
//! Changing the grant's layout invalidates every link in flight: bump the `v1` label and
//! check both while old links can still be live (`mail.link_ttl`).

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::RngCore as _;
use sha2::Sha256;
use subtle::ConstantTimeEq as _;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::domain::{MailId, UserId};
use crate::secret::SecretString;

type HmacSha256 = Hmac<Sha256>;

/// A mail token's length in bytes.
pub const LINK_TOKEN_BYTES: usize = 32;
/// A mail token's length as base64url without padding.
pub const LINK_TOKEN_CHARS: usize = 43;
/// The MAC's share of the token (the rest is the mail id).
const TAG_BYTES: usize = LINK_TOKEN_BYTES - 16;
/// Separates these MACs from any other the same key might one day make.
const MAC_LABEL: &[u8] = b"claimd mail link v1";

/// What a link is for; its path name is the page it opens (`/account/{path}`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum LinkPurpose {
    VerifyEmail,
    ResetPassword,
    Magic,
}

impl LinkPurpose {
    /// Every purpose, in API.md's order.
    pub const ALL: [LinkPurpose; 3] = [
        LinkPurpose::VerifyEmail,
        LinkPurpose::ResetPassword,
        LinkPurpose::Magic,
    ];

    /// The name in the link's path (API.md): `verify-email`, `reset-password`, `magic`.
    pub fn path(self) -> &'static str {
        match self {
            LinkPurpose::VerifyEmail => "verify-email",
            LinkPurpose::ResetPassword => "reset-password",
            LinkPurpose::Magic => "magic",
        }
    }

    /// The purpose a path name names, if any.
    pub fn from_path(path: &str) -> Option<LinkPurpose> {
        LinkPurpose::ALL.into_iter().find(|p| p.path() == path)
    }
}

impl fmt::Display for LinkPurpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.path())
    }
}

/// What a queued mail's link grants: the MAC's input. Built from the queue entry when the
/// mail is sent and again when its token is presented.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct LinkGrant {
    pub purpose: LinkPurpose,
    /// The queue entry the mail is in.
    pub mail: MailId,
    pub user: UserId,
    /// Unix seconds, from the clock of the request that queued the mail.
    pub issued_at: u64,
}

/// The server's key for mail tokens. It never prints, and its bytes are zeroed when it is
/// dropped. It must not live beside the queue it keys: whoever holds both can rebuild
/// every live link.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MailKey([u8; 32]);

impl MailKey {
    /// 32 fresh random bytes.
    pub fn generate() -> MailKey {
        let mut key = MailKey([0u8; 32]);
        OsRng.fill_bytes(&mut key.0);
        key
    }

    /// Wraps a key loaded from where it is kept.
    pub fn from_bytes(bytes: [u8; 32]) -> MailKey {
        MailKey(bytes)
    }

    /// The key's bytes, to keep it where it is kept (`mail::key_file`).
    #[cfg(feature = "smtp")]
    pub(crate) fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The token mailed for `grant`. The same grant always gives the same token, so a mail
    /// sent again after a crash carries the link the first attempt would have.
    pub fn token_for(&self, grant: &LinkGrant) -> LinkToken {
        let mut token = LinkToken([0u8; LINK_TOKEN_BYTES]);
        token.0[..16].copy_from_slice(grant.mail.as_bytes());
        token.0[16..].copy_from_slice(&*self.tag(grant));
        token
    }

    /// Whether `presented` is the token this key gives for `grant` (constant time on the
    /// MAC). The caller found `grant` by [`PresentedLinkToken::mail`] and checks expiry,
    /// use and supersession on the entry itself.
    ///
    /// # Errors
    /// [`LinkTokenError::Forged`] when it is not.
    pub fn check(
        &self,
        presented: &PresentedLinkToken,
        grant: &LinkGrant,
    ) -> Result<(), LinkTokenError> {
        // The mail id is the lookup key, no secret: comparing it early leaks nothing.
        let same_mail = presented.mail == *grant.mail.as_bytes();
        let same_tag: bool = self.tag(grant).ct_eq(&presented.tag).into();
        if same_mail && same_tag {
            Ok(())
        } else {
            Err(LinkTokenError::Forged)
        }
    }

    /// The truncated MAC of a grant's documented encoding.
    fn tag(&self, grant: &LinkGrant) -> Zeroizing<[u8; TAG_BYTES]> {
        let mut mac = self.mac();
        let purpose = grant.purpose.path().as_bytes();
        mac.update(MAC_LABEL);
        mac.update(&[0]);
        // A path name is a handful of bytes; the length keeps the encoding unambiguous.
        mac.update(&[purpose.len() as u8]);
        mac.update(purpose);
        mac.update(grant.mail.as_bytes());
        mac.update(grant.user.as_bytes());
        mac.update(&grant.issued_at.to_be_bytes());
        let full = mac.finalize().into_bytes();
        let mut tag = Zeroizing::new([0u8; TAG_BYTES]);
        tag.copy_from_slice(&full[..TAG_BYTES]);
        tag
    }

    /// HMAC-SHA256 keyed with this key, through the block-sized constructor that cannot
    /// fail (RFC 2104 §2 zero-pads a shorter key to the block: the same MAC).
    fn mac(&self) -> HmacSha256 {
        let mut block = Zeroizing::new(hmac::digest::Key::<HmacSha256>::default());
        block[..self.0.len()].copy_from_slice(&self.0);
        <HmacSha256 as KeyInit>::new(&block)
    }
}

impl fmt::Debug for MailKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MailKey(<redacted>)")
    }
}

/// A token as minted, for the mail. It never prints and is zeroed when dropped.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct LinkToken([u8; LINK_TOKEN_BYTES]);

impl LinkToken {
    /// The queue entry this token was minted for.
    pub fn mail(&self) -> MailId {
        MailId::from_bytes(first_half(&self.0))
    }

    /// The token's text: 43 base64url characters.
    pub fn encode(&self) -> SecretString {
        let mut text = String::with_capacity(LINK_TOKEN_CHARS);
        URL_SAFE_NO_PAD.encode_string(self.0, &mut text);
        text.into()
    }

    /// The link mailed for this token: `{public_url}/account/{purpose}#token=TOKEN`.
    /// Trailing slashes on `public_url` are dropped, so `https://id.example/` and
    /// `https://id.example` give one link; the token rides in the fragment, which browsers
    /// send to no server and keep out of `Referer`. `public_url` is expected to be an
    /// absolute URL with no query or fragment (the settings check it).
    pub fn link(&self, public_url: &str, purpose: LinkPurpose) -> SecretString {
        let base = public_url.trim_end_matches('/');
        let path = purpose.path();
        // Exactly sized, so turning it into the secret's box moves it rather than leaving a
        // copy of the token in a freed buffer.
        let mut link = String::with_capacity(
            base.len() + "/account/".len() + path.len() + "#token=".len() + LINK_TOKEN_CHARS,
        );
        link.push_str(base);
        link.push_str("/account/");
        link.push_str(path);
        link.push_str("#token=");
        URL_SAFE_NO_PAD.encode_string(self.0, &mut link);
        link.into()
    }
}

impl fmt::Debug for LinkToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LinkToken(<redacted>)")
    }
}

/// A token as presented, taken apart but not yet checked: [`PresentedLinkToken::mail`] is
/// which queue entry to fetch, [`MailKey::check`] whether it holds.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct PresentedLinkToken {
    mail: [u8; 16],
    tag: [u8; TAG_BYTES],
}

impl PresentedLinkToken {
    /// Takes a presented token apart. Only the spelling claimd issues parses.
    ///
    /// # Errors
    /// [`LinkTokenError::Malformed`] for anything else, whatever is wrong with it.
    pub fn parse(text: &str) -> Result<PresentedLinkToken, LinkTokenError> {
        if text.len() != LINK_TOKEN_CHARS {
            return Err(LinkTokenError::Malformed);
        }
        let bytes = Zeroizing::new(
            URL_SAFE_NO_PAD
                .decode(text)
                .map_err(|_| LinkTokenError::Malformed)?,
        );
        let bytes: &[u8; LINK_TOKEN_BYTES] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| LinkTokenError::Malformed)?;
        // base64 refuses non-zero trailing bits already; this keeps "one token, one
        // string" true whatever the engine's settings become.
        let mut issued = Zeroizing::new(String::with_capacity(LINK_TOKEN_CHARS));
        URL_SAFE_NO_PAD.encode_string(bytes, &mut issued);
        if issued.as_str() != text {
            return Err(LinkTokenError::Malformed);
        }
        let mut presented = PresentedLinkToken {
            mail: first_half(bytes),
            tag: [0u8; TAG_BYTES],
        };
        presented.tag.copy_from_slice(&bytes[16..]);
        Ok(presented)
    }

    /// The queue entry the token names (unchecked: any 16 bytes name some id).
    pub fn mail(&self) -> MailId {
        MailId::from_bytes(self.mail)
    }
}

impl fmt::Debug for PresentedLinkToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PresentedLinkToken({}, <redacted>)", self.mail())
    }
}

/// Why a presented token was refused. Both answer 400 `link_invalid`; they differ for logs
/// and metrics only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkTokenError {
    /// Not 43 base64url characters as claimd writes them.
    #[error("malformed link token")]
    Malformed,
    /// Well formed, but not what the mail key gives for the entry it names.
    #[error("link token does not match its mail")]
    Forged,
}

fn first_half(bytes: &[u8; LINK_TOKEN_BYTES]) -> [u8; 16] {
    let mut half = [0u8; 16];
    half.copy_from_slice(&bytes[..16]);
    half
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng as _, SeedableRng as _};
    use secrecy::ExposeSecret as _;

    use super::*;

    fn grant(purpose: LinkPurpose) -> LinkGrant {
        LinkGrant {
            purpose,
            mail: MailId::generate(),
            user: UserId::generate(),
            issued_at: 1_760_000_000,
        }
    }

    fn presented(token: &LinkToken) -> PresentedLinkToken {
        PresentedLinkToken::parse(token.encode().expose_secret()).unwrap()
    }

    #[test]
    fn purposes_have_the_path_names_api_md_gives() {
        let paths: Vec<_> = LinkPurpose::ALL.iter().map(|p| p.path()).collect();
        assert_eq!(paths, ["verify-email", "reset-password", "magic"]);
        for purpose in LinkPurpose::ALL {
            assert_eq!(LinkPurpose::from_path(purpose.path()), Some(purpose));
        }
        assert_eq!(LinkPurpose::from_path("Magic"), None);
    }

    #[test]
    fn a_token_is_43_base64url_characters_opening_with_its_mail_id() {
        let grant = grant(LinkPurpose::Magic);
        let token = MailKey::generate().token_for(&grant);
        let text = token.encode();
        let text = text.expose_secret();
        assert_eq!(text.len(), LINK_TOKEN_CHARS);
        assert!(text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(token.mail(), grant.mail);
        assert_eq!(presented(&token).mail(), grant.mail);
    }

    #[test]
    fn a_minted_token_checks_against_its_grant() {
        let key = MailKey::generate();
        for purpose in LinkPurpose::ALL {
            let grant = grant(purpose);
            let token = key.token_for(&grant);
            assert_eq!(key.check(&presented(&token), &grant), Ok(()));
        }
    }

    #[test]
    fn the_same_grant_always_gives_the_same_token() {
        let key = MailKey::from_bytes([7; 32]);
        let grant = grant(LinkPurpose::ResetPassword);
        assert_eq!(
            key.token_for(&grant).encode().expose_secret(),
            key.token_for(&grant).encode().expose_secret()
        );
    }

    #[test]
    fn every_tampered_byte_is_refused() {
        let key = MailKey::generate();
        let grant = grant(LinkPurpose::VerifyEmail);
        let token = key.token_for(&grant);
        for index in 0..LINK_TOKEN_BYTES {
            let mut bytes = token.0;
            bytes[index] ^= 0x01;
            let tampered = PresentedLinkToken::parse(&URL_SAFE_NO_PAD.encode(bytes)).unwrap();
            assert_eq!(
                key.check(&tampered, &grant),
                Err(LinkTokenError::Forged),
                "byte {index}"
            );
        }
    }

    #[test]
    fn a_token_for_another_purpose_is_refused() {
        let key = MailKey::generate();
        let reset = grant(LinkPurpose::ResetPassword);
        let token = presented(&key.token_for(&reset));
        for purpose in [LinkPurpose::VerifyEmail, LinkPurpose::Magic] {
            let other = LinkGrant { purpose, ..reset };
            assert_eq!(key.check(&token, &other), Err(LinkTokenError::Forged));
        }
    }

    #[test]
    fn a_token_for_another_user_is_refused() {
        let key = MailKey::generate();
        let grant = grant(LinkPurpose::Magic);
        let token = presented(&key.token_for(&grant));
        let other = LinkGrant {
            user: UserId::generate(),
            ..grant
        };
        assert_eq!(key.check(&token, &other), Err(LinkTokenError::Forged));
    }

    #[test]
    fn a_token_for_another_mail_or_issue_time_is_refused() {
        let key = MailKey::generate();
        let grant = grant(LinkPurpose::Magic);
        let token = presented(&key.token_for(&grant));
        let other_mail = LinkGrant {
            mail: MailId::generate(),
            ..grant
        };
        let other_time = LinkGrant {
            issued_at: grant.issued_at + 1,
            ..grant
        };
        assert_eq!(key.check(&token, &other_mail), Err(LinkTokenError::Forged));
        assert_eq!(key.check(&token, &other_time), Err(LinkTokenError::Forged));
    }

    #[test]
    fn a_token_from_another_key_is_refused() {
        let grant = grant(LinkPurpose::VerifyEmail);
        let token = presented(&MailKey::generate().token_for(&grant));
        assert_eq!(
            MailKey::generate().check(&token, &grant),
            Err(LinkTokenError::Forged)
        );
    }

    #[test]
    fn the_tag_is_the_hmac_of_the_documented_encoding() {
        let key_bytes = [0x42; 32];
        let grant = grant(LinkPurpose::ResetPassword);
        let mut expected = <HmacSha256 as Mac>::new_from_slice(&key_bytes).unwrap();
        expected.update(b"claimd mail link v1\x00\x0ereset-password");
        expected.update(grant.mail.as_bytes());
        expected.update(grant.user.as_bytes());
        expected.update(&1_760_000_000u64.to_be_bytes());
        let expected = expected.finalize().into_bytes();
        let token = MailKey::from_bytes(key_bytes).token_for(&grant);
        assert_eq!(&token.0[..16], grant.mail.as_bytes());
        assert_eq!(&token.0[16..], &expected[..16]);
    }

    #[test]
    fn malformed_tokens_are_refused_with_one_error() {
        let token = MailKey::generate()
            .token_for(&grant(LinkPurpose::Magic))
            .encode();
        let token = token.expose_secret();
        let mut non_canonical = token.to_string();
        // The last character carries 4 bits and 2 zero bits; `B` sets one of those.
        non_canonical.replace_range(42.., "B");
        let plus_slash = token.replacen(|c: char| c.is_ascii_alphanumeric(), "+", 1);
        for bad in [
            String::new(),
            token[..42].to_string(),
            format!("{token}A"),
            format!("{token}="),
            format!("{}=", &token[..42]),
            format!(" {}", &token[..42]),
            format!("{}\n", &token[..42]),
            format!("{}.", &token[..42]),
            plus_slash,
            non_canonical,
            "é".repeat(21) + "a",
            "A".repeat(44),
            "=".repeat(43),
            "a".repeat(10_000),
        ] {
            assert_eq!(
                PresentedLinkToken::parse(&bad).map(|_| ()),
                Err(LinkTokenError::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn odd_input_never_panics_and_only_issued_spellings_parse() {
        let alphabet: Vec<char> =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/ .é\u{0}\u{1F600}"
                .chars()
                .collect();
        let mut rng = StdRng::seed_from_u64(21);
        let mut parsed = 0;
        for _ in 0..20_000 {
            let len = if rng.gen_bool(0.5) {
                LINK_TOKEN_CHARS
            } else {
                rng.gen_range(0..90)
            };
            let text: String = (0..len)
                .map(|_| alphabet[rng.gen_range(0..alphabet.len())])
                .collect();
            if let Ok(token) = PresentedLinkToken::parse(&text) {
                let mut again = token.mail.to_vec();
                again.extend_from_slice(&token.tag);
                assert_eq!(URL_SAFE_NO_PAD.encode(again), text);
                parsed += 1;
            }
        }
        assert!(
            parsed > 0,
            "the inputs should include some well-formed tokens"
        );
    }

    #[test]
    fn the_link_puts_the_token_in_the_fragment_of_the_account_page() {
        let token = MailKey::generate().token_for(&grant(LinkPurpose::VerifyEmail));
        let text = token.encode();
        let expected = format!(
            "https://id.example/account/verify-email#token={}",
            text.expose_secret()
        );
        for base in [
            "https://id.example",
            "https://id.example/",
            "https://id.example//",
        ] {
            let link = token.link(base, LinkPurpose::VerifyEmail);
            assert_eq!(link.expose_secret(), expected, "{base}");
        }
        let under_a_path = token.link("https://example.org/auth/", LinkPurpose::Magic);
        assert!(under_a_path
            .expose_secret()
            .starts_with("https://example.org/auth/account/magic#token="));
    }

    #[test]
    fn keys_and_tokens_do_not_print() {
        let key = MailKey::from_bytes([0xAB; 32]);
        let grant = grant(LinkPurpose::Magic);
        let token = key.token_for(&grant);
        let text = token.encode();
        let text = text.expose_secret();
        let presented = PresentedLinkToken::parse(text).unwrap();
        for debug in [
            format!("{key:?}"),
            format!("{token:?}"),
            format!("{presented:?}"),
            format!("{:?}", token.link("https://id.example", grant.purpose)),
        ] {
            // From the 23rd character on, a token's text is its tag alone.
            assert!(!debug.contains(&text[22..]), "{debug}");
            assert!(!debug.contains("171, 171"), "{debug}");
        }
    }
}
