//! Time-based one-time passwords: RFC 6238 over RFC 4226's HOTP, as every authenticator
//! app computes them (HMAC-SHA-1, 30-second steps, 6 digits), written out here rather than
//! taken from a crate: it is a few lines over the `hmac` already linked, and what a crate
//! would not give is the part that matters, which is here too.
//!
//! - A code is accepted for the current step and one step either side (a phone's clock a
//!   little off, a code typed as it turned over), and compared in constant time.
//! - A code is accepted once: [`TotpSecret::verify`] takes the last step the user's codes
//!   were accepted for and refuses that step and every earlier one, so a code seen over a
//!   shoulder or replayed within its window is refused. The caller stores the step it
//!   returns.
//! - The secret is 20 random bytes (RFC 4226's recommended length), handed to the user once
//!   as base32 in an `otpauth://` URI (the de-facto format authenticator apps read).

use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use sha1::Sha1;
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

/// Seconds per step (RFC 6238's default, and what every app assumes).
pub const STEP_SECS: u64 = 30;
/// Digits in a code.
pub const DIGITS: u32 = 6;
/// Steps accepted either side of the current one.
pub const SKEW_STEPS: u64 = 1;
/// Bytes of secret.
pub const SECRET_BYTES: usize = 20;

/// A user's TOTP secret.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(Zeroizing<[u8; SECRET_BYTES]>);

/// Why a code was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TotpRefusal {
    /// Not six digits.
    #[error("a code is six digits")]
    Malformed,
    /// No step in the window has this code.
    #[error("the code does not match")]
    Wrong,
    /// The code's step was used already (or an earlier one was, after it).
    #[error("the code was used already")]
    Replayed,
}

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(..)")
    }
}

impl TotpSecret {
    /// A new random secret.
    pub fn generate() -> TotpSecret {
        let mut bytes = Zeroizing::new([0; SECRET_BYTES]);
        rand::rngs::OsRng.fill_bytes(&mut bytes[..]);
        TotpSecret(bytes)
    }

    /// A secret from its bytes (as stored).
    pub fn from_bytes(bytes: [u8; SECRET_BYTES]) -> TotpSecret {
        TotpSecret(Zeroizing::new(bytes))
    }

    pub fn as_bytes(&self) -> &[u8; SECRET_BYTES] {
        &self.0
    }

    /// The secret as authenticator apps take it typed in: RFC 4648 base32, no padding.
    pub fn base32(&self) -> Zeroizing<String> {
        Zeroizing::new(base32(&self.0[..]))
    }

    /// The `otpauth://totp/` URI an authenticator app reads from a QR code: `issuer` and
    /// `account` name the entry in the app.
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> Zeroizing<String> {
        use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
        let issuer = utf8_percent_encode(issuer, NON_ALPHANUMERIC).to_string();
        let account = utf8_percent_encode(account, NON_ALPHANUMERIC).to_string();
        Zeroizing::new(format!(
            "otpauth://totp/{issuer}:{account}?secret={}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
            base32(&self.0[..])
        ))
    }

    /// The code for `step` with `digits` digits (RFC 4226 §5.3: dynamic truncation).
    fn code(&self, step: u64, digits: u32) -> u32 {
        // HMAC pads a key shorter than the hash's block with zeros (RFC 2104 §2): the
        // 20-byte secret in a zeroed 64-byte block is that key, and needs no fallible call.
        let mut block = Zeroizing::new([0u8; 64]);
        block[..SECRET_BYTES].copy_from_slice(&self.0[..]);
        let mut mac = <Hmac<Sha1> as KeyInit>::new(&(*block).into());
        mac.update(&step.to_be_bytes());
        let digest = mac.finalize().into_bytes();
        let offset = usize::from(digest[19] & 0x0f);
        let binary = u32::from_be_bytes([
            digest[offset] & 0x7f,
            digest[offset + 1],
            digest[offset + 2],
            digest[offset + 3],
        ]);
        binary % 10u32.pow(digits)
    }

    /// The six-digit code for Unix time `now`, zero-padded.
    pub fn code_at(&self, now: u64) -> String {
        format!("{:06}", self.code(now / STEP_SECS, DIGITS))
    }

