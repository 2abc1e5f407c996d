//! Email addresses as users type them. An [`EmailAddress`] is built only by
//! [`EmailAddress::parse`], so code holding one never checks again.
//!
//! It keeps two forms: the address as given (trimmed), which mail is sent to, and an
//! [`EmailKey`], the form uniqueness is decided on. Mail providers treat the local part
//! case-insensitively in practice and API.md promises case-insensitive uniqueness, so the
//! key is the whole address lowercased (the local part NFC-normalised first, so an accent
//! typed as one character or as two gives one key). The key decides "is this address
//! taken"; it is never used to send.
//!
//! What is refused, and why:
//! - the local part (1–64 bytes, RFC 5321 §4.5.3.1.1) may hold non-ASCII letters (RFC 6531)
//!   but no white space, control or invisible characters, and none of RFC 5322's specials
//!   (`"(),:;<>[\]`): those would let an address read as a display name or as two
//!   recipients once written into a `To:` header. Dots are not policed (some carriers hand
//!   out `a..b@`); the sending side decides what its server takes.
//! - the domain (1–253 bytes) is at least two dot-separated labels of ASCII letters,
//!   digits and hyphens, 1–63 each, no hyphen first or last, and a last label that is not
//!   all digits (no IP addresses, no address literals). Internationalised domains are
//!   refused until an IDNA crate is worth its weight; their `xn--` form is taken.
//! - the whole address is at most 254 bytes (RFC 5321's path limit less its brackets).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use unicode_normalization::UnicodeNormalization as _;

use crate::domain::is_invisible_or_control;

/// Longest address, in bytes.
pub const MAX_ADDRESS_BYTES: usize = 254;
/// Longest local part (before the `@`), in bytes.
pub const MAX_LOCAL_BYTES: usize = 64;
/// Longest domain, in bytes.
pub const MAX_DOMAIN_BYTES: usize = 253;
/// Longest domain label, in bytes.
pub const MAX_LABEL_BYTES: usize = 63;

/// A checked email address: the spelling given, and the key it is unique under.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct EmailAddress {
    given: String,
    key: EmailKey,
}

/// The form an address is unique under: the whole address lowercased. Only
/// [`EmailAddress::key`] makes one.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct EmailKey(String);

impl EmailKey {
    /// The key's text, for a store index.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why an address is refused. Its `Display` is the 400 detail, `email: <reason>`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum EmailAddressError {
    Empty,
    TooLong,
    NotOneAt,
    LocalEmpty,
    LocalTooLong,
    LocalCharacter,
    DomainEmpty,
    DomainTooLong,
    DomainNotAscii,
    DomainCharacter,
    LabelEmpty,
    LabelTooLong,
    LabelHyphen,
    SingleLabel,
    NumericTopLabel,
}

impl EmailAddressError {
    /// The reason alone, fit to show the user after `email: `.
    pub fn reason(self) -> &'static str {
        match self {
            EmailAddressError::Empty => "must not be empty",
            EmailAddressError::TooLong => "must be at most 254 bytes",
            EmailAddressError::NotOneAt => "must contain exactly one @",
            EmailAddressError::LocalEmpty => "must have a name before the @",
            EmailAddressError::LocalTooLong => "the part before the @ must be at most 64 bytes",
            EmailAddressError::LocalCharacter => {
                "the part before the @ must not contain white space, control or invisible characters, or any of \"(),:;<>[\\]"
            }
            EmailAddressError::DomainEmpty => "must have a domain after the @",
            EmailAddressError::DomainTooLong => "the domain must be at most 253 bytes",
            EmailAddressError::DomainNotAscii => {
                "internationalised domains are not supported: write the domain in its xn-- form"
            }
            EmailAddressError::DomainCharacter => {
                "the domain may only contain letters, digits, hyphens and dots"
            }
            EmailAddressError::LabelEmpty => {
                "the domain must not start or end with a dot or hold two in a row"
            }
            EmailAddressError::LabelTooLong => "each part of the domain must be at most 63 bytes",
            EmailAddressError::LabelHyphen => {
                "no part of the domain may start or end with a hyphen"
            }
            EmailAddressError::SingleLabel => {
                "the domain must have at least two parts, as in example.com"
            }
            EmailAddressError::NumericTopLabel => {
                "the domain must be a name, not an IP address or an all-digit top-level part"
            }
        }
    }
}

