//! A session (refresh-token family) on disk. Format 1: claimd 0.1.0.

use serde::{Deserialize, Serialize};

use super::Stored;
use crate::domain::UserId;
use crate::store::codec::{self, CodecError};
use crate::store::SessionRecord;

/// Format 1. Never changed: a change is a new shape.
#[derive(Serialize, Deserialize)]
struct SessionV1 {
    user: [u8; 16],
    session_key: [u8; 32],
    generation: u64,
    created_at: u64,
    expires_at: u64,
    last_used: u64,
    rotated_at_ms: u64,
    revoked: bool,
    current_access_token: String,
    current_access_expires: u64,
}

impl Stored for SessionRecord {
    const FORMAT: u8 = 1;

    fn to_disk(&self) -> Result<Vec<u8>, CodecError> {
        let shape = SessionV1 {
            user: *self.user.as_bytes(),
            session_key: self.session_key,
            generation: self.generation,
            created_at: self.created_at,
            expires_at: self.expires_at,
            last_used: self.last_used,
            rotated_at_ms: self.rotated_at_ms,
            revoked: self.revoked,
            current_access_token: self.current_access_token.clone(),
            current_access_expires: self.current_access_expires,
        };
        codec::encode_as(Self::FORMAT, &shape)
    }

    fn from_disk(bytes: &[u8]) -> Result<Self, CodecError> {
        match codec::split_format(bytes)? {
            (1, body) => {
                let shape: SessionV1 = codec::decode_body(body)?;
                Ok(SessionRecord {
                    user: UserId::from_bytes(shape.user),
                    session_key: shape.session_key,
                    generation: shape.generation,
                    created_at: shape.created_at,
                    expires_at: shape.expires_at,
                    last_used: shape.last_used,
                    rotated_at_ms: shape.rotated_at_ms,
                    revoked: shape.revoked,
                    current_access_token: shape.current_access_token,
                    current_access_expires: shape.current_access_expires,
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

    fn sample() -> SessionRecord {
        SessionRecord {
            user: UserId::from_bytes([3; 16]),
            session_key: [0xab; 32],
            generation: 7,
            created_at: 1_795_000_000,
            expires_at: 1_797_592_000,
            last_used: 1_795_000_600,
            rotated_at_ms: 1_795_000_600_250,
            revoked: false,
            current_access_token: "eyJhbGciOiJFZERTQSJ9.e30.c2ln".into(),
            current_access_expires: 1_795_001_500,
        }
    }

    #[test]
    fn format_1_keeps_its_golden_bytes() {
        golden::assert_matches("session.v1", &sample().to_disk().unwrap());
        assert!(SessionRecord::from_disk(&golden::bytes("session.v1")).unwrap() == sample());
    }

    #[test]
    fn unknown_formats_are_refused() {
        let mut bytes = sample().to_disk().unwrap();
        bytes[0] = 0;
        assert!(matches!(
            SessionRecord::from_disk(&bytes),
            Err(CodecError::UnknownFormat(0))
        ));
    }
}
