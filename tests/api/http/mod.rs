//! The HTTP surface across endpoints: malformed input (`bad_input`) and bodies that lie or
//! stall (`request_bodies`), `cors`, `rate_limit`, the OpenAPI document against the route
//! table (`openapi`), forward-auth (`forward_auth`, and behind a real `nginx`), the
//! operations endpoints (`ops`), and logs that never carry a secret (`log_secrets`).

mod bad_input;
mod cors;
mod forward_auth;
mod log_secrets;
mod nginx;
mod openapi;
mod ops;
mod rate_limit;
mod request_bodies;
