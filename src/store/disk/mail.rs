//! The mail queue and the mail links on disk (issue 21). Format 1 of each: a queued mail
//! ([`QueuedMail`], one value per mail id) and one user's links book ([`MailLinks`], one
//! value per user). Neither holds a token, a digest of one or a mail body: a token is
//! derived from the server's mail key and the queued mail's grant.

use serde::{Deserialize, Serialize};

use super::Stored;
use crate::domain::{MailId, UserId};
use crate::mail::{EmailAddress, LinkPurpose};
use crate::store::codec::{self, CodecError};
use crate::store::{Delivery, GiveUp, LinkState, MailFailure, MailLink, MailLinks, QueuedMail};

/// A link's purpose in format 1 (bincode stores the variant's index).
#[derive(Serialize, Deserialize, Clone, Copy)]
enum PurposeV1 {
    VerifyEmail,
    ResetPassword,
    Magic,
}

impl PurposeV1 {
    fn from_purpose(purpose: LinkPurpose) -> PurposeV1 {
        match purpose {
            LinkPurpose::VerifyEmail => PurposeV1::VerifyEmail,
            LinkPurpose::ResetPassword => PurposeV1::ResetPassword,
            LinkPurpose::Magic => PurposeV1::Magic,
        }
    }

    fn into_purpose(self) -> LinkPurpose {
        match self {
            PurposeV1::VerifyEmail => LinkPurpose::VerifyEmail,
            PurposeV1::ResetPassword => LinkPurpose::ResetPassword,
            PurposeV1::Magic => LinkPurpose::Magic,
        }
    }
}

/// A delivery failure's kind in format 1.
#[derive(Serialize, Deserialize, Clone, Copy)]
enum FailureV1 {
    Connect,
    Tls,
    Timeout,
    Transient,
    Permanent,
    Outbox,
}

impl FailureV1 {
    fn from_failure(failure: MailFailure) -> FailureV1 {
        match failure {
            MailFailure::Connect => FailureV1::Connect,
            MailFailure::Tls => FailureV1::Tls,
            MailFailure::Timeout => FailureV1::Timeout,
            MailFailure::Transient => FailureV1::Transient,
            MailFailure::Permanent => FailureV1::Permanent,
            MailFailure::Outbox => FailureV1::Outbox,
        }
    }

    fn into_failure(self) -> MailFailure {
        match self {
            FailureV1::Connect => MailFailure::Connect,
            FailureV1::Tls => MailFailure::Tls,
            FailureV1::Timeout => MailFailure::Timeout,
            FailureV1::Transient => MailFailure::Transient,
            FailureV1::Permanent => MailFailure::Permanent,
            FailureV1::Outbox => MailFailure::Outbox,
        }
    }
}

/// Why a mail was given up, in format 1.
#[derive(Serialize, Deserialize, Clone, Copy)]
enum GiveUpV1 {
    Attempts,
    Permanent,
    LinkExpired,
    Superseded,
}

/// A mail's delivery in format 1.
#[derive(Serialize, Deserialize)]
enum DeliveryV1 {
    Queued {
        attempts: u32,
        next_attempt_at: u64,
        last_failure: Option<FailureV1>,
    },
    Sent {
        at: u64,
        attempts: u32,
    },
    GaveUp {
        at: u64,
        attempts: u32,
        reason: GiveUpV1,
        last_failure: Option<FailureV1>,
    },
}

impl DeliveryV1 {
    fn from_delivery(delivery: Delivery) -> DeliveryV1 {
        match delivery {
            Delivery::Queued {
                attempts,
                next_attempt_at,
                last_failure,
            } => DeliveryV1::Queued {
                attempts,
                next_attempt_at,
                last_failure: last_failure.map(FailureV1::from_failure),
            },
            Delivery::Sent { at, attempts } => DeliveryV1::Sent { at, attempts },
            Delivery::GaveUp {
                at,
                attempts,
                reason,
                last_failure,
            } => DeliveryV1::GaveUp {
                at,
                attempts,
                reason: match reason {
                    GiveUp::Attempts => GiveUpV1::Attempts,
                    GiveUp::Permanent => GiveUpV1::Permanent,
                    GiveUp::LinkExpired => GiveUpV1::LinkExpired,
                    GiveUp::Superseded => GiveUpV1::Superseded,
                },
                last_failure: last_failure.map(FailureV1::from_failure),
            },
        }
    }

