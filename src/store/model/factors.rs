//! A user's second factors (issue 22): a TOTP secret (pending until a code confirms it),
//! the digests of the recovery codes that stand in for it, and passkeys. One
//! [`UserFactors`] record per user, written in the transaction that bumps the user's `uv`
//! and logs a credential change whenever a factor is added or removed; it leaves with the
//! user. Both backends' writes call these rules and decide nothing of their own.
//!
//! What the rules hold:
//! - one TOTP per user: a new enrolment replaces a pending one, never a confirmed one
//!   (disable first, with a code or the password);
//! - a TOTP step is accepted once: a step at or before the last accepted one is refused
//!   here too, so two requests racing with one code cannot both pass;
//! - a recovery code is used once; confirming TOTP issues a fresh set of ten, disabling it
//!   drops them;
//! - at most [`MAX_PASSKEYS`] passkeys, each credential id once, names unique per user; a
//!   passkey's signature counter only moves forward (one that goes back is a cloned
//!   authenticator, refused), unless both are zero (authenticators that keep none).

use crate::factors::recovery::RecoveryDigest;
use crate::factors::totp::SECRET_BYTES;

/// Most passkeys one user may register.
pub const MAX_PASSKEYS: usize = 10;
/// Longest passkey name, in characters.
pub const MAX_PASSKEY_NAME_CHARS: usize = 64;

/// A user's TOTP factor.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpFactor {
    pub secret: [u8; SECRET_BYTES],
    /// When a code confirmed it; `None`: enrolment pending, not yet a factor.
    pub confirmed_at: Option<u64>,
    /// The step of the last accepted code.
    pub last_step: Option<u64>,
    pub created_at: u64,
}

impl std::fmt::Debug for TotpFactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpFactor")
            .field("secret", &"<redacted>")
            .field("confirmed_at", &self.confirmed_at)
            .field("last_step", &self.last_step)
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// A registered passkey: what verifying its assertions needs, and what the user sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyRecord {
    /// The credential id the authenticator chose (also the passkey's id in the API,
    /// base64url).
    pub credential_id: Vec<u8>,
    /// The credential's public key, COSE-encoded, as registration gave it.
    pub public_key: Vec<u8>,
    /// The signature counter of the last accepted assertion.
    pub sign_count: u32,
    pub name: String,
    pub created_at: u64,
    pub last_used_at: Option<u64>,
}

/// A user's factors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserFactors {
    pub totp: Option<TotpFactor>,
    pub recovery_codes: Vec<RecoveryDigest>,
    pub passkeys: Vec<PasskeyRecord>,
}

/// Why a factor write was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FactorRefusal {
    #[error("TOTP is already enrolled: disable it first")]
    TotpAlreadyEnrolled,
    #[error("no TOTP enrolment is pending")]
    NoPendingTotp,
    #[error("TOTP is not enrolled")]
    NoTotp,
    #[error("the code was used already")]
    StepReplayed,
    #[error("at most {MAX_PASSKEYS} passkeys")]
    TooManyPasskeys,
    #[error("this passkey is registered already")]
    PasskeyRegistered,
    #[error("a passkey of this name exists")]
    PasskeyNameTaken,
    #[error("no such passkey")]
    NoSuchPasskey,
    #[error("the passkey's signature counter went back: a cloned authenticator?")]
    CounterWentBack,
}

impl UserFactors {
    /// The confirmed TOTP, if any.
    pub fn confirmed_totp(&self) -> Option<&TotpFactor> {
        self.totp
            .as_ref()
            .filter(|totp| totp.confirmed_at.is_some())
    }

    /// Whether a login needs a second factor.
    pub fn has_second_factor(&self) -> bool {
        self.confirmed_totp().is_some() || !self.passkeys.is_empty()
    }

    /// The factors a login may complete with, as API.md names them (`mfa_required`'s
    /// `factors`).
    pub fn enrolled(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.confirmed_totp().is_some() {
            names.push("totp");
        }
        if !self.passkeys.is_empty() {
            names.push("passkey");
        }
        if self.confirmed_totp().is_some() && !self.recovery_codes.is_empty() {
            names.push("recovery_code");
        }
        names
    }

    /// Starts a TOTP enrolment with `secret`, replacing a pending one. Not a factor yet:
    /// no `uv` bump.
    ///
    /// # Errors
    /// `TotpAlreadyEnrolled` when one is confirmed.
    pub fn begin_totp(
        &mut self,
        secret: [u8; SECRET_BYTES],
        now: u64,
    ) -> Result<(), FactorRefusal> {
        if self.confirmed_totp().is_some() {
            return Err(FactorRefusal::TotpAlreadyEnrolled);
        }
        self.totp = Some(TotpFactor {
            secret,
            confirmed_at: None,
            last_step: None,
            created_at: now,
        });
        Ok(())
    }

