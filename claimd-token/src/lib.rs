//! claimd's access token as every verifier of it must read it: the claims
//! ([`AccessClaims`], [`ClientClaims`]), the header rules, and the order of the verdicts
//! (DESIGN.md "Verification order"). claimd's own verification and the `claimd-verify`
//! library both run this code, so a token one accepts the other accepts.
//!
//! No I/O, no clock, no web framework: the caller passes the time, the keys
//! ([`KeyLookup`]) and what it knows of the token's user and tenant ([`Standing`]).
//!
//! 1. [`TokenRules::check`]: size, the raw header (`typ: at+jwt`; only `alg`, `typ`,
//!    `kid`, each once), the key `kid` names and its algorithm, the signature, issuer,
//!    audience, `exp`, `nbf`, `iat` with the leeway, and a life no longer than claimd
//!    issues.
//! 2. [`judge`]: the deny list, the user (gone, disabled, issued before `not_before`),
//!    then the claim versions (stale or current).

mod cache;
mod claims;
mod header;
mod presented;
mod refusal;
mod rules;
mod standing;

pub use cache::VerifiedTokenCache;
pub use claims::{AccessClaims, ClientClaims, TokenTimes};
pub use header::{ACCESS_TOKEN_TYP, MAX_ACCESS_TOKEN_BYTES};
pub use jsonwebtoken::{Algorithm, DecodingKey};
pub use presented::bearer_credential;
pub use refusal::Refusal;
pub use rules::{Expiry, KeyLookup, TokenRules};
pub use standing::{judge, Currency, Knowledge, Standing, TenantStanding, UserFacts, UserStanding};
