//! Background tasks started with the server and stopped before the store closes:
//! deny-list and session eviction, and signing-key rotation.

pub mod eviction;
pub mod rotation;