    fn into_delivery(self) -> Delivery {
        match self {
            DeliveryV1::Queued {
                attempts,
                next_attempt_at,
                last_failure,
            } => Delivery::Queued {
                attempts,
                next_attempt_at,
                last_failure: last_failure.map(FailureV1::into_failure),
            },
            DeliveryV1::Sent { at, attempts } => Delivery::Sent { at, attempts },
            DeliveryV1::GaveUp {
                at,
                attempts,
                reason,
                last_failure,
            } => Delivery::GaveUp {
                at,
                attempts,
                reason: match reason {
                    GiveUpV1::Attempts => GiveUp::Attempts,
                    GiveUpV1::Permanent => GiveUp::Permanent,
                    GiveUpV1::LinkExpired => GiveUp::LinkExpired,
                    GiveUpV1::Superseded => GiveUp::Superseded,
                },
                last_failure: last_failure.map(FailureV1::into_failure),
            },
        }
    }
}

/// Format 1 of a queued mail. Never changed: a change is a new shape.
#[derive(Serialize, Deserialize)]
struct MailV1 {
    id: [u8; 16],
    user: [u8; 16],
    purpose: PurposeV1,
    /// The address as given.
    to: String,
    issued_at: u64,
    expires_at: u64,
    delivery: DeliveryV1,
}

impl Stored for QueuedMail {
    const FORMAT: u8 = 1;

    fn to_disk(&self) -> Result<Vec<u8>, CodecError> {
        let shape = MailV1 {
            id: *self.id.as_bytes(),
            user: *self.user.as_bytes(),
            purpose: PurposeV1::from_purpose(self.purpose),
            to: self.to.as_str().to_string(),
            issued_at: self.issued_at,
            expires_at: self.expires_at,
            delivery: DeliveryV1::from_delivery(self.delivery),
        };
        codec::encode_as(Self::FORMAT, &shape)
    }

    fn from_disk(bytes: &[u8]) -> Result<Self, CodecError> {
        match codec::split_format(bytes)? {
            (1, body) => {
                let shape: MailV1 = codec::decode_body(body)?;
                Ok(QueuedMail {
                    id: MailId::from_bytes(shape.id),
                    user: UserId::from_bytes(shape.user),
                    purpose: shape.purpose.into_purpose(),
                    to: EmailAddress::parse(&shape.to)
                        .map_err(|why| CodecError::Decode(why.to_string()))?,
                    issued_at: shape.issued_at,
                    expires_at: shape.expires_at,
                    delivery: shape.delivery.into_delivery(),
                })
            }
            (other, _) => Err(CodecError::UnknownFormat(other)),
        }
    }
}

/// A link's state in format 1.
#[derive(Serialize, Deserialize)]
enum LinkStateV1 {
    Live,
    Used { at: u64 },
    Superseded { at: u64 },
}

/// One link in format 1.
#[derive(Serialize, Deserialize)]
struct LinkV1 {
    mail: [u8; 16],
    purpose: PurposeV1,
    issued_at: u64,
    expires_at: u64,
    state: LinkStateV1,
}

/// Format 1 of a user's links book. Never changed: a change is a new shape.
#[derive(Serialize, Deserialize)]
struct LinksV1 {
    links: Vec<LinkV1>,
}

impl Stored for MailLinks {
    const FORMAT: u8 = 1;

