//! The mail queue (issue 21) and the links its mails carry: a [`QueuedMail`] is one mail,
//! queued in the transaction that grants its link and sent after commit; a user's
//! [`MailLinks`] says which of their links may still be redeemed. Both backends' writes
//! call these rules and decide nothing of their own.
//!
//! Delivery: a queued mail is due at `next_attempt_at`; a failure moves that on by an
//! exponential backoff ([`RETRY_BASE_SECS`] doubling up to [`RETRY_CAP_SECS`], ±20 %
//! jitter drawn by the caller, so the rule is deterministic) until [`MAX_ATTEMPTS`], a
//! permanent refusal, or the link's expiry ends it: a dead link is not worth mailing.
//!
//! Redemption: the newest link of a purpose supersedes the older ones; a link is redeemed
//! once, before `expires_at`, for the purpose it was issued for. Every refusal is one
//! [`LinkInvalid`] (API.md's 400 `link_invalid`): the reason is kept for the log only.
//! The token's MAC is checked before (`mail::link`); these rules take its mail id.
//!
//! Both records stay until their link's `expires_at`, whatever became of them, and the
//! eviction drops them then ([`QueuedMail::evictable`], [`MailLinks::prune`]): a sent mail's
//! queue entry is what a presented token is checked against. Neither holds a token, a
//! digest of one or a mail body.

use crate::domain::{MailId, UserId};
use crate::mail::{EmailAddress, LinkGrant, LinkPurpose};

/// The first retry waits this long (before jitter); each failure doubles it.
pub const RETRY_BASE_SECS: u64 = 5;
/// The longest wait between two attempts (before jitter).
pub const RETRY_CAP_SECS: u64 = 5 * 60;
/// Attempts after which a mail is given up, if its link has not expired first.
pub const MAX_ATTEMPTS: u32 = 12;
/// Permanent (5xx) refusals after which a mail is given up: a server refuses for good
/// for a while too (a rotated credential, a relay misconfigured), so not at the first.
pub const PERMANENT_ATTEMPTS: u32 = 3;
/// Most links one user's [`MailLinks`] keeps; ended ones make room for new ones.
pub const MAX_LINKS_PER_USER: usize = 16;

/// Why one delivery attempt failed: a short code for the log and the
/// `claimd_mail_failed_total{reason}` label, never the server's reply or the mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailFailure {
    /// The mail server could not be reached.
    Connect,
    /// The TLS handshake or certificate check failed.
    Tls,
    /// The server stopped answering.
    Timeout,
    /// A 4xx reply: try again later.
    Transient,
    /// A 5xx reply: the server will not take this mail, so it is not retried.
    Permanent,
    /// The outbox file could not be written.
    Outbox,
}

impl MailFailure {
    /// The code: `connect`, `tls`, `timeout`, `transient`, `permanent`, `outbox`.
    pub fn code(self) -> &'static str {
        match self {
            MailFailure::Connect => "connect",
            MailFailure::Tls => "tls",
            MailFailure::Timeout => "timeout",
            MailFailure::Transient => "transient",
            MailFailure::Permanent => "permanent",
            MailFailure::Outbox => "outbox",
        }
    }

    /// Whether trying again cannot help.
    pub fn is_permanent(self) -> bool {
        self == MailFailure::Permanent
    }
}

/// Why a mail was given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUp {
    /// [`MAX_ATTEMPTS`] failed.
    Attempts,
    /// The server refused it for good.
    Permanent,
    /// Its link expired, or would have before the next attempt.
    LinkExpired,
    /// A newer link of the same purpose was issued before it was sent.
    Superseded,
}

impl GiveUp {
    /// The code: `attempts`, `permanent`, `link_expired`, `superseded`.
    pub fn code(self) -> &'static str {
        match self {
            GiveUp::Attempts => "attempts",
            GiveUp::Permanent => "permanent",
            GiveUp::LinkExpired => "link_expired",
            GiveUp::Superseded => "superseded",
        }
    }
}

