//! Recovery codes: ten single-use codes a user keeps on paper for when the phone with the
//! authenticator app is gone. Each is 80 random bits, shown once as 16 base32 letters in
//! groups of four (`k7qm-2xnd-…`), and kept only as its SHA-256 digest: 80 bits are far
//! past what a leaked store could be searched for, so a slow hash would only slow logins.
//!
//! The alphabet is Crockford's base32 (digits and letters without `i`, `l`, `o`, `u`), and
//! what a user types back is read as Crockford reads it: case, spaces and dashes do not
//! matter, `o` is `0`, and `i` and `l` are `1`.

use rand::Rng as _;
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

/// How many codes a user gets.
pub const CODES: usize = 10;
/// Letters in a code.
const LETTERS: usize = 16;
/// Crockford's base32, lower case.
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// A recovery code's digest, as stored.
pub type RecoveryDigest = [u8; 32];

/// A fresh set of codes: what to show the user once, and the digests to store.
pub fn generate() -> (Vec<Zeroizing<String>>, Vec<RecoveryDigest>) {
    let mut rng = rand::rngs::OsRng;
    (0..CODES)
        .map(|_| {
            let letters: Zeroizing<String> = Zeroizing::new(
                (0..LETTERS)
                    .map(|_| char::from(ALPHABET[rng.gen_range(0..32)]))
                    .collect(),
            );
            let shown = Zeroizing::new(
                letters
                    .as_bytes()
                    .chunks(4)
                    .map(|group| std::str::from_utf8(group).unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join("-"),
            );
            let digest = digest_of(&letters);
            (shown, digest)
        })
        .unzip()
}

/// The digest of what a user typed, once read forgivingly; `None` when it cannot be a
/// code (wrong length or a letter not in the alphabet).
pub fn digest_of_typed(typed: &str) -> Option<RecoveryDigest> {
    let letters: Zeroizing<String> = Zeroizing::new(
        typed
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .map(|c| match c.to_ascii_lowercase() {
                'o' => '0',
                'i' | 'l' => '1',
                other => other,
            })
            .collect(),
    );
    let well_formed = letters.len() == LETTERS && letters.bytes().all(|b| ALPHABET.contains(&b));
    well_formed.then(|| digest_of(&letters))
}

fn digest_of(letters: &str) -> RecoveryDigest {
    Sha256::digest(letters.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_distinct_codes_that_read_back_to_their_digests() {
        let (shown, digests) = generate();

        assert_eq!((shown.len(), digests.len()), (CODES, CODES));
        for (code, digest) in shown.iter().zip(&digests) {
            assert_eq!(code.len(), LETTERS + 3, "{}", code.as_str());
            assert_eq!(code.matches('-').count(), 3);
            assert_eq!(digest_of_typed(code), Some(*digest));
            assert_eq!(
                digest_of_typed(&code.to_uppercase().replace('-', " ")),
                Some(*digest)
            );
        }
        let mut unique = digests.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), CODES);
    }

    #[test]
    fn what_cannot_be_a_code_has_no_digest() {
        for typed in [
            "",
            "acde-fghj-kmnp",
            "acde-fghj-kmnp-qrst-v",
            "acde-fghj-kmnp-qrsu",
            "acde-fghj-kmnp-qrs!",
        ] {
            assert_eq!(digest_of_typed(typed), None, "{typed}");
        }
        assert!(digest_of_typed("acde-fghj-kmnp-qrst").is_some());
    }

    #[test]
    fn look_alikes_read_as_crockford_reads_them() {
        assert_eq!(
            digest_of_typed("O0IL-1111-0000-abcd"),
            digest_of_typed("0011-1111-0000-abcd")
        );
        let mut sorted = ALPHABET.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 32, "32 distinct symbols");
    }
}
