//! [`Refusal`]: why a token is not accepted, the same reasons whichever verifier judged it.

/// Why a token is refused. The reasons are for logs and problem details; none carries
/// token material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// Malformed, forged, wrong issuer, audience or algorithm, a life claimd never issues.
    #[error("{0}")]
    Invalid(&'static str),
    /// Past `exp` plus the leeway.
    #[error("token expired")]
    Expired,
    /// The header names a key the verifier does not hold (a verifier that fetches its
    /// keys may fetch them again before it gives up).
    #[error("unknown kid")]
    UnknownKey,
    /// On the deny list; or its user gone, disabled, or signed out everywhere after it
    /// was issued.
    #[error("token revoked")]
    Revoked,
}
