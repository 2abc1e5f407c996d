//! A change-log record on disk (see `store::changes`). Format 1: claimd 0.2.0. The id is
//! the key, not part of the value.

use serde::{Deserialize, Serialize};

use super::Stored;
use crate::domain::{SessionId, TenantId, TokenId, UserId};
use crate::store::codec::{self, CodecError};
use crate::store::{Change, Credential, LoggedChange};

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
    Account {
        user: [u8; 16],
        username: String,
        tenant: Option<[u8; 16]>,
        claims_version: u64,
        not_before: u64,
        disabled: bool,
    },
    CredentialChanged {
        user: [u8; 16],
        credential: CredentialV1,
    },
}

/// A credential's kind in format 1; kinds are only ever added at the end.
#[derive(Serialize, Deserialize)]
enum CredentialV1 {
    Password,
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
            Change::Account {
                user,
                username,
                tenant,
                claims_version,
                not_before,
                disabled,
            } => ChangeKindV1::Account {
                user: *user.as_bytes(),
                username: username.clone(),
                tenant: tenant.map(|tenant| *tenant.as_bytes()),
                claims_version: *claims_version,
                not_before: *not_before,
                disabled: *disabled,
            },
            Change::CredentialChanged { user, credential } => ChangeKindV1::CredentialChanged {
                user: *user.as_bytes(),
                credential: match credential {
                    Credential::Password => CredentialV1::Password,
                },
            },
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
                    ChangeKindV1::Account {
                        user,
                        username,
                        tenant,
                        claims_version,
                        not_before,
                        disabled,
                    } => Change::Account {
                        user: UserId::from_bytes(user),
                        username,
                        tenant: tenant.map(TenantId::from_bytes),
                        claims_version,
                        not_before,
                        disabled,
                    },
                    ChangeKindV1::CredentialChanged { user, credential } => {
                        Change::CredentialChanged {
                            user: UserId::from_bytes(user),
                            credential: match credential {
                                CredentialV1::Password => Credential::Password,
                            },
                        }
                    }
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

    /// Variants added after the first golden file, each with its own.
    fn later_samples() -> Vec<LoggedChange> {
        vec![LoggedChange {
            at: 1_796_000_000,
            change: Change::Account {
                user: UserId::from_bytes([7; 16]),
                username: "alice".into(),
                tenant: Some(TenantId::from_bytes([8; 16])),
                claims_version: 1,
                not_before: 0,
                disabled: false,
            },
        }]
    }

    #[test]
    fn the_credential_change_keeps_its_golden_bytes() {
        let sample = LoggedChange {
            at: 1_796_000_000,
            change: Change::CredentialChanged {
                user: UserId::from_bytes([9; 16]),
                credential: Credential::Password,
            },
        };
        let bytes = sample.to_disk().unwrap();
        golden::assert_matches("change.v1.credential", &bytes);
        assert_eq!(LoggedChange::from_disk(&bytes).unwrap(), sample);
    }

    #[test]
    fn variants_added_later_keep_their_golden_bytes() {
        let encoded: Vec<u8> = later_samples()
            .iter()
            .flat_map(|sample| sample.to_disk().unwrap())
            .collect();
        golden::assert_matches("change.v1.account", &encoded);
        for sample in later_samples() {
            let bytes = sample.to_disk().unwrap();
            assert_eq!(LoggedChange::from_disk(&bytes).unwrap(), sample);
        }
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