/// Where a mail's delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Waiting for its next attempt; `attempts` have failed so far.
    Queued {
        attempts: u32,
        next_attempt_at: u64,
        last_failure: Option<MailFailure>,
    },
    /// Handed to the mail server (or written to the outbox) at `at`.
    Sent { at: u64, attempts: u32 },
    /// Not to be sent any more.
    GaveUp {
        at: u64,
        attempts: u32,
        reason: GiveUp,
        last_failure: Option<MailFailure>,
    },
}

/// One mail in the queue, keyed by its [`MailId`] (its on-disk shapes are the backends'
/// business). Its link's token is derived from [`QueuedMail::grant`] when it is sent and
/// again when the token is presented.
#[derive(Clone, PartialEq)]
pub struct QueuedMail {
    pub id: MailId,
    pub user: UserId,
    pub purpose: LinkPurpose,
    /// The address as the user gave it, for `To:`.
    pub to: EmailAddress,
    /// Unix seconds: the clock of the request that queued it. Part of the token's grant.
    pub issued_at: u64,
    /// `issued_at + mail.link_ttl`: the link's end, and the record's.
    pub expires_at: u64,
    pub delivery: Delivery,
}

impl std::fmt::Debug for QueuedMail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The address is personal data: logs name the mail by id and user only.
        f.debug_struct("QueuedMail")
            .field("id", &self.id)
            .field("user", &self.user)
            .field("purpose", &self.purpose)
            .field("expires_at", &self.expires_at)
            .field("delivery", &self.delivery)
            .finish_non_exhaustive()
    }
}

/// What a failed attempt led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Due again at this time.
    RetryAt(u64),
    GaveUp(GiveUp),
    /// The mail was no longer queued (sent or given up meanwhile): nothing changed.
    NotQueued,
}

impl QueuedMail {
    /// A new mail to `to`, due at once, with a fresh id; its link lives `link_ttl` seconds.
    pub fn new(
        user: UserId,
        purpose: LinkPurpose,
        to: EmailAddress,
        issued_at: u64,
        link_ttl: u64,
    ) -> QueuedMail {
        QueuedMail {
            id: MailId::generate(),
            user,
            purpose,
            to,
            issued_at,
            expires_at: issued_at.saturating_add(link_ttl),
            delivery: Delivery::Queued {
                attempts: 0,
                next_attempt_at: issued_at,
                last_failure: None,
            },
        }
    }

    /// What its link grants: the MAC's input for the token, at send and at redemption.
    pub fn grant(&self) -> LinkGrant {
        LinkGrant {
            purpose: self.purpose,
            mail: self.id,
            user: self.user,
            issued_at: self.issued_at,
        }
    }

    /// Whether the sender should try it at `now`: queued, its time come, its link alive.
    pub fn due(&self, now: u64) -> bool {
        match self.delivery {
            Delivery::Queued {
                next_attempt_at, ..
            } => now >= next_attempt_at && now < self.expires_at,
            Delivery::Sent { .. } | Delivery::GaveUp { .. } => false,
        }
    }

    /// Notes a failed attempt at `now`: due again after the backoff for the attempts made,
    /// moved by `jitter` (any random `u64`; it picks a point within ±20 % of the wait), or
    /// given up after [`MAX_ATTEMPTS`], on a permanent refusal, or when the link would be
    /// dead by the next attempt.
    pub fn after_failure(&mut self, now: u64, failure: MailFailure, jitter: u64) -> AfterFailure {
        let Delivery::Queued { attempts, .. } = self.delivery else {
            return AfterFailure::NotQueued;
        };
        let attempts = attempts.saturating_add(1);
        let next_attempt_at = now.saturating_add(retry_delay(attempts, jitter));
        let give_up = if failure.is_permanent() && attempts >= PERMANENT_ATTEMPTS {
            Some(GiveUp::Permanent)
        } else if attempts >= MAX_ATTEMPTS {
            Some(GiveUp::Attempts)
        } else if next_attempt_at >= self.expires_at {
            Some(GiveUp::LinkExpired)
        } else {
            None
        };
        match give_up {
            Some(reason) => {
                self.delivery = Delivery::GaveUp {
                    at: now,
                    attempts,
                    reason,
                    last_failure: Some(failure),
                };
                AfterFailure::GaveUp(reason)
            }
            None => {
                self.delivery = Delivery::Queued {
                    attempts,
                    next_attempt_at,
                    last_failure: Some(failure),
                };
                AfterFailure::RetryAt(next_attempt_at)
            }
        }
    }

