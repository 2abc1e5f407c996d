//! Second factors (issue 22), the parts that need no store or server: time-based one-time
//! passwords ([`totp`]), the QR code an authenticator app scans ([`qr`]), and the recovery
//! codes that stand in for TOTP ([`recovery`]).
//! Enrolment, login with a second factor and step-up are `auth`'s; where factors are kept
//! is the store's.

pub mod qr;
pub mod recovery;
pub mod totp;
