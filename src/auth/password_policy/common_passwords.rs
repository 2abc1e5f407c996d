//! The list of common and leaked passwords new passwords are held against, embedded in the
//! binary (no breach service is asked). `common-passwords.txt` holds one lowercase entry of
//! four characters or more per line, most frequent first, so an entry's line number is the
//! rank an attacker's wordlist tries it at. The data is Django's list of the 20,000 most
//! common passwords (see `common-passwords.NOTICE`), with entries under four characters
//! dropped: a shorter piece of a password is guessed character by character anyway. The
//! binary carries it deflated (`src/build/embedded.rs`): it is inflated at the first check.

use std::sync::OnceLock;

/// `common-passwords.txt`, deflated by the build script.
const DEFLATED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/common-passwords.txt.deflate"));

/// The list's text, inflated once and kept.
fn list() -> &'static str {
    static LIST: OnceLock<String> = OnceLock::new();
    LIST.get_or_init(|| crate::embedded::inflate(DEFLATED, "the password list"))
}

/// The entries sorted by text for a binary search, each with its rank (1 = most common).
/// Built at the first password check (about 19,000 entries, under half a MiB).
fn by_text() -> &'static [(&'static str, u32)] {
    static SORTED: OnceLock<Vec<(&'static str, u32)>> = OnceLock::new();
    SORTED.get_or_init(|| {
        let mut entries: Vec<(&'static str, u32)> = list().lines().zip(1..).collect();
        entries.sort_unstable_by_key(|&(entry, _)| entry);
        entries
    })
}

/// Where `candidate` (lowercase) stands on the list, 1 being the most common; `None` when
/// it is not on it.
pub fn rank(candidate: &str) -> Option<u32> {
    let entries = by_text();
    entries
        .binary_search_by_key(&candidate, |&(entry, _)| entry)
        .ok()
        .map(|index| entries[index].1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_common_passwords_rank_first() {
        assert_eq!(rank("123456"), Some(1));
        assert!(rank("password").is_some_and(|rank| rank <= 10));
        assert!(rank("sunshine").is_some_and(|rank| rank <= 100));
    }

    #[test]
    fn an_unlisted_text_has_no_rank() {
        assert_eq!(rank("violet tractor sings"), None);
        assert_eq!(rank(""), None);
    }

    #[test]
    fn every_entry_is_lowercase_unique_and_four_characters_or_more() {
        let mut seen = std::collections::HashSet::new();
        for entry in list().lines() {
            assert!(entry.chars().count() >= 4, "{entry:?}");
            assert_eq!(entry, entry.to_lowercase(), "{entry:?}");
            assert!(seen.insert(entry), "{entry:?} twice");
        }
        assert!(seen.len() > 19_000);
    }
}