    /// Notes that it was sent at `now`; whether it changed (a mail no longer queued stays
    /// as it is).
    pub fn after_sent(&mut self, now: u64) -> bool {
        let Delivery::Queued { attempts, .. } = self.delivery else {
            return false;
        };
        self.delivery = Delivery::Sent {
            at: now,
            attempts: attempts.saturating_add(1),
        };
        true
    }

    /// Stops a mail whose link a newer one superseded ([`Issued::superseded`]), if it
    /// is still queued; whether it changed. Its link would be refused anyway.
    pub fn after_superseded(&mut self, now: u64) -> bool {
        let Delivery::Queued {
            attempts,
            last_failure,
            ..
        } = self.delivery
        else {
            return false;
        };
        self.delivery = Delivery::GaveUp {
            at: now,
            attempts,
            reason: GiveUp::Superseded,
            last_failure,
        };
        true
    }

    /// Whether the eviction drops it at `now`: its link has expired, whatever its delivery.
    pub fn evictable(&self, now: u64) -> bool {
        now >= self.expires_at
    }
}

/// What one delivery attempt came to, for [`QueuedMail::record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Sent,
    /// It failed; `jitter` is a random draw for the backoff ([`QueuedMail::after_failure`]).
    Failed {
        failure: MailFailure,
        jitter: u64,
    },
}

impl QueuedMail {
    /// Reserves a due mail for one sender for `lease` seconds at `now`: it is due again
    /// only after that, so two senders (two nodes, or a sender and its restart) do not
    /// both try it at once, and a sender that dies mid-attempt leaves it to be retried
    /// when the lease ends. Whether it was due.
    pub fn claim(&mut self, now: u64, lease: u64) -> bool {
        if !self.due(now) {
            return false;
        }
        if let Delivery::Queued {
            next_attempt_at, ..
        } = &mut self.delivery
        {
            *next_attempt_at = now.saturating_add(lease);
        }
        true
    }

    /// Records an attempt's outcome at `now`; whether the mail changed (one no longer
    /// queued stays as it is).
    pub fn record(&mut self, outcome: DeliveryOutcome, now: u64) -> bool {
        match outcome {
            DeliveryOutcome::Sent => self.after_sent(now),
            DeliveryOutcome::Failed { failure, jitter } => {
                self.after_failure(now, failure, jitter) != AfterFailure::NotQueued
            }
        }
    }

    /// When it is due next, while it is queued: what a backend indexes it by.
    pub fn next_attempt_at(&self) -> Option<u64> {
        match self.delivery {
            Delivery::Queued {
                next_attempt_at, ..
            } => Some(next_attempt_at),
            Delivery::Sent { .. } | Delivery::GaveUp { .. } => None,
        }
    }
}

