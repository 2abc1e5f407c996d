//! Background tasks started with the server and stopped before the store closes.

pub mod eviction;
