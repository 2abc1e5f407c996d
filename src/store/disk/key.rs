//! A signing key on disk. Format 1: claimd 0.1.0.

use serde::{Deserialize, Serialize};

use super::Stored;
use crate::store::codec::{self, CodecError};
use crate::store::KeyRecord;

/// Format 1. Never changed: a change is a new shape.
#[derive(Serialize, Deserialize)]
struct KeyV1 {
    alg: String,
    /// PKCS#8 PEM, or the base64url HMAC secret for HS256.
    private_key: String,
    created_at: u64,
    signs_from: u64,
    retired_at: Option<u64>,
}

impl Stored for KeyRecord {
    const FORMAT: u8 = 1;

    fn to_disk(&self) -> Result<Vec<u8>, CodecError> {
        let shape = KeyV1 {
            alg: self.alg.clone(),
            private_key: self.private_key.clone(),
            created_at: self.created_at,
            signs_from: self.signs_from,
            retired_at: self.retired_at,
        };
        codec::encode_as(Self::FORMAT, &shape)
    }

    fn from_disk(bytes: &[u8]) -> Result<Self, CodecError> {
        match codec::split_format(bytes)? {
            (1, body) => {
                let shape: KeyV1 = codec::decode_body(body)?;
                Ok(KeyRecord {
                    alg: shape.alg,
                    private_key: shape.private_key,
                    created_at: shape.created_at,
                    signs_from: shape.signs_from,
                    retired_at: shape.retired_at,
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

    fn sample() -> KeyRecord {
        KeyRecord {
            alg: "EdDSA".into(),
            private_key:
                "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n"
                    .into(),
            created_at: 1_795_000_000,
            signs_from: 1_795_000_300,
            retired_at: None,
        }
    }

    #[test]
    fn format_1_keeps_its_golden_bytes() {
        golden::assert_matches("key.v1", &sample().to_disk().unwrap());
        assert!(KeyRecord::from_disk(&golden::bytes("key.v1")).unwrap() == sample());
    }
}