/// Why a mail write was refused.
#[derive(Debug, thiserror::Error)]
pub enum MailWriteError {
    /// The user the mail is for, or whose link it is, is gone.
    #[error("no such user")]
    UserGone,
    #[error(transparent)]
    LinkInvalid(#[from] LinkInvalid),
    #[error(transparent)]
    Store(#[from] super::StoreError),
}

/// The wait after the `attempts`-th failure: [`RETRY_BASE_SECS`] doubled per earlier
/// failure, at most [`RETRY_CAP_SECS`], then moved within ±20 % by `jitter`.
pub fn retry_delay(attempts: u32, jitter: u64) -> u64 {
    let doublings = attempts.saturating_sub(1).min(16);
    let delay = RETRY_BASE_SECS
        .saturating_mul(1 << doublings)
        .min(RETRY_CAP_SECS);
    let spread = delay / 5;
    let offset = jitter % (2 * spread + 1);
    (delay - spread).saturating_add(offset)
}

/// Where a link stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// The newest of its purpose, not redeemed (it may still have expired).
    Live,
    Used {
        at: u64,
    },
    Superseded {
        at: u64,
    },
}

/// One link a user was mailed: which queued mail, for what, until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailLink {
    pub mail: MailId,
    pub purpose: LinkPurpose,
    pub issued_at: u64,
    pub expires_at: u64,
    pub state: LinkState,
}

/// Every link one user was mailed and whose `expires_at` has not passed, oldest first (one
/// record per user, for every purpose: the redeem transaction reads one value). At most
/// one per purpose is [`LinkState::Live`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MailLinks {
    pub links: Vec<MailLink>,
}

/// What issuing a link changed beside adding it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Issued {
    /// The link it superseded, if one of its purpose was live: the backend stops that mail
    /// ([`QueuedMail::after_superseded`]) in the same write.
    pub superseded: Option<MailId>,
    /// Links that left the book (expired, or ended ones making room): the backend drops
    /// their queue entries in the same write.
    pub removed: Vec<MailId>,
}

/// Why a link was refused, for the log only. Callers see one [`LinkInvalid`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Unknown,
    OtherPurpose,
    Used,
    Superseded,
    Expired,
    AddressChanged,
    AccountDisabled,
}

/// A mail link that cannot be redeemed: unknown, for another purpose, used, superseded or
/// expired alike (API.md: 400 `link_invalid`). Its `Display` is the same for all; `Debug`
/// and [`LinkInvalid::log_reason`] say which, for the log.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("link invalid")]
pub struct LinkInvalid(Refusal);

impl LinkInvalid {
    /// A link for a token that is not the issued spelling, or whose MAC does not match.
    pub fn unknown() -> LinkInvalid {
        LinkInvalid(Refusal::Unknown)
    }

    /// The account's address changed since the link was mailed.
    pub(crate) fn address_changed() -> LinkInvalid {
        LinkInvalid(Refusal::AddressChanged)
    }

    /// The account was disabled.
    pub(crate) fn account_disabled() -> LinkInvalid {
        LinkInvalid(Refusal::AccountDisabled)
    }

    /// Which refusal it was, for the log and metrics only (never for the answer).
    pub fn log_reason(&self) -> &'static str {
        match self.0 {
            Refusal::Unknown => "unknown",
            Refusal::OtherPurpose => "other_purpose",
            Refusal::Used => "used",
            Refusal::Superseded => "superseded",
            Refusal::Expired => "expired",
            Refusal::AddressChanged => "address_changed",
            Refusal::AccountDisabled => "account_disabled",
        }
    }
}

impl MailLinks {
    /// Adds the link `mail` carries: it supersedes the live link of the same purpose, and
    /// the book is pruned at `now` and kept within [`MAX_LINKS_PER_USER`] (ended links go
    /// first, oldest first; live ones, at most one per purpose, are never dropped).
    pub fn issue(&mut self, mail: &QueuedMail, now: u64) -> Issued {
        let mut issued = Issued {
            removed: self.prune(now),
            ..Issued::default()
        };
        for link in &mut self.links {
            if link.purpose == mail.purpose && link.state == LinkState::Live {
                link.state = LinkState::Superseded { at: now };
                issued.superseded = Some(link.mail);
            }
        }
        while self.links.len() >= MAX_LINKS_PER_USER {
            let Some(oldest_ended) = self
                .links
                .iter()
                .position(|link| link.state != LinkState::Live)
            else {
                break;
            };
            issued.removed.push(self.links.remove(oldest_ended).mail);
        }
        self.links.push(MailLink {
            mail: mail.id,
            purpose: mail.purpose,
            issued_at: mail.issued_at,
            expires_at: mail.expires_at,
            state: LinkState::Live,
        });
        issued
    }

