//! Mail (issue 21): the addresses accounts carry, the single-use links claimd mails for
//! verifying an address, resetting a password and signing in by link, and the mails
//! themselves. The queue is the store's (`store::model::mail`), the flows `auth::Email`'s,
//! the sending `tasks::mail_sender`'s.
//!
//! - [`address`]: [`EmailAddress`], parsed from what a user typed, with the key it is
//!   unique under.
//! - [`link`]: link purposes, the server's [`MailKey`], and the tokens it derives for a
//!   queued mail (never stored) and checks when one is presented.
//! - `key_file`: where the [`MailKey`] is kept (never in the store).
//! - [`message`]: the templates and a composed mail; [`transport`]: none, outbox, SMTP.
//! - `mailbox`: the outbox read back, newest first, for the demo page.

pub mod address;
#[cfg(feature = "smtp")]
pub mod key_file;
pub mod link;
#[cfg(feature = "smtp")]
pub mod mailbox;
pub mod message;
pub mod transport;

pub use address::{EmailAddress, EmailAddressError, EmailKey};
pub use link::{LinkGrant, LinkPurpose, LinkToken, LinkTokenError, MailKey, PresentedLinkToken};
