//! [`TestApp`](crate::helpers::TestApp)'s calls: one method per endpoint, grouped as API.md
//! groups the endpoints, so a test reads as the requests it makes. An `…_ok` variant asserts
//! the success status and returns the part of the answer tests look at.

mod accounts;
mod admin;
mod oauth;
mod operations;

pub use accounts::PASSWORD;
pub use admin::UNKNOWN_ID;
pub use oauth::{inactive, Caller, Service};
