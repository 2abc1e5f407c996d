//! Mail (issue 21): the addresses accounts carry and the single-use links claimd mails for
//! verifying an address, resetting a password and signing in by link. Pure so far: no
//! store, no HTTP, no SMTP.
//!
//! - [`address`]: [`EmailAddress`], parsed from what a user typed, with the key it is
//!   unique under.
//! - [`link`]: link purposes, the server's [`MailKey`], and the tokens it derives for a
//!   queued mail (never stored) and checks when one is presented.

pub mod address;
pub mod key_file;
pub mod link;
pub mod message;
pub mod transport;

pub use address::{EmailAddress, EmailAddressError, EmailKey};
pub use link::{LinkGrant, LinkPurpose, LinkToken, LinkTokenError, MailKey, PresentedLinkToken};
