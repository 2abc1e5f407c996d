//! A service credential on disk. Format 1: claimd 0.1.0.

use serde::{Deserialize, Serialize};

use super::Stored;
use crate::store::codec::{self, CodecError};
use crate::store::ServiceRecord;

/// Format 1. Never changed: a change is a new shape.
#[derive(Serialize, Deserialize)]
struct ServiceV1 {
    name: String,
    secret_digest: [u8; 32],
    created_at: u64,
}

impl Stored for ServiceRecord {
    const FORMAT: u8 = 1;

    fn to_disk(&self) -> Result<Vec<u8>, CodecError> {
        let shape = ServiceV1 {
            name: self.name.clone(),
            secret_digest: self.secret_digest,
            created_at: self.created_at,
        };
        codec::encode_as(Self::FORMAT, &shape)
    }

    fn from_disk(bytes: &[u8]) -> Result<Self, CodecError> {
        match codec::split_format(bytes)? {
            (1, body) => {
                let shape: ServiceV1 = codec::decode_body(body)?;
                Ok(ServiceRecord {
                    name: shape.name,
                    secret_digest: shape.secret_digest,
                    created_at: shape.created_at,
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

    fn sample() -> ServiceRecord {
        ServiceRecord {
            name: "billing".into(),
            secret_digest: [0x5a; 32],
            created_at: 1_795_000_000,
        }
    }

    #[test]
    fn format_1_keeps_its_golden_bytes() {
        golden::assert_matches("service.v1", &sample().to_disk().unwrap());
        assert!(ServiceRecord::from_disk(&golden::bytes("service.v1")).unwrap() == sample());
    }
}
