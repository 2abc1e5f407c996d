//! Steps 3 and 4 of the verification, on claims that passed [`crate::TokenRules`]: the
//! deny list, then the user, then the claim versions. [`judge`] decides from what the
//! verifier knows ([`Standing`]); reading it (claimd's store, a service's copy of the
//! change feed) is the verifier's business.

use crate::claims::AccessClaims;
use crate::refusal::Refusal;

/// How much the verifier knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Knowledge {
    /// Every user and tenant as they are now (claimd itself): claims ahead of what is
    /// known were not minted by claimd.
    Complete,
    /// What a change feed said so far (a service): claims ahead of it were minted after a
    /// change not yet heard of, and stand.
    Following,
}

/// What the verifier knows of a token's user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserStanding {
    /// Nothing that concerns a live token (a follower hears only of changes).
    Unheard,
    /// Deleted.
    Gone,
    Known(UserFacts),
}

/// A user's standing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserFacts {
    /// The current claims version (`uv`).
    pub claims_version: u64,
    /// Tokens issued before this (Unix seconds) are revoked: "sign out everywhere".
    pub not_before: u64,
    pub disabled: bool,
}

/// What the verifier knows of the tenant a token names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantStanding {
    /// No tenant named, or nothing heard of it.
    Unheard,
    /// The token names another tenant than the user's now.
    NotTheUsers,
    /// Deleted: its members' tokens are stale.
    Gone,
    /// Its current version (`tv`).
    Known(u64),
}

/// What the verifier knows when it judges a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    /// The token's `jti` or `sid` is on the deny list (up to an `exp` at least the token's).
    pub denied: bool,
    pub user: UserStanding,
    pub tenant: TenantStanding,
}

/// Whether accepted claims are the user's current ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Currency {
    Current,
    /// Behind the user's or the tenant's version: a refresh gives current claims.
    Stale,
}

/// The verdict on `claims` from `standing`, in DESIGN.md's order: the deny list, the user
/// (gone, disabled, issued before `not_before`), the user's version, the tenant.
///
/// # Errors
/// `Revoked`; with [`Knowledge::Complete`], `Invalid` for versions claimd never minted
/// (ahead of the user's or tenant's, or a current token naming another tenant).
pub fn judge(
    claims: &AccessClaims,
    standing: &Standing,
    knowledge: Knowledge,
) -> Result<Currency, Refusal> {
    if standing.denied {
        return Err(Refusal::Revoked);
    }
    let complete = knowledge == Knowledge::Complete;
    let mut stale = false;
    match standing.user {
        UserStanding::Gone => return Err(Refusal::Revoked),
        UserStanding::Known(user) => {
            if user.disabled || claims.iat < user.not_before {
                return Err(Refusal::Revoked);
            }
            if complete && claims.uv > user.claims_version {
                return Err(Refusal::Invalid("claims version from the future"));
            }
            stale = claims.uv < user.claims_version;
        }
        UserStanding::Unheard => {}
    }
    match standing.tenant {
        // A move between tenants bumps `uv`, so only a stale token may name another
        // tenant than the user's; a current one that does was not minted by claimd.
        TenantStanding::NotTheUsers if !stale => {
            return Err(Refusal::Invalid("tenant is not the user's"))
        }
        TenantStanding::Known(version) if complete && claims.tv > version => {
            return Err(Refusal::Invalid("tenant version from the future"))
        }
        TenantStanding::Known(version) => stale |= claims.tv < version,
        TenantStanding::Gone => stale = true,
        TenantStanding::NotTheUsers | TenantStanding::Unheard => {}
    }
    Ok(if stale {
        Currency::Stale
    } else {
        Currency::Current
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(uv: u64, tv: u64) -> AccessClaims {
        AccessClaims {
            iat: 1_000,
            uv,
            tv,
            ..AccessClaims::default()
        }
    }

    fn user(claims_version: u64) -> UserStanding {
        UserStanding::Known(UserFacts {
            claims_version,
            not_before: 0,
            disabled: false,
        })
    }

    fn standing(user: UserStanding, tenant: TenantStanding) -> Standing {
        Standing {
            denied: false,
            user,
            tenant,
        }
    }

    fn both(claims: &AccessClaims, standing: &Standing) -> [Result<Currency, Refusal>; 2] {
        [Knowledge::Complete, Knowledge::Following]
            .map(|knowledge| judge(claims, standing, knowledge))
    }

    #[test]
    fn the_deny_list_comes_first() {
        let mut denied = standing(user(1), TenantStanding::Known(9));
        denied.denied = true;
        assert_eq!(both(&claims(1, 0), &denied), [Err(Refusal::Revoked); 2]);
    }

    #[test]
    fn a_gone_disabled_or_signed_out_user_revokes() {
        let gone = standing(UserStanding::Gone, TenantStanding::Unheard);
        assert_eq!(both(&claims(1, 0), &gone), [Err(Refusal::Revoked); 2]);
        let disabled = UserStanding::Known(UserFacts {
            claims_version: 1,
            not_before: 0,
            disabled: true,
        });
        let disabled = standing(disabled, TenantStanding::Unheard);
        assert_eq!(both(&claims(1, 0), &disabled), [Err(Refusal::Revoked); 2]);
        let signed_out = |not_before| {
            standing(
                UserStanding::Known(UserFacts {
                    claims_version: 1,
                    not_before,
                    disabled: false,
                }),
                TenantStanding::Unheard,
            )
        };
        assert_eq!(
            both(&claims(1, 0), &signed_out(1_001)),
            [Err(Refusal::Revoked); 2]
        );
        assert_eq!(
            both(&claims(1, 0), &signed_out(1_000)),
            [Ok(Currency::Current); 2]
        );
    }

    #[test]
    fn versions_behind_are_stale_and_ahead_are_forged_only_to_who_knows_all() {
        let held = standing(user(2), TenantStanding::Known(5));
        assert_eq!(both(&claims(2, 5), &held), [Ok(Currency::Current); 2]);
        assert_eq!(both(&claims(1, 5), &held), [Ok(Currency::Stale); 2]);
        assert_eq!(both(&claims(2, 4), &held), [Ok(Currency::Stale); 2]);
        assert_eq!(
            both(&claims(3, 5), &held),
            [
                Err(Refusal::Invalid("claims version from the future")),
                Ok(Currency::Current)
            ]
        );
        assert_eq!(
            both(&claims(2, 6), &held),
            [
                Err(Refusal::Invalid("tenant version from the future")),
                Ok(Currency::Current)
            ]
        );
    }

    #[test]
    fn a_tenant_gone_makes_its_members_stale() {
        let gone = standing(user(1), TenantStanding::Gone);
        assert_eq!(both(&claims(1, 3), &gone), [Ok(Currency::Stale); 2]);
        let unheard = standing(UserStanding::Unheard, TenantStanding::Gone);
        assert_eq!(both(&claims(1, 3), &unheard), [Ok(Currency::Stale); 2]);
    }

    #[test]
    fn only_a_stale_token_may_name_another_tenant() {
        let moved = standing(user(2), TenantStanding::NotTheUsers);
        assert_eq!(both(&claims(1, 0), &moved), [Ok(Currency::Stale); 2]);
        assert_eq!(
            both(&claims(2, 0), &moved),
            [Err(Refusal::Invalid("tenant is not the user's")); 2]
        );
    }

    #[test]
    fn nothing_heard_is_current() {
        let unheard = standing(UserStanding::Unheard, TenantStanding::Unheard);
        assert_eq!(both(&claims(7, 7), &unheard), [Ok(Currency::Current); 2]);
    }
}
