//! A tenant on disk. Format 1: claimd 0.1.0.

use serde::{Deserialize, Serialize};

use super::{attrs_from_text, attrs_to_text, Stored};
use crate::store::codec::{self, CodecError};
use crate::store::TenantRecord;

/// Format 1. Never changed: a change is a new shape.
#[derive(Serialize, Deserialize)]
struct TenantV1 {
    name: String,
    plan: String,
    max_accounts: Option<u64>,
    /// The `attrs` object as JSON text.
    attrs: String,
    version: u64,
    members: u64,
    created_at: u64,
    updated_at: u64,
}

impl Stored for TenantRecord {
    const FORMAT: u8 = 1;

    fn to_disk(&self) -> Result<Vec<u8>, CodecError> {
        let shape = TenantV1 {
            name: self.name.clone(),
            plan: self.plan.clone(),
            max_accounts: self.max_accounts,
            attrs: attrs_to_text(&self.attrs)?,
            version: self.version,
            members: self.members,
            created_at: self.created_at,
            updated_at: self.updated_at,
        };
        codec::encode_as(Self::FORMAT, &shape)
    }

    fn from_disk(bytes: &[u8]) -> Result<Self, CodecError> {
        match codec::split_format(bytes)? {
            (1, body) => {
                let shape: TenantV1 = codec::decode_body(body)?;
                Ok(TenantRecord {
                    name: shape.name,
                    plan: shape.plan,
                    max_accounts: shape.max_accounts,
                    attrs: attrs_from_text(&shape.attrs)?,
                    version: shape.version,
                    members: shape.members,
                    created_at: shape.created_at,
                    updated_at: shape.updated_at,
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
    use serde_json::json;

    fn sample() -> TenantRecord {
        TenantRecord {
            name: "acme".into(),
            plan: "team".into(),
            max_accounts: Some(10),
            attrs: json!({"region": "eu"}).as_object().cloned().unwrap(),
            version: 3,
            members: 2,
            created_at: 1_794_000_000,
            updated_at: 1_795_000_000,
        }
    }

    #[test]
    fn format_1_keeps_its_golden_bytes() {
        golden::assert_matches("tenant.v1", &sample().to_disk().unwrap());
        assert_eq!(
            TenantRecord::from_disk(&golden::bytes("tenant.v1")).unwrap(),
            sample()
        );
    }

    #[test]
    fn unknown_formats_are_refused() {
        let mut bytes = sample().to_disk().unwrap();
        bytes[0] = 2;
        assert!(matches!(
            TenantRecord::from_disk(&bytes),
            Err(CodecError::UnknownFormat(2))
        ));
    }
}
