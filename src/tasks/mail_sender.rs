//! The mail sender: claims due mails from the store's queue, composes each with its link
//! (the token derived again from the server's mail key and the queue entry), hands it to
//! the transport and records the outcome: sent, or a failure that backs off
//! (`store::model::mail`). It wakes when a request queued a mail and every second
//! otherwise, so mail queued before a crash or a restart, or waiting out a failure, goes
//! out without anyone asking.
//!
//! A claim is a lease ([`LEASE_SECS`]): another node, or this one after a restart, takes
//! a mail only once the sender that claimed it has had its time, so a mail whose sender
//! died mid-attempt is sent again (at least once: the link is the same, the mail id in its
//! `Message-ID` too). Nothing here logs a mail's body, link or address.

use std::sync::Arc;
use std::time::Duration;

use rand::RngCore as _;
use tokio::sync::{watch, Notify};

use crate::clock::Clock;
use crate::mail::message::Templates;
use crate::mail::transport::MailTransport;
use crate::mail::MailKey;
use crate::secret::ExposeSecret as _;
use crate::store::{DeliveryOutcome, MailFailure, QueuedMail, Store};
use crate::telemetry::Metrics;

/// How long a claimed mail is this sender's before another may try it: longer than one
/// delivery may take (the transport gives up on a mail server after 30 s), and no longer,
/// since it is also how long a mail waits when the sender that claimed it died.
pub const LEASE_SECS: u64 = 40;
/// Mails claimed at once: one, so no claimed mail waits behind another's delivery past its
/// lease (where another node would take it and send it too).
const BATCH: usize = 1;
/// The longest the sender sleeps with nothing queued.
const IDLE: Duration = Duration::from_secs(1);

/// What the sender needs besides the store.
pub struct Sender {
    pub store: Arc<Store>,
    pub metrics: Arc<Metrics>,
    pub transport: MailTransport,
    pub templates: Templates,
    pub key: Arc<MailKey>,
    /// Where links point (`mail.public_url`, default the issuer).
    pub public_url: String,
    pub link_ttl: Duration,
    pub clock: Clock,
    /// Notified when a request queued a mail.
    pub queued: Arc<Notify>,
}

/// Runs until `shutdown` turns true.
pub async fn run(sender: Sender, mut shutdown: watch::Receiver<bool>) {
    loop {
        if let Err(err) = sender.one_pass(&shutdown).await {
            tracing::warn!(error = %err, "mail sender pass failed; retrying");
        }
        tokio::select! {
            () = sender.queued.notified() => {}
            () = tokio::time::sleep(IDLE) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            break;
        }
    }
}

impl Sender {
    /// Sends what is due, batch after batch, until nothing is or the server stops.
    async fn one_pass(
        &self,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<(), crate::store::StoreError> {
        loop {
            let now = self.clock.now();
            let due = self.store.claim_due_mails(now, LEASE_SECS, BATCH).await?;
            let full = due.len() == BATCH;
            for mail in due {
                if *shutdown.borrow() {
                    // Claimed and not tried: due again when its lease ends.
                    return Ok(());
                }
                self.send(&mail).await?;
            }
            if !full {
                break;
            }
        }
        self.metrics
            .mail_queue(self.store.mail_queue_depth().await?);
        Ok(())
    }

    /// One attempt at one mail, recorded.
    async fn send(&self, mail: &QueuedMail) -> Result<(), crate::store::StoreError> {
        let link = self
            .key
            .token_for(&mail.grant())
            .link(&self.public_url, mail.purpose);
        let composed = self.templates.compose(
            mail.id,
            mail.purpose,
            &mail.to,
            link.expose_secret(),
            self.link_ttl,
            mail.issued_at,
        );
        let outcome = match composed {
            Ok(composed) => match self.transport.deliver(&composed).await {
                Ok(()) => {
                    self.metrics.mail_sent();
                    tracing::info!(mail = %mail.id, user = %mail.user, purpose = %mail.purpose, "mail sent");
                    DeliveryOutcome::Sent
                }
                Err(failure) => {
                    self.metrics.mail_failed(failure.code());
                    tracing::warn!(mail = %mail.id, reason = failure.code(), "mail delivery failed");
                    DeliveryOutcome::Failed {
                        failure,
                        jitter: rand::rngs::OsRng.next_u64(),
                    }
                }
            },
            Err(err) => {
                // The address or the templates cannot make a mail: no retry helps.
                self.metrics.mail_failed("compose");
                tracing::error!(mail = %mail.id, error = %err, "mail could not be composed");
                DeliveryOutcome::Failed {
                    failure: MailFailure::Permanent,
                    jitter: 0,
                }
            }
        };
        let now = self.clock.now();
        if let Some(after) = self.store.record_delivery(mail.id, outcome, now).await? {
            if let crate::store::Delivery::GaveUp { reason, .. } = after.delivery {
                tracing::warn!(mail = %mail.id, reason = reason.code(), "mail given up");
            }
        }
        Ok(())
    }
}
