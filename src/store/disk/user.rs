//! A user on disk. Format 1: claimd 0.1.0. Format 2 (issue 21): format 1 and the
//! address, as given, with whether it was verified; a format-1 user reads as one without.

use serde::{Deserialize, Serialize};

use super::{attrs_from_text, attrs_to_text, Stored};
use crate::domain::TenantId;
use crate::mail::EmailAddress;
use crate::store::codec::{self, CodecError};
use crate::store::UserRecord;

/// Format 1. Never changed: a change is a new shape.
#[derive(Serialize, Deserialize)]
struct UserV1 {
    username: String,
    password_hash: String,
    tenant: Option<[u8; 16]>,
    roles: Vec<String>,
    plan: String,
    /// The `attrs` object as JSON text.
    attrs: String,
    claims_version: u64,
    not_before: u64,
    disabled: bool,
    created_at: u64,
    updated_at: u64,
}

/// Format 2. Never changed: a change is a new shape.
#[derive(Serialize, Deserialize)]
struct UserV2 {
    username: String,
    password_hash: String,
    tenant: Option<[u8; 16]>,
    roles: Vec<String>,
    plan: String,
    /// The `attrs` object as JSON text.
    attrs: String,
    claims_version: u64,
    not_before: u64,
    disabled: bool,
    created_at: u64,
    updated_at: u64,
    /// The address as given.
    email: Option<String>,
    email_verified: bool,
}

fn email_from_disk(given: Option<String>) -> Result<Option<EmailAddress>, CodecError> {
    given
        .map(|given| EmailAddress::parse(&given).map_err(|why| CodecError::Decode(why.to_string())))
        .transpose()
}

impl Stored for UserRecord {
    const FORMAT: u8 = 2;

    fn to_disk(&self) -> Result<Vec<u8>, CodecError> {
        let shape = UserV2 {
            username: self.username.clone(),
            password_hash: self.password_hash.clone(),
            tenant: self.tenant.map(|tenant| *tenant.as_bytes()),
            roles: self.roles.clone(),
            plan: self.plan.clone(),
            attrs: attrs_to_text(&self.attrs)?,
            claims_version: self.claims_version,
            not_before: self.not_before,
            disabled: self.disabled,
            created_at: self.created_at,
            updated_at: self.updated_at,
            email: self.email.as_ref().map(|email| email.as_str().to_string()),
            email_verified: self.email_verified,
        };
        codec::encode_as(Self::FORMAT, &shape)
    }

    fn from_disk(bytes: &[u8]) -> Result<Self, CodecError> {
        let shape = match codec::split_format(bytes)? {
            (1, body) => UserV2::from(codec::decode_body::<UserV1>(body)?),
            (2, body) => codec::decode_body::<UserV2>(body)?,
            (other, _) => return Err(CodecError::UnknownFormat(other)),
        };
        Ok(UserRecord {
            username: shape.username,
            password_hash: shape.password_hash,
            tenant: shape.tenant.map(TenantId::from_bytes),
            roles: shape.roles,
            plan: shape.plan,
            attrs: attrs_from_text(&shape.attrs)?,
            claims_version: shape.claims_version,
            not_before: shape.not_before,
            disabled: shape.disabled,
            created_at: shape.created_at,
            updated_at: shape.updated_at,
            email: email_from_disk(shape.email)?,
            email_verified: shape.email_verified,
        })
    }
}

/// A format-1 user read as format 2: one without an address.
impl From<UserV1> for UserV2 {
    fn from(v1: UserV1) -> UserV2 {
        UserV2 {
            username: v1.username,
            password_hash: v1.password_hash,
            tenant: v1.tenant,
            roles: v1.roles,
            plan: v1.plan,
            attrs: v1.attrs,
            claims_version: v1.claims_version,
            not_before: v1.not_before,
            disabled: v1.disabled,
            created_at: v1.created_at,
            updated_at: v1.updated_at,
            email: None,
            email_verified: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::golden;
    use super::*;
    use serde_json::json;

    fn sample() -> UserRecord {
        UserRecord {
            username: "alice".into(),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            tenant: Some(TenantId::from_bytes([7; 16])),
            roles: vec!["editor".into(), "viewer".into()],
            plan: "pro".into(),
            attrs: json!({"team": "blue", "seats": 3})
                .as_object()
                .cloned()
                .unwrap(),
            claims_version: 4,
            not_before: 1_795_000_000,
            disabled: false,
            created_at: 1_794_000_000,
            updated_at: 1_795_000_001,
            email: Some(EmailAddress::parse("Alice@Example.org").unwrap()),
            email_verified: true,
        }
    }

    #[test]
    fn format_2_keeps_its_golden_bytes() {
        golden::assert_matches("user.v2", &sample().to_disk().unwrap());
        assert!(UserRecord::from_disk(&golden::bytes("user.v2")).unwrap() == sample());
    }

    #[test]
    fn format_1_reads_as_a_user_without_an_address() {
        let read = UserRecord::from_disk(&golden::bytes("user.v1")).unwrap();
        let expected = UserRecord {
            email: None,
            email_verified: false,
            ..sample()
        };
        assert!(read == expected);
    }

    #[test]
    fn unknown_formats_and_bad_attrs_are_refused() {
        let mut bytes = sample().to_disk().unwrap();
        bytes[0] = 9;
        assert!(matches!(
            UserRecord::from_disk(&bytes),
            Err(CodecError::UnknownFormat(9))
        ));
        let mut bad_email = UserV2 {
            username: "bob".into(),
            password_hash: String::new(),
            tenant: None,
            roles: vec![],
            plan: "free".into(),
            attrs: "{}".into(),
            claims_version: 1,
            not_before: 0,
            disabled: false,
            created_at: 0,
            updated_at: 0,
            email: Some("not an address".into()),
            email_verified: false,
        };
        assert!(UserRecord::from_disk(&codec::encode_as(2, &bad_email).unwrap()).is_err());
        bad_email.email = None;
        assert!(UserRecord::from_disk(&codec::encode_as(2, &bad_email).unwrap()).is_ok());
        let mut shape = UserV1 {
            username: "bob".into(),
            password_hash: String::new(),
            tenant: None,
            roles: vec![],
            plan: "free".into(),
            attrs: "[1]".into(),
            claims_version: 1,
            not_before: 0,
            disabled: false,
            created_at: 0,
            updated_at: 0,
        };
        let not_an_object = codec::encode_as(1, &shape).unwrap();
        assert!(UserRecord::from_disk(&not_an_object).is_err());
        shape.attrs = "{}".into();
        let fine = codec::encode_as(1, &shape).unwrap();
        assert!(UserRecord::from_disk(&fine).unwrap().attrs.is_empty());
    }
}
