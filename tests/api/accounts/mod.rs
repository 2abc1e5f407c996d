//! Accounts: registration, login, the caller's own record (`me`) and `password`, the
//! `bootstrap` admin, and what admins manage: users, tenants, `invitations` into tenants
//! and `services` (service credentials).

mod admin_tenants;
mod admin_users;
mod bootstrap;
mod invitations;
mod login;
mod me;
mod password;
pub(crate) mod register; // `http::bad_input` borrows `long_password`
mod services;
