//! Tokens: the access-token claim set, signing keys and the JWKS, minting and verifying
//! JWTs, and the refresh-token MAC. Only this module imports jsonwebtoken. Nothing here
//! reads the store: the deny list and claim versions are `auth`'s business.

pub mod access;
pub mod import;
pub mod keys;
pub mod refresh;

pub use access::{AccessTokens, TokenError};
pub use claimd_token::{AccessClaims, ClientClaims, VerifiedTokenCache};
pub use keys::{KeyError, KeyRing, SigningKey};
pub use refresh::{mint_refresh_token, PresentedRefreshToken, SessionKey};