    /// Confirms the pending TOTP with the step a code matched, and issues `recovery` (the
    /// digests of a fresh set). A factor added: the caller bumps `uv`.
    ///
    /// # Errors
    /// `NoPendingTotp`.
    pub fn confirm_totp(
        &mut self,
        step: u64,
        recovery: Vec<RecoveryDigest>,
        now: u64,
    ) -> Result<(), FactorRefusal> {
        let totp = self
            .totp
            .as_mut()
            .filter(|totp| totp.confirmed_at.is_none())
            .ok_or(FactorRefusal::NoPendingTotp)?;
        totp.confirmed_at = Some(now);
        totp.last_step = Some(step);
        self.recovery_codes = recovery;
        Ok(())
    }

    /// Records that a code of `step` was accepted (login, step-up, disabling).
    ///
    /// # Errors
    /// `NoTotp`; `StepReplayed` when `step` is not after the last accepted one (a race
    /// with another request presenting the same code).
    pub fn accept_totp_step(&mut self, step: u64) -> Result<(), FactorRefusal> {
        let totp = self
            .totp
            .as_mut()
            .filter(|totp| totp.confirmed_at.is_some())
            .ok_or(FactorRefusal::NoTotp)?;
        if totp.last_step.is_some_and(|last| step <= last) {
            return Err(FactorRefusal::StepReplayed);
        }
        totp.last_step = Some(step);
        Ok(())
    }

    /// Uses the recovery code of `digest`: `true` when it was one (now spent).
    pub fn use_recovery_code(&mut self, digest: &RecoveryDigest) -> bool {
        let before = self.recovery_codes.len();
        self.recovery_codes.retain(|kept| kept != digest);
        self.recovery_codes.len() < before
    }

    /// Drops TOTP and its recovery codes. A factor removed when it was confirmed: the caller
    /// bumps `uv`.
    ///
    /// # Errors
    /// `NoTotp` when there is none, pending or confirmed.
    pub fn disable_totp(&mut self) -> Result<(), FactorRefusal> {
        self.totp.take().ok_or(FactorRefusal::NoTotp)?;
        self.recovery_codes.clear();
        Ok(())
    }

    /// Adds a passkey. A factor added: the caller bumps `uv`.
    ///
    /// # Errors
    /// `TooManyPasskeys`, `PasskeyRegistered`, `PasskeyNameTaken`.
    pub fn add_passkey(&mut self, passkey: PasskeyRecord) -> Result<(), FactorRefusal> {
        if self.passkeys.len() >= MAX_PASSKEYS {
            return Err(FactorRefusal::TooManyPasskeys);
        }
        if self.passkey(&passkey.credential_id).is_some() {
            return Err(FactorRefusal::PasskeyRegistered);
        }
        if self.passkeys.iter().any(|kept| kept.name == passkey.name) {
            return Err(FactorRefusal::PasskeyNameTaken);
        }
        self.passkeys.push(passkey);
        Ok(())
    }

    /// The passkey of `credential_id`.
    pub fn passkey(&self, credential_id: &[u8]) -> Option<&PasskeyRecord> {
        self.passkeys
            .iter()
            .find(|kept| kept.credential_id == credential_id)
    }

    /// Removes a passkey. A factor removed: the caller bumps `uv`.
    ///
    /// # Errors
    /// `NoSuchPasskey`.
    pub fn remove_passkey(&mut self, credential_id: &[u8]) -> Result<PasskeyRecord, FactorRefusal> {
        let at = self
            .passkeys
            .iter()
            .position(|kept| kept.credential_id == credential_id)
            .ok_or(FactorRefusal::NoSuchPasskey)?;
        Ok(self.passkeys.remove(at))
    }

    /// Records an accepted assertion of a passkey: its new counter and when.
    ///
    /// # Errors
    /// `NoSuchPasskey`; `CounterWentBack` when `sign_count` is not past the stored one
    /// (both zero: an authenticator that keeps no counter, accepted).
    pub fn touch_passkey(
        &mut self,
        credential_id: &[u8],
        sign_count: u32,
        now: u64,
    ) -> Result<(), FactorRefusal> {
        let passkey = self
            .passkeys
            .iter_mut()
            .find(|kept| kept.credential_id == credential_id)
            .ok_or(FactorRefusal::NoSuchPasskey)?;
        let keeps_none = sign_count == 0 && passkey.sign_count == 0;
        if !keeps_none && sign_count <= passkey.sign_count {
            return Err(FactorRefusal::CounterWentBack);
        }
        passkey.sign_count = sign_count;
        passkey.last_used_at = Some(now);
        Ok(())
    }

