//! Why a token is refused ([`VerifyError`], with claimd's codes) and why the verifier
//! could not start ([`StartError`]). Both may gain variants: match them with a `_` arm.

use claimd_token::Refusal;

/// Why a token is refused. [`VerifyError::code`] is the string claimd answers with; the
/// `Display` text is its detail, with no token material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// No token was presented (the extractor: no `Authorization` header).
    #[error("an access token is required")]
    Missing,
    /// Malformed, forged, wrong issuer/audience/algorithm, unknown key.
    #[error("{0}")]
    Invalid(&'static str),
    #[error("the access token has expired")]
    Expired,
    /// On the deny list, or its user deleted, disabled or signed out everywhere.
    #[error("the token has been revoked")]
    Revoked,
    /// Its claims are behind the user's or tenant's: refresh.
    #[error("claims have changed: get a new token from /auth/refresh-token")]
    Stale,
    /// claimd has not been heard from for longer than `max_staleness` (and the fallback,
    /// if any, failed): nothing is accepted.
    #[error("{0}")]
    Unavailable(String),
}

impl VerifyError {
    /// claimd's error code for this refusal.
    pub fn code(&self) -> &'static str {
        match self {
            VerifyError::Missing => "token_missing",
            VerifyError::Invalid(_) => "token_invalid",
            VerifyError::Expired => "token_expired",
            VerifyError::Revoked => "token_revoked",
            VerifyError::Stale => "token_stale",
            VerifyError::Unavailable(_) => "verifier_unavailable",
        }
    }
}

impl From<Refusal> for VerifyError {
    fn from(refusal: Refusal) -> VerifyError {
        match refusal {
            Refusal::Invalid(why) => VerifyError::Invalid(why),
            Refusal::Expired => VerifyError::Expired,
            Refusal::UnknownKey => VerifyError::Invalid("unknown kid"),
            Refusal::Revoked => VerifyError::Revoked,
            // Whatever a newer claimd-token refuses for: refused all the same.
            _ => VerifyError::Invalid("token refused"),
        }
    }
}

/// Why [`crate::Verifier::start`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The request, and why it failed down to its root (a refused certificate, a
    /// refused connection), all in its text: the error is not also a `source()`, so a
    /// reporter that walks causes does not print them twice.
    #[error("{what}: {}", with_causes(error))]
    Http {
        what: &'static str,
        error: reqwest::Error,
    },
    #[error("{0}")]
    Claimd(String),
    #[error("no snapshot from claimd within the start timeout")]
    Timeout,
}

/// `error` and each of its sources, joined: reqwest's own text stops at "error sending
/// request", which does not say that a certificate was refused.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}
