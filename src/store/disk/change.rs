//! A change-log record on disk (see `store::changes`). Format 1: claimd 0.2.0. The id is
//! the key, not part of the value.

use serde::{Deserialize, Serialize};

use super::Stored;
use crate::domain::{SessionId, TenantId, TokenId, UserId};
use crate::store::codec::{self, CodecError};
use crate::store::sled::changes::{Change, LoggedChange};

/// Format 1. Never changed: a change is a new shape. bincode writes the variant's index,
/// so variants are only ever added at the end.
#[derive(Serialize, Deserialize)]
struct ChangeV1 {
    at: u64,
    change: ChangeKindV1,
}

#[derive(Serialize, Deserialize)]
enum ChangeKindV1 {
    User {
        user: [u8; 16],
        claims_version: u64,
        not_before: u64,
        disabled: bool,
    },
    UserDeleted {
        user: [u8; 16],
    },
    Tenant {
        tenant: [u8; 16],
        version: u64,
    },
    TenantDeleted {
        tenant: [u8; 16],
    },
    SessionRevoked {
        sid: [u8; 16],
        exp: u64,
    },
    TokenRevoked {
        jti: [u8; 16],
        exp: u64,
    },
    KeysChanged,
}

impl Stored for LoggedChange {
    const FORMAT: u8 = 1;

    fn to_disk(&self) -> Result<Vec<u8>, CodecError> {
        let change = match &self.change {
            Change::User {
                user,
                claims_version,
                not_before,
                disabled,
            } => ChangeKindV1::User {
                user: *user.as_bytes(),
                claims_version: *claims_version,
                not_before: *not_before,
                disabled: *disabled,
            },
            Change::UserDeleted { user } => ChangeKindV1::UserDeleted {
                user: *user.as_bytes(),
            },
            Change::Tenant { tenant, version } => ChangeKindV1::Tenant {
                tenant: *tenant.as_bytes(),
                version: *version,
            },
            Change::TenantDeleted { tenant } => ChangeKindV1::TenantDeleted {
                tenant: *tenant.as_bytes(),
            },
            Change::SessionRevoked { sid, exp } => ChangeKindV1::SessionRevoked {
                sid: *sid.as_bytes(),
                exp: *exp,
            },
            Change::TokenRevoked { jti, exp } => ChangeKindV1::TokenRevoked {
                jti: *jti.as_bytes(),
                exp: *exp,
            },
            Change::KeysChanged => ChangeKindV1::KeysChanged,
        };
        codec::encode_as(
            Self::FORMAT,
            &ChangeV1 {
                at: self.at,
                change,
            },
        )
    }

    fn from_disk(bytes: &[u8]) -> Result<Self, CodecError> {
        match codec::split_format(bytes)? {
            (1, body) => {
                let shape: ChangeV1 = codec::decode_body(body)?;
                let change = match shape.change {
                    ChangeKindV1::User {
                        user,
                        claims_version,
                        not_before,
                        disabled,
                    } => Change::User {
                        user: UserId::from_bytes(user),
                        claims_version,
                        not_before,
                        disabled,
                    },
                    ChangeKindV1::UserDeleted { user } => Change::UserDeleted {
                        user: UserId::from_bytes(user),
                    },
                    ChangeKindV1::Tenant { tenant, version } => Change::Tenant {
                        tenant: TenantId::from_bytes(tenant),
                        version,
                    },
                    ChangeKindV1::TenantDeleted { tenant } => Change::TenantDeleted {
                        tenant: TenantId::from_bytes(tenant),
                    },
                    ChangeKindV1::SessionRevoked { sid, exp } => Change::SessionRevoked {
                        sid: SessionId::from_bytes(sid),
                        exp,
                    },
                    ChangeKindV1::TokenRevoked { jti, exp } => Change::TokenRevoked {
                        jti: TokenId::from_bytes(jti),
                        exp,
                    },
                    ChangeKindV1::KeysChanged => Change::KeysChanged,
                };
                Ok(LoggedChange {
                    at: shape.at,
                    change,
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

    fn samples() -> Vec<LoggedChange> {
        let at = 1_796_000_000;
        [
            Change::User {
                user: UserId::from_bytes([1; 16]),
                claims_version: 4,
                not_before: 1_795_000_000,
                disabled: true,
            },
            Change::UserDeleted {
                user: UserId::from_bytes([2; 16]),
            },
            Change::Tenant {
                tenant: TenantId::from_bytes([3; 16]),
                version: 7,
            },
            Change::TenantDeleted {
                tenant: TenantId::from_bytes([4; 16]),
            },
            Change::SessionRevoked {
                sid: SessionId::from_bytes([5; 16]),
                exp: 1_796_000_900,
            },
            Change::TokenRevoked {
                jti: TokenId::from_bytes([6; 16]),
                exp: 1_796_000_600,
            },
            Change::KeysChanged,
        ]
        .into_iter()
        .map(|change| LoggedChange { at, change })
        .collect()
    }

    #[test]
    fn format_1_keeps_its_golden_bytes() {
        let encoded: Vec<u8> = samples()
            .iter()
            .flat_map(|sample| sample.to_disk().unwrap())
            .collect();
        golden::assert_matches("change.v1", &encoded);
        for sample in samples() {
            let bytes = sample.to_disk().unwrap();
            assert_eq!(LoggedChange::from_disk(&bytes).unwrap(), sample);
        }
    }
}
