//! Beyond one claimd process: several nodes over one PostgreSQL database (`multi_node`),
//! the change feed other processes follow (`events`), and claimd-verify, the library that
//! verifies tokens inside a service and keeps current from that feed (`verifier`), also
//! over HTTPS (`verifier_tls`).

mod events;
mod multi_node;
mod verifier;
mod verifier_tls;