    /// Redeems link `mail` for `purpose` at `now`: only the live link of that purpose,
    /// before it expires, and only once.
    ///
    /// # Errors
    /// [`LinkInvalid`] for every refusal, whatever it was; nothing changes.
    pub fn redeem(
        &mut self,
        mail: MailId,
        purpose: LinkPurpose,
        now: u64,
    ) -> Result<(), LinkInvalid> {
        let link = self
            .links
            .iter_mut()
            .find(|link| link.mail == mail)
            .ok_or(LinkInvalid(Refusal::Unknown))?;
        if link.purpose != purpose {
            return Err(LinkInvalid(Refusal::OtherPurpose));
        }
        match link.state {
            LinkState::Used { .. } => return Err(LinkInvalid(Refusal::Used)),
            LinkState::Superseded { .. } => return Err(LinkInvalid(Refusal::Superseded)),
            LinkState::Live if now >= link.expires_at => return Err(LinkInvalid(Refusal::Expired)),
            LinkState::Live => {}
        }
        link.state = LinkState::Used { at: now };
        Ok(())
    }

    /// Drops the links whose `expires_at` has passed at `now` (each has ended by then,
    /// whatever its state); returns their mail ids, whose queue entries go too.
    pub fn prune(&mut self, now: u64) -> Vec<MailId> {
        let mut dropped = Vec::new();
        self.links.retain(|link| {
            let keep = now < link.expires_at;
            if !keep {
                dropped.push(link.mail);
            }
            keep
        });
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: u64 = 30 * 60;

    fn mail(purpose: LinkPurpose, issued_at: u64) -> QueuedMail {
        let to = EmailAddress::parse("ada@example.org").unwrap();
        QueuedMail::new(UserId::generate(), purpose, to, issued_at, TTL)
    }

    fn attempts(mail: &QueuedMail) -> u32 {
        match mail.delivery {
            Delivery::Queued { attempts, .. }
            | Delivery::Sent { attempts, .. }
            | Delivery::GaveUp { attempts, .. } => attempts,
        }
    }

    #[test]
    fn a_new_mail_is_due_at_once_and_its_link_lives_the_ttl() {
        let queued = mail(LinkPurpose::Magic, 1000);
        assert_eq!(queued.expires_at, 1000 + TTL);
        assert!(queued.due(1000));
        assert!(!queued.due(999));
        let grant = queued.grant();
        assert_eq!(
            (grant.mail, grant.user, grant.purpose, grant.issued_at),
            (queued.id, queued.user, LinkPurpose::Magic, 1000)
        );
    }

    #[test]
    fn a_queued_mail_is_not_due_once_its_link_has_expired() {
        let queued = mail(LinkPurpose::Magic, 1000);
        assert!(queued.due(1000 + TTL - 1));
        assert!(!queued.due(1000 + TTL));
    }

    #[test]
    fn a_failure_makes_it_due_again_after_the_backoff() {
        let mut queued = mail(LinkPurpose::VerifyEmail, 1000);
        assert_eq!(
            queued.after_failure(1000, MailFailure::Connect, 1),
            AfterFailure::RetryAt(1005)
        );
        assert!(!queued.due(1004));
        assert!(queued.due(1005));
        assert_eq!(attempts(&queued), 1);
        assert!(matches!(
            queued.delivery,
            Delivery::Queued {
                last_failure: Some(MailFailure::Connect),
                ..
            }
        ));
    }

    #[test]
    fn the_backoff_doubles_from_five_seconds_up_to_five_minutes() {
        // A jitter of `spread` lands on the wait itself.
        let middle = |attempts| retry_delay(attempts, retry_delay(attempts, 0) / 4);
        let waits: Vec<u64> = (1..=9).map(middle).collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(middle(u32::MAX), 300);
    }

    #[test]
    fn the_jitter_moves_the_wait_within_a_fifth_either_way() {
        assert_eq!(retry_delay(1, 0), 4);
        assert_eq!(retry_delay(1, 2), 6);
        assert_eq!(retry_delay(1, 3), 4, "the draw wraps");
        assert_eq!(retry_delay(7, 0), 240);
        assert_eq!(retry_delay(7, 120), 360);
        for draw in [0, 1, 7, 1 << 40, u64::MAX] {
            let wait = retry_delay(7, draw);
            assert!((240..=360).contains(&wait), "{draw}: {wait}");
        }
    }

    #[test]
    fn a_mail_is_given_up_after_the_last_attempt_fails() {
        let mut queued = mail(LinkPurpose::ResetPassword, 0);
        queued.expires_at = u64::MAX;
        for attempt in 1..MAX_ATTEMPTS {
            assert!(matches!(
                queued.after_failure(u64::from(attempt) * 1000, MailFailure::Timeout, 0),
                AfterFailure::RetryAt(_)
            ));
        }
        assert_eq!(
            queued.after_failure(100_000, MailFailure::Timeout, 0),
            AfterFailure::GaveUp(GiveUp::Attempts)
        );
        assert_eq!(
            queued.delivery,
            Delivery::GaveUp {
                at: 100_000,
                attempts: MAX_ATTEMPTS,
                reason: GiveUp::Attempts,
                last_failure: Some(MailFailure::Timeout),
            }
        );
        assert!(!queued.due(200_000));
    }

    #[test]
    fn permanent_refusals_give_up_after_a_few_attempts() {
        let mut queued = mail(LinkPurpose::Magic, 0);
        for at in [1, 20] {
            assert!(matches!(
                queued.after_failure(at, MailFailure::Permanent, 0),
                AfterFailure::RetryAt(_)
            ));
        }
        assert_eq!(
            queued.after_failure(40, MailFailure::Permanent, 0),
            AfterFailure::GaveUp(GiveUp::Permanent)
        );
        assert_eq!(attempts(&queued), PERMANENT_ATTEMPTS);
    }

    #[test]
    fn a_mail_whose_link_would_be_dead_by_the_next_attempt_is_given_up() {
        let mut queued = mail(LinkPurpose::Magic, 0);
        // Due again at TTL - 1 (wait 4): still worth it.
        assert_eq!(
            queued.after_failure(TTL - 5, MailFailure::Transient, 0),
            AfterFailure::RetryAt(TTL - 1)
        );
        // The next wait (8 at least) reaches past the expiry.
        assert_eq!(
            queued.after_failure(TTL - 1, MailFailure::Transient, 0),
            AfterFailure::GaveUp(GiveUp::LinkExpired)
        );
    }

    #[test]
    fn a_sent_mail_is_never_due_again_and_counts_its_attempt() {
        let mut queued = mail(LinkPurpose::VerifyEmail, 0);
        queued.after_failure(0, MailFailure::Connect, 0);
        assert!(queued.after_sent(10));
        assert_eq!(
            queued.delivery,
            Delivery::Sent {
                at: 10,
                attempts: 2
            }
        );
        assert!(!queued.due(10));
        assert!(!queued.after_sent(11), "sent once");
    }

    #[test]
    fn reports_on_a_mail_no_longer_queued_change_nothing() {
        let mut queued = mail(LinkPurpose::VerifyEmail, 0);
        queued.after_sent(10);
        let sent = queued.clone();
        assert_eq!(
            queued.after_failure(11, MailFailure::Connect, 0),
            AfterFailure::NotQueued
        );
        assert!(!queued.after_superseded(12));
        assert_eq!(queued, sent);
    }

    #[test]
    fn a_superseded_mail_still_queued_is_given_up() {
        let mut queued = mail(LinkPurpose::ResetPassword, 0);
        queued.after_failure(0, MailFailure::Tls, 0);
        assert!(queued.after_superseded(20));
        assert_eq!(
            queued.delivery,
            Delivery::GaveUp {
                at: 20,
                attempts: 1,
                reason: GiveUp::Superseded,
                last_failure: Some(MailFailure::Tls),
            }
        );
        assert!(!queued.due(30));
    }

    #[test]
    fn a_mail_is_evicted_when_its_link_expires_whatever_its_delivery() {
        let mut queued = mail(LinkPurpose::Magic, 0);
        queued.after_sent(5);
        assert!(!queued.evictable(TTL - 1));
        assert!(queued.evictable(TTL));
    }

    #[test]
    fn failure_and_give_up_codes_are_short_and_distinct() {
        let failures = [
            MailFailure::Connect,
            MailFailure::Tls,
            MailFailure::Timeout,
            MailFailure::Transient,
            MailFailure::Permanent,
            MailFailure::Outbox,
        ]
        .map(MailFailure::code);
        let give_ups = [
            GiveUp::Attempts,
            GiveUp::Permanent,
            GiveUp::LinkExpired,
            GiveUp::Superseded,
        ]
        .map(GiveUp::code);
        for codes in [&failures[..], &give_ups[..]] {
            let mut sorted = codes.to_vec();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), codes.len());
            assert!(codes.iter().all(|code| code.len() <= 16
                && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')));
        }
    }

    #[test]
    fn queued_mail_debug_leaves_the_address_out() {
        let queued = mail(LinkPurpose::Magic, 0);
        let debug = format!("{queued:?}");
        // Hex ids may spell "ada"; the address's "@" and domain they cannot.
        assert!(!debug.contains("@example.org"), "{debug}");
        assert!(!debug.contains("example"), "{debug}");
        assert!(debug.contains(&queued.id.to_string()), "{debug}");
    }

    fn issued(links: &mut MailLinks, purpose: LinkPurpose, at: u64) -> (QueuedMail, Issued) {
        let queued = mail(purpose, at);
        let issued = links.issue(&queued, at);
        (queued, issued)
    }

    #[test]
    fn a_live_link_is_redeemed_once() {
        let mut links = MailLinks::default();
        let (queued, _) = issued(&mut links, LinkPurpose::VerifyEmail, 0);
        assert!(links
            .redeem(queued.id, LinkPurpose::VerifyEmail, 10)
            .is_ok());
        assert_eq!(links.links[0].state, LinkState::Used { at: 10 });
        let again = links.redeem(queued.id, LinkPurpose::VerifyEmail, 11);
        assert_eq!(again.map_err(|e| e.log_reason()), Err("used"));
    }

    #[test]
    fn a_newer_link_supersedes_the_older_of_its_purpose_only() {
        let mut links = MailLinks::default();
        let (magic, _) = issued(&mut links, LinkPurpose::Magic, 0);
        let (old_reset, _) = issued(&mut links, LinkPurpose::ResetPassword, 0);
        let (new_reset, issue) = issued(&mut links, LinkPurpose::ResetPassword, 5);
        assert_eq!(issue.superseded, Some(old_reset.id));
        let refused = links.redeem(old_reset.id, LinkPurpose::ResetPassword, 10);
        assert_eq!(refused.map_err(|e| e.log_reason()), Err("superseded"));
        assert!(links
            .redeem(new_reset.id, LinkPurpose::ResetPassword, 10)
            .is_ok());
        assert!(links.redeem(magic.id, LinkPurpose::Magic, 10).is_ok());
    }

    #[test]
    fn an_expired_link_is_refused() {
        let mut links = MailLinks::default();
        let (queued, _) = issued(&mut links, LinkPurpose::Magic, 0);
        let refused = links.redeem(queued.id, LinkPurpose::Magic, TTL);
        assert_eq!(refused.map_err(|e| e.log_reason()), Err("expired"));
        assert_eq!(links.links[0].state, LinkState::Live, "nothing changed");
    }

    #[test]
    fn a_link_is_refused_for_another_purpose_and_stays_live() {
        let mut links = MailLinks::default();
        let (queued, _) = issued(&mut links, LinkPurpose::VerifyEmail, 0);
        let refused = links.redeem(queued.id, LinkPurpose::ResetPassword, 1);
        assert_eq!(refused.map_err(|e| e.log_reason()), Err("other_purpose"));
        assert!(links.redeem(queued.id, LinkPurpose::VerifyEmail, 2).is_ok());
    }

    #[test]
    fn an_unknown_link_is_refused() {
        let mut links = MailLinks::default();
        issued(&mut links, LinkPurpose::Magic, 0);
        let refused = links.redeem(MailId::generate(), LinkPurpose::Magic, 1);
        assert_eq!(refused.map_err(|e| e.log_reason()), Err("unknown"));
    }

    #[test]
    fn every_refusal_reads_the_same_to_the_caller() {
        let mut links = MailLinks::default();
        let (used, _) = issued(&mut links, LinkPurpose::VerifyEmail, 0);
        links.redeem(used.id, LinkPurpose::VerifyEmail, 1).unwrap();
        let (superseded, _) = issued(&mut links, LinkPurpose::Magic, 0);
        let (expired, _) = issued(&mut links, LinkPurpose::Magic, 0);
        let refusals = [
            links.redeem(MailId::generate(), LinkPurpose::Magic, 2),
            links.redeem(expired.id, LinkPurpose::VerifyEmail, 2),
            links.redeem(used.id, LinkPurpose::VerifyEmail, 2),
            links.redeem(superseded.id, LinkPurpose::Magic, 2),
            links.redeem(expired.id, LinkPurpose::Magic, TTL),
        ];
        let mut reasons: Vec<_> = refusals
            .iter()
            .map(|refusal| refusal.unwrap_err().log_reason())
            .collect();
        reasons.sort_unstable();
        reasons.dedup();
        assert_eq!(reasons.len(), 5, "each reason is kept for the log");
        for refusal in refusals {
            assert_eq!(refusal.unwrap_err().to_string(), "link invalid");
        }
    }

    #[test]
    fn prune_drops_the_links_whose_expiry_has_passed() {
        let mut links = MailLinks::default();
        let (early, _) = issued(&mut links, LinkPurpose::Magic, 0);
        let (late, _) = issued(&mut links, LinkPurpose::VerifyEmail, 100);
        links
            .redeem(late.id, LinkPurpose::VerifyEmail, 101)
            .unwrap();
        assert!(links.prune(TTL - 1).is_empty());
        assert_eq!(links.prune(TTL), vec![early.id]);
        assert_eq!(links.prune(TTL + 100), vec![late.id]);
        assert!(links.links.is_empty());
    }

    #[test]
    fn issuing_prunes_and_makes_room_from_ended_links_only() {
        let mut links = MailLinks::default();
        let (expired, _) = issued(&mut links, LinkPurpose::VerifyEmail, 0);
        let at = TTL;
        let (reset, _) = issued(&mut links, LinkPurpose::ResetPassword, at);
        let mut magic = Vec::new();
        for _ in 0..MAX_LINKS_PER_USER {
            magic.push(issued(&mut links, LinkPurpose::Magic, at).0.id);
        }
        assert_eq!(links.links.len(), MAX_LINKS_PER_USER);
        assert!(!links.links.iter().any(|link| link.mail == expired.id));
        let (newest, issue) = issued(&mut links, LinkPurpose::Magic, at);
        assert_eq!(issue.superseded, magic.last().copied());
        assert_eq!(issue.removed, vec![magic[1]], "the oldest ended link");
        assert_eq!(links.links.len(), MAX_LINKS_PER_USER);
        assert!(links
            .redeem(reset.id, LinkPurpose::ResetPassword, at)
            .is_ok());
        assert!(links.redeem(newest.id, LinkPurpose::Magic, at).is_ok());
    }
}
