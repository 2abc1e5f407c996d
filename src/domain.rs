//! Domain newtypes: identifiers, usernames and passwords. Each is built only through a
//! `parse`-style constructor that enforces its invariant, so code holding one never checks
//! again. Secrets (`Password`) never print.

use std::fmt;

use secrecy::{ExposeSecret as _, SecretString};
use unicode_normalization::UnicodeNormalization;
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh, time-ordered (UUIDv7) identifier.
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }

            /// Parses the hyphenated text form used on the wire.
            pub fn parse(text: &str) -> Option<Self> {
                Uuid::try_parse(text).ok().map(Self)
            }

            /// The 16 bytes used as a store key.
            pub fn as_bytes(&self) -> &[u8; 16] {
                self.0.as_bytes()
            }

            /// Rebuilds an id from its store key.
            pub fn from_bytes(bytes: [u8; 16]) -> Self {
                Self(Uuid::from_bytes(bytes))
            }

            /// Rebuilds an id from a store key slice, if it has the right length.
            pub fn from_slice(bytes: &[u8]) -> Option<Self> {
                <[u8; 16]>::try_from(bytes).ok().map(Self::from_bytes)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.hyphenated())
            }
        }
    };
}

uuid_id!(
    /// A user's id: the `sub` claim.
    UserId
);
uuid_id!(
    /// A session (refresh-token family) id: the `sid` claim.
    SessionId
);
uuid_id!(
    /// A tenant's id: the `tid` claim.
    TenantId
);
uuid_id!(
    /// An access token's id: the `jti` claim.
    TokenId
);
uuid_id!(
    /// An invitation's id: how an admin lists and revokes it (never its code).
    InvitationId
);
uuid_id!(
    /// A queued mail's id: its queue entry's key, and the first half of the token in its
    /// link (`mail::link`), which is how a presented token finds its entry.
    MailId
);

/// A username in canonical form: NFKC-normalised and case-folded, so that "Alice",
/// "alice" and "ａｌｉｃｅ" name one account. Control, zero-width and bidi characters are
/// refused: they make names that look alike but differ.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Username(String);

/// Longest username, in characters, after normalisation.
pub const MAX_USERNAME_CHARS: usize = 64;

impl Username {
    /// Normalises and checks a username as typed.
    ///
    /// # Errors
    /// Why the name is refused, fit to show the user.
    pub fn parse(raw: &str) -> Result<Username, &'static str> {
        if raw.chars().any(is_invisible_or_control) {
            return Err("username must not contain control, zero-width or bidi characters");
        }
        let folded: String = raw.nfkc().collect::<String>().to_lowercase();
        let canonical: String = folded.nfkc().collect();
        if canonical.chars().any(is_invisible_or_control) {
            return Err("username must not contain control, zero-width or bidi characters");
        }
        if canonical.trim().is_empty() {
            return Err("username must not be empty");
        }
        if canonical.trim() != canonical {
            return Err("username must not start or end with white space");
        }
        if canonical.chars().count() > MAX_USERNAME_CHARS {
            return Err("username must be at most 64 characters");
        }
        Ok(Username(canonical))
    }

    /// The canonical text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Control, zero-width, bidi and other invisible characters: refused in names and addresses
/// people compare by eye.
pub(crate) fn is_invisible_or_control(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{2069}'
                | '\u{FEFF}'
                | '\u{00AD}'
                | '\u{061C}'
        )
}

/// A password as the user typed it. It never prints (its `Debug` is secrecy's redaction),
/// its buffer is zeroed when dropped, and its length is bounded so an attacker cannot make
/// us hash megabytes.
#[derive(Clone, Debug)]
pub struct Password(SecretString);

/// Shortest and longest password, in characters.
pub const PASSWORD_CHARS: std::ops::RangeInclusive<usize> = 8..=1024;

impl Password {
    /// Checks a new password's length.
    ///
    /// # Errors
    /// Why it is refused, fit to show the user.
    pub fn parse_new(raw: SecretString) -> Result<Password, &'static str> {
        if !PASSWORD_CHARS.contains(&raw.expose_secret().chars().count()) {
            return Err("password must be 8 to 1024 characters");
        }
        Ok(Password(raw))
    }

    /// Wraps a password offered at login; an overlong one can never match, so it is cut
    /// rather than hashed whole.
    pub fn offered(raw: SecretString) -> Password {
        let text = raw.expose_secret();
        match text.char_indices().nth(*PASSWORD_CHARS.end() + 1) {
            Some((index, _)) => Password(SecretString::from(&text[..index])),
            None => Password(raw),
        }
    }

    /// The secret bytes, for hashing only.
    pub fn expose(&self) -> &[u8] {
        self.0.expose_secret().as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_fold_case_and_width() {
        let plain = Username::parse("alice").unwrap();
        assert_eq!(Username::parse("Alice").unwrap(), plain);
        assert_eq!(Username::parse("ＡＬＩＣＥ").unwrap(), plain);
    }

    #[test]
    fn usernames_refuse_invisible_characters() {
        assert!(Username::parse("ali\u{200B}ce").is_err());
        assert!(Username::parse("alice\u{202E}").is_err());
        assert!(Username::parse("ali\nce").is_err());
        assert!(Username::parse("").is_err());
        assert!(Username::parse(" alice").is_err());
        assert!(Username::parse(&"a".repeat(65)).is_err());
    }

    #[test]
    fn passwords_never_print() {
        let password = Password::parse_new("correct horse".into()).unwrap();
        assert!(!format!("{password:?}").contains("horse"));
        assert!(Password::parse_new("short".into()).is_err());
    }

    #[test]
    fn offered_passwords_are_cut_past_the_longest() {
        let long = "é".repeat(2000);
        assert_eq!(Password::offered(long.into()).expose().len(), 2 * 1025);
        assert_eq!(Password::offered("short".into()).expose(), b"short");
    }
}
