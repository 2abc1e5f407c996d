//! Second factors (issue 22), the parts that need no store or server: time-based one-time
//! passwords ([`totp`]) and the recovery codes that stand in for them ([`recovery`]).
//! Enrolment, login with a second factor and step-up are `auth`'s; where factors are kept
//! is the store's.

pub mod recovery;
pub mod totp;