impl fmt::Display for EmailAddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "email: {}", self.reason())
    }
}

impl std::error::Error for EmailAddressError {}

impl EmailAddress {
    /// Checks an address as typed; surrounding white space is dropped.
    ///
    /// # Errors
    /// Why the address is refused ([`EmailAddressError::reason`]).
    pub fn parse(raw: &str) -> Result<EmailAddress, EmailAddressError> {
        let given = raw.trim();
        if given.is_empty() {
            return Err(EmailAddressError::Empty);
        }
        if given.len() > MAX_ADDRESS_BYTES {
            return Err(EmailAddressError::TooLong);
        }
        let (local, domain) = match given.split_once('@') {
            Some((local, domain)) if !domain.contains('@') => (local, domain),
            _ => return Err(EmailAddressError::NotOneAt),
        };
        check_local(local)?;
        check_domain(domain)?;
        let key = format!(
            "{}@{}",
            local.nfc().collect::<String>().to_lowercase(),
            domain.to_ascii_lowercase()
        );
        Ok(EmailAddress {
            given: given.to_owned(),
            key: EmailKey(key),
        })
    }

    /// The address as given (trimmed): what mail is sent to and what the user sees.
    pub fn as_str(&self) -> &str {
        &self.given
    }

    /// The key the address is unique under.
    pub fn key(&self) -> &EmailKey {
        &self.key
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.given)
    }
}

fn check_local(local: &str) -> Result<(), EmailAddressError> {
    if local.is_empty() {
        return Err(EmailAddressError::LocalEmpty);
    }
    if local.len() > MAX_LOCAL_BYTES {
        return Err(EmailAddressError::LocalTooLong);
    }
    let refused = |c: char| {
        c.is_whitespace()
            || is_invisible_or_control(c)
            || matches!(
                c,
                '"' | '(' | ')' | ',' | ':' | ';' | '<' | '>' | '[' | '\\' | ']'
            )
    };
    if local.chars().any(refused) {
        return Err(EmailAddressError::LocalCharacter);
    }
    Ok(())
}

fn check_domain(domain: &str) -> Result<(), EmailAddressError> {
    if domain.is_empty() {
        return Err(EmailAddressError::DomainEmpty);
    }
    if !domain.is_ascii() {
        return Err(EmailAddressError::DomainNotAscii);
    }
    if domain.len() > MAX_DOMAIN_BYTES {
        return Err(EmailAddressError::DomainTooLong);
    }
    if !domain
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return Err(EmailAddressError::DomainCharacter);
    }
    let mut labels = 0;
    let mut last = "";
    for label in domain.split('.') {
        if label.is_empty() {
            return Err(EmailAddressError::LabelEmpty);
        }
        if label.len() > MAX_LABEL_BYTES {
            return Err(EmailAddressError::LabelTooLong);
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(EmailAddressError::LabelHyphen);
        }
        labels += 1;
        last = label;
    }
    if labels < 2 {
        return Err(EmailAddressError::SingleLabel);
    }
    if last.bytes().all(|b| b.is_ascii_digit()) {
        return Err(EmailAddressError::NumericTopLabel);
    }
    Ok(())
}

impl Serialize for EmailAddress {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.given)
    }
}

impl<'de> Deserialize<'de> for EmailAddress {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        EmailAddress::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(raw: &str) -> EmailAddressError {
        match EmailAddress::parse(raw) {
            Ok(address) => panic!("{raw:?} parsed as {address:?}"),
            Err(why) => why,
        }
    }

    #[test]
    fn a_plain_address_keeps_its_spelling_and_lowercases_its_key() {
        let address = EmailAddress::parse("Ada.Lovelace+claimd@Example.ORG").unwrap();
        assert_eq!(address.as_str(), "Ada.Lovelace+claimd@Example.ORG");
        assert_eq!(address.key().as_str(), "ada.lovelace+claimd@example.org");
        assert_eq!(address.to_string(), address.as_str());
    }

    #[test]
    fn surrounding_white_space_is_dropped() {
        let address = EmailAddress::parse("  ada@example.org\n").unwrap();
        assert_eq!(address.as_str(), "ada@example.org");
    }

