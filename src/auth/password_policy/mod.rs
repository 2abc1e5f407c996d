//! Which new passwords claimd refuses: besides the length (`domain::Password`), anything
//! an attacker tries early. The estimate (`guesses.rs`) cuts a password into the pieces a
//! cracking tool tries (an entry of the embedded list of the 20,000 most common leaked
//! passwords, the username, repeats, sequences, keyboard runs, dates) and prices each in
//! guesses, offline: no breach service is asked. A password under a million guesses (a
//! leaked password, a listed word with digits, `qwerty123`, `alice2024`, `P@ssw0rd`) is
//! refused, with its reason, at registration and at every password change.

mod common_passwords;
mod guesses;
mod patterns;

use guesses::Shape;

use super::AuthError;
use crate::domain::Password;

/// How much of a password is estimated: finding the cheapest cut grows with the cube of the
/// length, and a password weak in its first 64 characters is weak.
const ESTIMATED_CHARS: usize = 64;

/// Under this many guesses a password falls to an online attacker throttled by the rate
/// limits, or to an offline one in moments (zxcvbn's scores 0 and 1).
const FEWEST_GUESSES: f64 = 1e6;

/// Refuses `password` when it is among the first million guesses, saying why.
///
/// # Errors
/// `PasswordTooWeak` with a reason fit to show the user (never the password).
pub fn check_new_password(password: &Password, username: &str) -> Result<(), AuthError> {
    let text = String::from_utf8_lossy(password.expose());
    let estimated: Vec<char> = text.chars().take(ESTIMATED_CHARS).collect();
    let context: Vec<String> = [username, "claimd"]
        .iter()
        .map(|word| word.to_lowercase())
        .filter(|word| word.chars().count() >= 3)
        .collect();
    let estimate = guesses::estimate(&estimated, &context);
    if estimate.guesses >= FEWEST_GUESSES {
        return Ok(());
    }
    // The username is named first (the user can act on it), else the longest shaped piece.
    let named = estimate
        .pieces
        .iter()
        .find(|(shape, _)| *shape == Shape::Context)
        .or(estimate.pieces.first());
    let why = match named {
        Some(&(Shape::Listed, covered)) if covered == estimated.len() => {
            "it is on the lists of the most common and leaked passwords"
        }
        Some((Shape::Listed, _)) => "it is a small change to a common or leaked password",
        Some((Shape::Context, _)) => "it is built on the username",
        Some((Shape::Repeat, _)) => "repeated characters like aaa or abcabc are easy to guess",
        Some((Shape::Sequence, _)) => "sequences like abc or 6543 are easy to guess",
        Some((Shape::KeyboardRun, _)) => "rows of keys like qwerty or asdf are easy to guess",
        Some((Shape::Date, _)) => "dates and years are easy to guess",
        Some((Shape::Random, _)) | None => "it would be among the first guesses of an attacker",
    };
    Err(AuthError::PasswordTooWeak(format!(
        "password too easy to guess: {why}; a few unrelated words make a strong one"
    )))
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "these tests wait and measure in real time"
)]
mod tests {
    use super::*;

    fn check(text: &str, username: &str) -> Result<(), AuthError> {
        let password = Password::parse_new(text.into()).expect("8 characters or more");
        check_new_password(&password, username)
    }

    #[test]
    fn common_and_leaked_passwords_are_refused() {
        for weak in [
            "password",
            "12345678",
            "qwerty123",
            "iloveyou",
            "P@ssw0rd",
            "letmein1",
            "trustno1",
            "aaaaaaaaaaaa",
            "elephant7",
            "abcd1234",
            "1qaz2wsx3edc",
            "zxcvbnm123",
            "01011990",
            "Summer2024",
            "claimd2024!",
        ] {
            let refused = check(weak, "alice");
            assert!(
                matches!(refused, Err(AuthError::PasswordTooWeak(_))),
                "{weak}: {refused:?}"
            );
        }
    }

    #[test]
    fn the_users_own_name_does_not_make_a_password() {
        for built_on_the_name in ["alice2024", "Alice_alice", "4l1ce!1990"] {
            assert!(
                check(built_on_the_name, "alice").is_err(),
                "{built_on_the_name}"
            );
        }
        assert!(check("alice: violet tractor sings", "alice").is_ok());
    }

    #[test]
    fn each_shape_is_named_in_the_reason() {
        for (weak, reason) in [
            ("sunshine", "lists of the most common"),
            ("sunshine1987", "small change to a common"),
            ("alice!1990", "username"),
            ("q1w2e3r4t5y6!!", "easy to guess"),
            ("zzzzzzzzzz", "repeated characters"),
            ("abcdefghijk", "sequences"),
            ("qwertyuiop[]", "rows of keys"),
        ] {
            let Err(AuthError::PasswordTooWeak(why)) = check(weak, "alice") else {
                panic!("{weak} is refused");
            };
            assert!(why.contains(reason), "{weak}: {why}");
        }
    }

    #[test]
    fn a_few_unrelated_words_pass() {
        for strong in [
            "correct horse battery staple",
            "correct horse battery",
            "violet tractor sings",
        ] {
            assert!(check(strong, "alice").is_ok(), "{strong}");
        }
    }

    /// The passwords README, docs/, the benches and the test suites use: a refusal here
    /// would break a walk a newcomer runs as printed.
    #[test]
    fn the_passwords_the_docs_and_benches_use_pass() {
        for used in [
            "a long admin passphrase",
            "a long user passphrase",
            "the admin's own passphrase",
            "soak test passphrase",
            "feed bench passphrase",
            "churn passphrase",
            "a brand new passphrase",
            "Tq7#vLp2",
            "k9#Lm2$x",
            "éàüöçñßø",
        ] {
            assert!(check(used, "alice").is_ok(), "{used}");
        }
    }

    #[test]
    fn the_reason_never_holds_the_password() {
        let Err(AuthError::PasswordTooWeak(why)) = check("sunshine", "alice") else {
            panic!("sunshine is refused");
        };
        assert!(!why.contains("sunshine"), "{why}");
        assert!(why.starts_with("password too easy to guess"), "{why}");
    }

    #[test]
    fn a_long_password_is_estimated_quickly() {
        let long = "x7!".repeat(300);
        let started = std::time::Instant::now();
        let _ = check(&long, "alice");
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }
}