    /// Checks `code` at Unix time `now` against the steps within [`SKEW_STEPS`] of now that
    /// come after `last_used` (the step the user's last accepted code had); the step it
    /// matched, for the caller to store as the new `last_used`.
    ///
    /// # Errors
    /// [`TotpRefusal`]: not six digits, no match, or a match at a step already used.
    pub fn verify(&self, code: &str, now: u64, last_used: Option<u64>) -> Result<u64, TotpRefusal> {
        let code = code.trim();
        if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(TotpRefusal::Malformed);
        }
        let current = now / STEP_SECS;
        let mut matched = None;
        // Every step of the window is computed and compared, whichever matches.
        for step in current.saturating_sub(SKEW_STEPS)..=current + SKEW_STEPS {
            let expected = format!("{:06}", self.code(step, DIGITS));
            if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) && matched.is_none() {
                matched = Some(step);
            }
        }
        let step = matched.ok_or(TotpRefusal::Wrong)?;
        if last_used.is_some_and(|last| step <= last) {
            return Err(TotpRefusal::Replayed);
        }
        Ok(step)
    }
}

/// RFC 4648 base32 (upper case, no padding).
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for byte in bytes {
        buffer = (buffer << 8) | u32::from(*byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B's SHA-1 key.
    fn rfc_secret() -> TotpSecret {
        TotpSecret::from_bytes(*b"12345678901234567890")
    }

    #[test]
    fn the_rfc_6238_vectors_for_sha1() {
        let secret = rfc_secret();
        for (time, expected) in [
            (59, 94_287_082),
            (1_111_111_109, 7_081_804),
            (1_111_111_111, 14_050_471),
            (1_234_567_890, 89_005_924),
            (2_000_000_000, 69_279_037),
            (20_000_000_000, 65_353_130),
        ] {
            assert_eq!(secret.code(time / STEP_SECS, 8), expected, "at {time}");
        }
        assert_eq!(secret.code_at(59), "287082");
        assert_eq!(secret.code_at(1_111_111_109), "081804", "zero-padded");
    }

    #[test]
    fn base32_is_rfc_4648() {
        // RFC 4648 §10, without padding.
        for (input, expected) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32(input.as_bytes()), expected, "{input}");
        }
        assert_eq!(
            rfc_secret().base32().as_str(),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
    }

    #[test]
    fn a_code_is_accepted_one_step_either_side_and_no_further() {
        let secret = TotpSecret::generate();
        let now = 1_800_000_000;
        for (when, accepted) in [
            (now - 60, false),
            (now - 30, true),
            (now, true),
            (now + 30, true),
            (now + 60, false),
        ] {
            let code = secret.code_at(when);
            let verdict = secret.verify(&code, now, None);
            assert_eq!(
                verdict.is_ok(),
                accepted,
                "a code from {}s",
                i64::try_from(when).unwrap() - 1_800_000_000
            );
        }
        assert_eq!(
            secret.verify(&secret.code_at(now), now, None),
            Ok(now / STEP_SECS)
        );
    }

    #[test]
    fn a_code_is_accepted_once_and_earlier_ones_after_it_never() {
        let secret = TotpSecret::generate();
        let now = 1_800_000_000;
        let step = secret.verify(&secret.code_at(now), now, None).unwrap();

        assert_eq!(
            secret.verify(&secret.code_at(now), now, Some(step)),
            Err(TotpRefusal::Replayed)
        );
        assert_eq!(
            secret.verify(&secret.code_at(now - 30), now, Some(step)),
            Err(TotpRefusal::Replayed)
        );
        assert_eq!(
            secret.verify(&secret.code_at(now + 30), now, Some(step)),
            Ok(step + 1)
        );
    }

    #[test]
    fn malformed_and_wrong_codes_are_told_apart() {
        let secret = rfc_secret();
        for code in ["", "12345", "1234567", "12a456", "１２３４５６"] {
            assert_eq!(
                secret.verify(code, 59, None),
                Err(TotpRefusal::Malformed),
                "{code:?}"
            );
        }
        assert_eq!(
            secret.verify(" 287082 ", 59, None),
            Ok(1),
            "spaces around are forgiven"
        );
        let wrong = if secret.code_at(59) == "000000" {
            "000001"
        } else {
            "000000"
        };
        assert_eq!(secret.verify(wrong, 59, None), Err(TotpRefusal::Wrong));
    }

    #[test]
    fn the_otpauth_uri_names_the_entry_and_carries_the_secret() {
        let uri = rfc_secret().otpauth_uri("claimd demo", "ada@example.org");
        assert_eq!(
            uri.as_str(),
            "otpauth://totp/claimd%20demo:ada%40example%2Eorg?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=claimd%20demo&algorithm=SHA1&digits=6&period=30"
        );
        assert_eq!(format!("{:?}", rfc_secret()), "TotpSecret(..)");
    }
}
