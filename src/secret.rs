//! Secrets as types. Passwords, tokens, client secrets and invitation codes travel as
//! [`SecretString`] (from `secrecy`): its `Debug` prints `SecretBox<str>([REDACTED])`, it
//! has no `Display`, and its buffer is zeroed when dropped, so a struct that holds one can
//! derive `Debug` without printing the secret. The only way to the text is
//! `expose_secret()`, which is easy to find in review.
//!
//! A secret that is meant to leave the process (a token in a token response, a client
//! secret shown once) is written out by the `serialize_with` helpers here, by name: the
//! JSON bodies stay what API.md says, and no other serialization can expose it.

pub use secrecy::{ExposeSecret, SecretString};
use serde::Serializer;

/// Writes a secret's text: for the one answer that hands it to its owner.
///
/// # Errors
/// Whatever the serializer reports.
pub fn serialize<S: Serializer>(secret: &SecretString, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(secret.expose_secret())
}

/// [`serialize`] for an optional secret (`None` is written as the serializer writes `None`).
///
/// # Errors
/// Whatever the serializer reports.
pub fn serialize_option<S: Serializer>(
    secret: &Option<SecretString>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match secret {
        Some(secret) => serializer.serialize_some(secret.expose_secret()),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, Debug)]
    struct Answer {
        #[serde(serialize_with = "serialize")]
        token: SecretString,
        #[serde(serialize_with = "serialize_option")]
        other: Option<SecretString>,
    }

    #[test]
    fn debug_hides_what_serialization_writes() {
        let answer = Answer {
            token: "s3cr3t-token".into(),
            other: Some("an0ther".into()),
        };
        let debug = format!("{answer:?}");
        assert!(
            !debug.contains("s3cr3t") && !debug.contains("an0ther"),
            "{debug}"
        );
        assert!(debug.contains("[REDACTED]"), "{debug}");
        let json = serde_json::to_string(&answer).unwrap();
        assert_eq!(json, r#"{"token":"s3cr3t-token","other":"an0ther"}"#);
    }
}