    #[test]
    fn addresses_differing_only_in_case_share_a_key() {
        let upper = EmailAddress::parse("ADA@EXAMPLE.ORG").unwrap();
        let lower = EmailAddress::parse("ada@example.org").unwrap();
        assert_eq!(upper.key(), lower.key());
        assert_ne!(upper.as_str(), lower.as_str());
    }

    #[test]
    fn composed_and_decomposed_accents_share_a_key() {
        let composed = EmailAddress::parse("Jos\u{e9}@example.org").unwrap();
        let decomposed = EmailAddress::parse("Jose\u{301}@example.org").unwrap();
        assert_eq!(composed.key(), decomposed.key());
        assert_eq!(composed.key().as_str(), "jos\u{e9}@example.org");
    }

    #[test]
    fn non_ascii_local_parts_and_punycode_domains_are_taken() {
        assert!(EmailAddress::parse("用户@example.org").is_ok());
        assert!(EmailAddress::parse("ada@xn--mnchen-3ya.de").is_ok());
        assert!(EmailAddress::parse("a..b@docomo.ne.jp").is_ok());
        assert!(EmailAddress::parse("o'hara!#$%&*+-/=?^_`{|}~@example.org").is_ok());
    }

    #[test]
    fn refused_addresses_say_why() {
        use EmailAddressError::*;
        for (raw, why) in [
            ("", Empty),
            ("   ", Empty),
            ("ada.example.org", NotOneAt),
            ("ada@bob@example.org", NotOneAt),
            ("@example.org", LocalEmpty),
            ("ada lovelace@example.org", LocalCharacter),
            ("ada\u{0}@example.org", LocalCharacter),
            ("ada\r\nBcc: eve@example.org", LocalCharacter),
            ("ad\u{200B}a@example.org", LocalCharacter),
            ("\"ada\"@example.org", LocalCharacter),
            ("Ada <ada@example.org>", LocalCharacter),
            ("ada,eve@example.org", LocalCharacter),
            ("ada@", DomainEmpty),
            ("ada@münchen.de", DomainNotAscii),
            ("ada@exa_mple.org", DomainCharacter),
            ("ada@[127.0.0.1]", DomainCharacter),
            ("ada@example..org", LabelEmpty),
            ("ada@.example.org", LabelEmpty),
            ("ada@example.org.", LabelEmpty),
            ("ada@-example.org", LabelHyphen),
            ("ada@example-.org", LabelHyphen),
            ("ada@localhost", SingleLabel),
            ("ada@127.0.0.1", NumericTopLabel),
        ] {
            assert_eq!(refused(raw), why, "{raw:?}");
        }
    }

    #[test]
    fn length_limits_hold_at_their_edges() {
        let local = |n| format!("{}@example.org", "a".repeat(n));
        assert!(EmailAddress::parse(&local(64)).is_ok());
        assert_eq!(refused(&local(65)), EmailAddressError::LocalTooLong);

        let label = |n| format!("ada@{}.org", "a".repeat(n));
        assert!(EmailAddress::parse(&label(63)).is_ok());
        assert_eq!(refused(&label(64)), EmailAddressError::LabelTooLong);

        // 64 + 1 + 189 = 254 bytes: labels of 63, 63, 61 joined by dots.
        let long_domain = format!("{}.{}.{}", "b".repeat(63), "c".repeat(63), "d".repeat(61));
        let longest = format!("{}@{long_domain}", "a".repeat(64));
        assert_eq!(longest.len(), MAX_ADDRESS_BYTES);
        assert!(EmailAddress::parse(&longest).is_ok());
        assert_eq!(
            refused(&format!("{}@{long_domain}x", "a".repeat(64))),
            EmailAddressError::TooLong
        );
    }

    #[test]
    fn the_error_reads_as_a_field_detail() {
        assert_eq!(
            refused("ada").to_string(),
            "email: must contain exactly one @"
        );
    }

    #[test]
    fn serde_writes_the_spelling_and_reads_through_the_parser() {
        let address = EmailAddress::parse("Ada@Example.org").unwrap();
        let json = serde_json::to_string(&address).unwrap();
        assert_eq!(json, r#""Ada@Example.org""#);
        let back: EmailAddress = serde_json::from_str(r#"" Ada@Example.org ""#).unwrap();
        assert_eq!(back, address);
        let error = serde_json::from_str::<EmailAddress>(r#""ada@localhost""#).unwrap_err();
        assert!(error
            .to_string()
            .contains("email: the domain must have at least two parts"));
    }
}