    fn to_disk(&self) -> Result<Vec<u8>, CodecError> {
        let shape = LinksV1 {
            links: self
                .links
                .iter()
                .map(|link| LinkV1 {
                    mail: *link.mail.as_bytes(),
                    purpose: PurposeV1::from_purpose(link.purpose),
                    issued_at: link.issued_at,
                    expires_at: link.expires_at,
                    state: match link.state {
                        LinkState::Live => LinkStateV1::Live,
                        LinkState::Used { at } => LinkStateV1::Used { at },
                        LinkState::Superseded { at } => LinkStateV1::Superseded { at },
                    },
                })
                .collect(),
        };
        codec::encode_as(Self::FORMAT, &shape)
    }

    fn from_disk(bytes: &[u8]) -> Result<Self, CodecError> {
        match codec::split_format(bytes)? {
            (1, body) => {
                let shape: LinksV1 = codec::decode_body(body)?;
                Ok(MailLinks {
                    links: shape
                        .links
                        .into_iter()
                        .map(|link| MailLink {
                            mail: MailId::from_bytes(link.mail),
                            purpose: link.purpose.into_purpose(),
                            issued_at: link.issued_at,
                            expires_at: link.expires_at,
                            state: match link.state {
                                LinkStateV1::Live => LinkState::Live,
                                LinkStateV1::Used { at } => LinkState::Used { at },
                                LinkStateV1::Superseded { at } => LinkState::Superseded { at },
                            },
                        })
                        .collect(),
                })
            }
            (other, _) => Err(CodecError::UnknownFormat(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::golden;
    use super::*;

    fn mail(delivery: Delivery) -> QueuedMail {
        QueuedMail {
            id: MailId::from_bytes([3; 16]),
            user: UserId::from_bytes([4; 16]),
            purpose: LinkPurpose::ResetPassword,
            to: EmailAddress::parse("Ada@Example.org").unwrap(),
            issued_at: 1_800_000_000,
            expires_at: 1_800_001_800,
            delivery,
        }
    }

    fn links() -> MailLinks {
        let link = |n: u8, purpose, state| MailLink {
            mail: MailId::from_bytes([n; 16]),
            purpose,
            issued_at: 1_800_000_000,
            expires_at: 1_800_001_800,
            state,
        };
        MailLinks {
            links: vec![
                link(
                    1,
                    LinkPurpose::VerifyEmail,
                    LinkState::Used { at: 1_800_000_100 },
                ),
                link(
                    2,
                    LinkPurpose::Magic,
                    LinkState::Superseded { at: 1_800_000_200 },
                ),
                link(3, LinkPurpose::Magic, LinkState::Live),
            ],
        }
    }

    #[test]
    fn format_1_keeps_its_golden_bytes() {
        let queued = mail(Delivery::Queued {
            attempts: 2,
            next_attempt_at: 1_800_000_020,
            last_failure: Some(MailFailure::Transient),
        });
        golden::assert_matches("mail.v1", &queued.to_disk().unwrap());
        assert!(QueuedMail::from_disk(&golden::bytes("mail.v1")).unwrap() == queued);
        golden::assert_matches("mail_links.v1", &links().to_disk().unwrap());
        assert_eq!(
            MailLinks::from_disk(&golden::bytes("mail_links.v1")).unwrap(),
            links()
        );
    }

    #[test]
    fn every_delivery_round_trips() {
        for delivery in [
            Delivery::Sent {
                at: 1_800_000_005,
                attempts: 1,
            },
            Delivery::GaveUp {
                at: 1_800_000_900,
                attempts: 12,
                reason: GiveUp::Attempts,
                last_failure: Some(MailFailure::Connect),
            },
            Delivery::GaveUp {
                at: 1_800_000_010,
                attempts: 0,
                reason: GiveUp::Superseded,
                last_failure: None,
            },
        ] {
            let queued = mail(delivery);
            assert!(QueuedMail::from_disk(&queued.to_disk().unwrap()).unwrap() == queued);
        }
    }

    #[test]
    fn unknown_formats_are_refused() {
        let mut bytes = links().to_disk().unwrap();
        bytes[0] = 7;
        assert!(matches!(
            MailLinks::from_disk(&bytes),
            Err(CodecError::UnknownFormat(7))
        ));
    }
}
