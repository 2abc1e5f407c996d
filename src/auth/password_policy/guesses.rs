//! How many guesses an attacker needs for a password, estimated the way zxcvbn does it:
//! the password is cut into pieces (a listed common password, the username, a repeat, a
//! sequence, a keyboard run, a date, or single characters guessed one by one), each piece
//! is priced in guesses, and the estimate is the cheapest cut's product. An attacker who
//! knows these shapes reaches the password in about that many tries.
//!
//! Words are matched lowercase and with the usual character swaps undone (`p@ssw0rd`),
//! and cost a little more when they were capitalised or swapped. The figures err low,
//! so a weak password is never estimated strong by leaving a shape out.

use super::common_passwords;
use super::patterns::{self, character_guesses};

/// What a piece of a password was recognised as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// An entry on the common-password list.
    Listed,
    /// The username, or the service's own name.
    Context,
    Repeat,
    Sequence,
    KeyboardRun,
    Date,
    /// Characters with no shape, guessed one by one.
    Random,
}

/// The cheapest way an attacker reaches a password.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    pub guesses: f64,
    /// The shaped pieces of that cut, longest first, as (shape, characters covered).
    pub pieces: Vec<(Shape, usize)>,
}

/// Character swaps undone before a piece is looked up: two readings, since `1` stands for
/// both `i` and `l`.
const SWAPS: [&[(char, char)]; 2] = [
    &[
        ('@', 'a'),
        ('4', 'a'),
        ('3', 'e'),
        ('1', 'i'),
        ('!', 'i'),
        ('0', 'o'),
        ('$', 's'),
        ('5', 's'),
        ('7', 't'),
    ],
    &[
        ('@', 'a'),
        ('4', 'a'),
        ('3', 'e'),
        ('1', 'l'),
        ('!', 'i'),
        ('0', 'o'),
        ('$', 's'),
        ('5', 's'),
        ('7', 't'),
    ],
];

/// The guesses an attacker needs for a piece that is a known word (the username) rather
/// than a ranked list entry.
const CONTEXT_GUESSES: f64 = 10.0;

/// Estimates `password`, with `context` the words it must not lean on (the username).
pub fn estimate(password: &[char], context: &[String]) -> Estimate {
    let lower: Vec<char> = password.iter().map(|&c| lowercase(c)).collect();
    let readings: Vec<Vec<char>> = std::iter::once(lower.clone())
        .chain(SWAPS.iter().map(|swaps| {
            lower
                .iter()
                .map(|&c| {
                    swaps
                        .iter()
                        .find(|(from, _)| *from == c)
                        .map_or(c, |&(_, to)| to)
                })
                .collect()
        }))
        .collect();

    // cheapest[end] = (guesses to reach password[..end], where its last piece starts, shape)
    let length = password.len();
    let mut cheapest: Vec<(f64, usize, Shape)> = vec![(1.0, 0, Shape::Random); length + 1];
    for end in 1..=length {
        cheapest[end] = (f64::INFINITY, 0, Shape::Random);
        for start in 0..end {
            let (piece_guesses, shape) = price(
                &password[start..end],
                &lower[start..end],
                &readings,
                start,
                context,
            );
            let total = cheapest[start].0 * piece_guesses;
            if total < cheapest[end].0 {
                cheapest[end] = (total, start, shape);
            }
        }
    }

    let mut pieces = Vec::new();
    let mut end = length;
    while end > 0 {
        let (_, start, shape) = cheapest[end];
        if shape != Shape::Random {
            pieces.push((shape, end - start));
        }
        end = start;
    }
    pieces.sort_by_key(|&(_, covered)| std::cmp::Reverse(covered));
    Estimate {
        guesses: cheapest[length].0,
        pieces,
    }
}

