//! A tenant's invitations on disk: the book, one value per tenant. Format 1: claimd 0.1.0.

use serde::{Deserialize, Serialize};

use super::Stored;
use crate::domain::{InvitationId, UserId};
use crate::store::codec::{self, CodecError};
use crate::store::{InvitationBook, InvitationRecord, InvitationState};

/// Format 1 of the book. Never changed: a change is a new shape.
#[derive(Serialize, Deserialize)]
struct BookV1 {
    invitations: Vec<InvitationV1>,
}

/// One invitation in format 1.
#[derive(Serialize, Deserialize)]
struct InvitationV1 {
    id: [u8; 16],
    code_digest: [u8; 32],
    created_at: u64,
    expires_at: u64,
    state: StateV1,
    ended_at: u64,
    used_by: Option<[u8; 16]>,
}

/// An invitation's state in format 1 (bincode stores the variant's index).
#[derive(Serialize, Deserialize)]
enum StateV1 {
    Outstanding,
    Used,
    Revoked,
}

impl InvitationV1 {
    fn from_record(record: &InvitationRecord) -> InvitationV1 {
        InvitationV1 {
            id: *record.id.as_bytes(),
            code_digest: record.code_digest,
            created_at: record.created_at,
            expires_at: record.expires_at,
            state: match record.state {
                InvitationState::Outstanding => StateV1::Outstanding,
                InvitationState::Used => StateV1::Used,
                InvitationState::Revoked => StateV1::Revoked,
            },
            ended_at: record.ended_at,
            used_by: record.used_by.map(|user| *user.as_bytes()),
        }
    }

    fn into_record(self) -> InvitationRecord {
        InvitationRecord {
            id: InvitationId::from_bytes(self.id),
            code_digest: self.code_digest,
            created_at: self.created_at,
            expires_at: self.expires_at,
            state: match self.state {
                StateV1::Outstanding => InvitationState::Outstanding,
                StateV1::Used => InvitationState::Used,
                StateV1::Revoked => InvitationState::Revoked,
            },
            ended_at: self.ended_at,
            used_by: self.used_by.map(UserId::from_bytes),
        }
    }
}

impl Stored for InvitationBook {
    const FORMAT: u8 = 1;

    fn to_disk(&self) -> Result<Vec<u8>, CodecError> {
        let shape = BookV1 {
            invitations: self
                .invitations
                .iter()
                .map(InvitationV1::from_record)
                .collect(),
        };
        codec::encode_as(Self::FORMAT, &shape)
    }

    fn from_disk(bytes: &[u8]) -> Result<Self, CodecError> {
        match codec::split_format(bytes)? {
            (1, body) => {
                let shape: BookV1 = codec::decode_body(body)?;
                Ok(InvitationBook {
                    invitations: shape
                        .invitations
                        .into_iter()
                        .map(InvitationV1::into_record)
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

    fn sample() -> InvitationBook {
        let invitation = |id: u8, state, used_by: Option<UserId>| InvitationRecord {
            id: InvitationId::from_bytes([id; 16]),
            code_digest: [id.wrapping_mul(3); 32],
            created_at: 1_795_000_000,
            expires_at: 1_795_604_800,
            state,
            ended_at: if used_by.is_some() { 1_795_000_100 } else { 0 },
            used_by,
        };
        InvitationBook {
            invitations: vec![
                invitation(1, InvitationState::Outstanding, None),
                invitation(2, InvitationState::Used, Some(UserId::from_bytes([9; 16]))),
                invitation(3, InvitationState::Revoked, None),
            ],
        }
    }

    #[test]
    fn format_1_keeps_its_golden_bytes() {
        golden::assert_matches("invitations.v1", &sample().to_disk().unwrap());
        assert_eq!(
            InvitationBook::from_disk(&golden::bytes("invitations.v1")).unwrap(),
            sample()
        );
    }
}
