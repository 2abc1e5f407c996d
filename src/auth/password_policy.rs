//! Which new passwords claimd refuses: besides the length (`domain::Password`), anything
//! an attacker tries early. zxcvbn estimates how many guesses a password takes, with the
//! frequency lists of leaked passwords, common words and names built in (offline: no
//! breach service is asked), and sees through l33t spellings, keyboard rows, repeats,
//! dates and the user's own name. A password it puts under a million guesses (its score 0
//! or 1: a top-10,000 leaked password, a word with a digit, `qwerty123`, `alice2024`) is
//! refused, with its reason, at registration and at every password change.

use zxcvbn::feedback::Warning;
use zxcvbn::Score;

use super::AuthError;
use crate::domain::Password;

/// How much of a password is estimated: zxcvbn's matching grows with the square of the
/// length, and a password weak in its first 64 characters is weak.
const ESTIMATED_CHARS: usize = 64;

/// Refuses `password` when it is among the first million guesses, saying why.
///
/// # Errors
/// `PasswordTooWeak` with a reason fit to show the user (never the password).
pub fn check_new_password(password: &Password, username: &str) -> Result<(), AuthError> {
    let text = String::from_utf8_lossy(password.expose());
    let estimated: String = text.chars().take(ESTIMATED_CHARS).collect();
    let estimate = zxcvbn::zxcvbn(&estimated, &[username]);
    if estimate.score() >= Score::Two {
        return Ok(());
    }
    let why = match estimate.feedback().and_then(|feedback| feedback.warning()) {
        Some(
            Warning::ThisIsATop10Password
            | Warning::ThisIsATop100Password
            | Warning::ThisIsACommonPassword,
        ) => "it is on the lists of the most common and leaked passwords".to_string(),
        Some(Warning::ThisIsSimilarToACommonlyUsedPassword) => {
            "it is a small change to a common or leaked password".to_string()
        }
        Some(warning) => warning.to_string().trim_end_matches('.').to_lowercase(),
        None => "it would be among the first guesses of an attacker".to_string(),
    };
    Err(AuthError::PasswordTooWeak(format!(
        "password too easy to guess: {why}; a few unrelated words make a strong one"
    )))
}

#[cfg(test)]
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
        assert!(check("alice2024", "alice").is_err());
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