/// The cheapest shape `span` can be read as, and its guesses.
fn price(
    span: &[char],
    lower: &[char],
    readings: &[Vec<char>],
    start: usize,
    context: &[String],
) -> (f64, Shape) {
    if span.len() == 1 {
        return (character_guesses(span[0]), Shape::Random);
    }
    let mut best = (random_guesses(span), Shape::Random);
    let mut consider = |guesses: Option<f64>, shape: Shape| {
        if let Some(guesses) = guesses.filter(|&guesses| guesses < best.0) {
            best = (guesses, shape);
        }
    };
    if span.len() >= patterns::SHORTEST {
        for reading in readings {
            let word: String = reading[start..start + span.len()].iter().collect();
            let variations =
                case_variations(span) * swap_variations(lower, &reading[start..start + span.len()]);
            consider(
                common_passwords::rank(&word).map(|rank| f64::from(rank) * variations),
                Shape::Listed,
            );
            if context.contains(&word) {
                consider(Some(CONTEXT_GUESSES * variations), Shape::Context);
            }
        }
        consider(patterns::sequence(span), Shape::Sequence);
        consider(patterns::keyboard_run(lower), Shape::KeyboardRun);
        consider(patterns::date(span), Shape::Date);
        consider(
            patterns::repeat(lower, |unit| estimate(unit, context).guesses),
            Shape::Repeat,
        );
    }
    best
}

fn random_guesses(span: &[char]) -> f64 {
    span.iter().map(|&c| character_guesses(c)).product()
}

/// One lowercase character for each character (a few letters lowercase to two).
fn lowercase(character: char) -> char {
    character.to_lowercase().next().unwrap_or(character)
}

/// `Password` and `PASSWORD` are tried right after `password`; mixed case a little later.
fn case_variations(span: &[char]) -> f64 {
    let upper = span.iter().filter(|c| c.is_uppercase()).count();
    let letters = span.iter().filter(|c| c.is_alphabetic()).count();
    let first_only = upper == 1 && span.first().is_some_and(|c| c.is_uppercase());
    match upper {
        0 => 1.0,
        _ if first_only || upper == letters => 2.0,
        _ => 2f64.powi(upper.min(letters - upper) as i32 + 1),
    }
}

/// Each swapped character (`@` for `a`) doubles the guesses.
fn swap_variations(lower: &[char], reading: &[char]) -> f64 {
    let swapped = lower.iter().zip(reading).filter(|(a, b)| a != b).count();
    2f64.powi(swapped as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guesses(password: &str, username: &str) -> Estimate {
        let chars: Vec<char> = password.chars().collect();
        estimate(&chars, &[username.to_string()])
    }

    #[test]
    fn a_listed_password_costs_its_rank() {
        let estimate = guesses("sunshine", "alice");
        assert!(estimate.guesses <= 100.0, "{estimate:?}");
        assert_eq!(estimate.pieces, vec![(Shape::Listed, 8)]);
    }

    #[test]
    fn swapped_and_capitalised_words_are_still_found() {
        let estimate = guesses("P@ssw0rd", "alice");
        assert!(estimate.guesses < 1_000.0, "{estimate:?}");
        assert_eq!(estimate.pieces, vec![(Shape::Listed, 8)]);
    }

    #[test]
    fn the_username_is_a_cheap_piece() {
        let estimate = guesses("Alice2024", "alice");
        assert!(estimate.guesses < 10_000.0, "{estimate:?}");
        assert!(
            estimate.pieces.contains(&(Shape::Context, 5)),
            "{estimate:?}"
        );
        assert!(estimate.pieces.contains(&(Shape::Date, 4)), "{estimate:?}");
    }

    #[test]
    fn shapes_multiply() {
        let estimate = guesses("qwerty1234", "alice");
        assert!(estimate.guesses < 100_000.0, "{estimate:?}");
        let estimate = guesses("abcdabcdabcd", "alice");
        assert_eq!(estimate.pieces, vec![(Shape::Repeat, 12)]);
    }

    #[test]
    fn random_characters_are_guessed_one_by_one() {
        let estimate = guesses("Tq7#vLp2", "alice");
        assert!(estimate.guesses > 1e10, "{estimate:?}");
        assert!(estimate.pieces.is_empty(), "{estimate:?}");
    }

    #[test]
    fn case_variations_grow_with_mixed_case() {
        let chars = |text: &str| text.chars().collect::<Vec<_>>();
        assert_eq!(case_variations(&chars("password")), 1.0);
        assert_eq!(case_variations(&chars("Password")), 2.0);
        assert_eq!(case_variations(&chars("PASSWORD")), 2.0);
        assert!(case_variations(&chars("PaSsWoRd")) > 2.0);
    }
}