    /// Everything removed (an admin's account recovery): whether there was a factor to
    /// remove (the caller bumps `uv` then).
    pub fn clear(&mut self) -> bool {
        let had = self.has_second_factor();
        *self = UserFactors::default();
        had
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn passkey(id: u8, name: &str) -> PasskeyRecord {
        PasskeyRecord {
            credential_id: vec![id; 16],
            public_key: vec![0xa5; 77],
            sign_count: 0,
            name: name.to_string(),
            created_at: NOW,
            last_used_at: None,
        }
    }

    fn with_totp() -> UserFactors {
        let mut factors = UserFactors::default();
        factors.begin_totp([7; SECRET_BYTES], NOW).unwrap();
        factors
            .confirm_totp(100, vec![[1; 32], [2; 32]], NOW)
            .unwrap();
        factors
    }

    #[test]
    fn a_pending_totp_is_no_factor_until_a_code_confirms_it() {
        let mut factors = UserFactors::default();
        factors.begin_totp([7; SECRET_BYTES], NOW).unwrap();
        assert!(!factors.has_second_factor());
        assert!(factors.enrolled().is_empty());
        // A second enrolment replaces the pending one.
        factors.begin_totp([8; SECRET_BYTES], NOW + 5).unwrap();
        assert_eq!(factors.totp.as_ref().unwrap().secret, [8; SECRET_BYTES]);

        factors.confirm_totp(100, vec![[1; 32]], NOW + 10).unwrap();

        assert!(factors.has_second_factor());
        assert_eq!(factors.enrolled(), ["totp", "recovery_code"]);
        assert_eq!(
            factors.begin_totp([9; SECRET_BYTES], NOW),
            Err(FactorRefusal::TotpAlreadyEnrolled)
        );
        assert_eq!(
            factors.confirm_totp(101, vec![], NOW),
            Err(FactorRefusal::NoPendingTotp)
        );
    }

    #[test]
    fn a_step_is_accepted_once_and_never_an_earlier_one() {
        let mut factors = with_totp();
        assert_eq!(
            factors.accept_totp_step(100),
            Err(FactorRefusal::StepReplayed)
        );
        assert_eq!(
            factors.accept_totp_step(99),
            Err(FactorRefusal::StepReplayed)
        );
        factors.accept_totp_step(101).unwrap();
        assert_eq!(
            factors.accept_totp_step(101),
            Err(FactorRefusal::StepReplayed)
        );
        assert_eq!(
            UserFactors::default().accept_totp_step(1),
            Err(FactorRefusal::NoTotp)
        );
    }

    #[test]
    fn a_recovery_code_works_once_and_leaves_with_totp() {
        let mut factors = with_totp();
        assert!(factors.use_recovery_code(&[1; 32]));
        assert!(!factors.use_recovery_code(&[1; 32]));
        assert!(!factors.use_recovery_code(&[9; 32]));
        assert_eq!(factors.recovery_codes, [[2; 32]]);

        factors.disable_totp().unwrap();

        assert!(factors.recovery_codes.is_empty());
        assert!(!factors.has_second_factor());
        assert_eq!(factors.disable_totp(), Err(FactorRefusal::NoTotp));
    }

    #[test]
    fn passkeys_are_counted_unique_and_named_once() {
        let mut factors = UserFactors::default();
        for n in 0..MAX_PASSKEYS {
            let n = u8::try_from(n).unwrap();
            factors
                .add_passkey(passkey(n, &format!("key {n}")))
                .unwrap();
        }
        assert_eq!(
            factors.add_passkey(passkey(200, "one more")),
            Err(FactorRefusal::TooManyPasskeys)
        );
        factors.remove_passkey(&[0; 16]).unwrap();
        assert_eq!(
            factors.add_passkey(passkey(1, "again")),
            Err(FactorRefusal::PasskeyRegistered)
        );
        assert_eq!(
            factors.add_passkey(passkey(201, "key 1")),
            Err(FactorRefusal::PasskeyNameTaken)
        );
        factors.add_passkey(passkey(201, "laptop")).unwrap();
        assert_eq!(factors.enrolled(), ["passkey"]);
        assert_eq!(
            factors.remove_passkey(&[0; 16]),
            Err(FactorRefusal::NoSuchPasskey)
        );
    }

    #[test]
    fn a_signature_counter_only_moves_forward_unless_none_is_kept() {
        let mut factors = UserFactors::default();
        factors.add_passkey(passkey(1, "phone")).unwrap();
        factors.touch_passkey(&[1; 16], 0, NOW).unwrap();
        assert_eq!(factors.passkey(&[1; 16]).unwrap().last_used_at, Some(NOW));
        factors.touch_passkey(&[1; 16], 5, NOW + 1).unwrap();
        assert_eq!(
            factors.touch_passkey(&[1; 16], 5, NOW + 2),
            Err(FactorRefusal::CounterWentBack)
        );
        assert_eq!(
            factors.touch_passkey(&[1; 16], 0, NOW + 2),
            Err(FactorRefusal::CounterWentBack)
        );
        factors.touch_passkey(&[1; 16], 6, NOW + 3).unwrap();
        assert_eq!(factors.passkey(&[1; 16]).unwrap().sign_count, 6);
    }

    #[test]
    fn clearing_says_whether_there_was_a_factor() {
        let mut factors = with_totp();
        factors.add_passkey(passkey(1, "phone")).unwrap();
        assert!(factors.clear());
        assert_eq!(factors, UserFactors::default());
        assert!(!factors.clear());
        let mut pending = UserFactors::default();
        pending.begin_totp([7; SECRET_BYTES], NOW).unwrap();
        assert!(!pending.clear(), "a pending enrolment is no factor");
        assert!(pending.totp.is_none());
    }

    #[test]
    fn the_secret_stays_out_of_debug() {
        let text = format!("{:?}", with_totp());
        assert!(text.contains("<redacted>"), "{text}");
        assert!(!text.contains("7, 7"), "{text}");
    }
}
