//! Mail (issue 21): the addresses accounts carry and the single-use links claimd mails for
//! verifying an address, resetting a password and signing in by link. Pure so far: no
//! store, no HTTP, no SMTP.
//!
//! - [`address`]: [`EmailAddress`], parsed from what a user typed, with the key it is
//!   unique under.

pub mod address;

pub use address::{EmailAddress, EmailAddressError, EmailKey};
