//! Mail (issue 21, API.md's "Mail"): what claimd sends over SMTP, received by a real SMTP
//! server on loopback ([`SmtpSink`](crate::helpers::SmtpSink)). `harness` holds the sink
//! itself to what the other tests rely on, without a claimd: mails kept and decoded,
//! transient and permanent refusals, an outage and a return on the same port. The tests
//! here need aiosmtpd (`#[ignore = "needs aiosmtpd"]`; `.ci/run tools` installs it).

mod delivery;
mod flows;
mod harness;
mod limits;
mod secrets;
mod support;
