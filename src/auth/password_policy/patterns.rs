//! The shapes people build passwords from, besides words: repeats (`aaaa`, `abcabc`),
//! sequences (`abcd`, `9876`), runs along the keyboard (`qwerty`, `1qaz`, `!@#$`), and
//! dates and years (`1990`, `01011990`, `31/12/99`). Each recogniser takes a span of a
//! password (already lowercased where the pattern is blind to case) and answers how many
//! guesses an attacker who tries that shape needs to reach it, or `None` when the span is
//! not of that shape. The figures are deliberately low: an attacker enumerates these early.

/// Rows of a US keyboard, unshifted and shifted, and its diagonal columns: neighbours in
/// one of these strings are neighbouring keys.
const KEYBOARD_LINES: [&str; 17] = [
    "`1234567890-=",
    "~!@#$%^&*()_+",
    "qwertyuiop[]\\",
    "asdfghjkl;'",
    "zxcvbnm,./",
    "1qaz",
    "2wsx",
    "3edc",
    "4rfv",
    "5tgb",
    "6yhn",
    "7ujm",
    "8ik,",
    "9ol.",
    "0p;/",
    "!qaz",
    "@wsx",
];

/// The shortest span any of these shapes is recognised in.
pub const SHORTEST: usize = 3;

/// How many single characters of this kind an attacker tries in one position.
pub fn character_guesses(character: char) -> f64 {
    match character {
        '0'..='9' => 10.0,
        'a'..='z' | 'A'..='Z' => 26.0,
        ' '..='~' => 33.0,
        _ => 100.0,
    }
}

/// `aaaa`, `abab`, `abcabcabc`: one unit written two times or more. `unit_guesses` prices
/// the unit itself (it may be a sequence or a word).
pub fn repeat(span: &[char], unit_guesses: impl Fn(&[char]) -> f64) -> Option<f64> {
    (1..=span.len() / 2)
        .filter(|&unit| span.len().is_multiple_of(unit))
        .find(|&unit| span.chunks(unit).all(|chunk| chunk == &span[..unit]))
        .map(|unit| unit_guesses(&span[..unit]) * (span.len() / unit) as f64)
}

/// `abcdef`, `4567`, `zyxw`: each character one after the previous (or one before), all
/// letters of one case or all digits.
pub fn sequence(span: &[char]) -> Option<f64> {
    let first = *span.first()?;
    let same_class = |character: char| {
        (first.is_ascii_lowercase() && character.is_ascii_lowercase())
            || (first.is_ascii_uppercase() && character.is_ascii_uppercase())
            || (first.is_ascii_digit() && character.is_ascii_digit())
    };
    if span.len() < SHORTEST || !span.iter().all(|&character| same_class(character)) {
        return None;
    }
    let step = span[1] as i32 - span[0] as i32;
    if step.abs() != 1
        || span
            .windows(2)
            .any(|pair| pair[1] as i32 - pair[0] as i32 != step)
    {
        return None;
    }
    let starts = if matches!(first, 'a' | 'z' | 'A' | 'Z' | '0' | '1' | '9') {
        4.0
    } else {
        character_guesses(first)
    };
    let direction = if step > 0 { 1.0 } else { 2.0 };
    Some(starts * direction * span.len() as f64)
}

/// `qwerty`, `asdfgh`, `1qaz`, `!@#$%`: each key beside the previous one (the span is
/// lowercase).
pub fn keyboard_run(span: &[char]) -> Option<f64> {
    if span.len() < SHORTEST {
        return None;
    }
    let neighbours = |a: char, b: char| {
        KEYBOARD_LINES.iter().any(|line| {
            line.chars()
                .zip(line.chars().skip(1))
                .any(|pair| pair == (a, b) || pair == (b, a))
        })
    };
    if !span.windows(2).all(|pair| neighbours(pair[0], pair[1])) {
        return None;
    }
    // Where the run starts (about 50 keys) and which way it turns.
    Some(100.0 * span.len() as f64)
}

/// The years an attacker tries first.
const YEARS: std::ops::RangeInclusive<u32> = 1900..=2049;
const YEAR_GUESSES: f64 = 150.0;
const DAY_GUESSES: f64 = 366.0;

/// `1990`, `01011990`, `19900101`, `311299`, `31/12/1999`, `1-2-03`: a year, or a day
/// month and year in any of the usual orders.
pub fn date(span: &[char]) -> Option<f64> {
    let text: String = span.iter().collect();
    if text.len() == 4 && is_year(&text) {
        return Some(YEAR_GUESSES);
    }
    let parts: Vec<&str> = if text.chars().all(|character| character.is_ascii_digit()) {
        match text.len() {
            6 => vec![&text[..2], &text[2..4], &text[4..]],
            8 => return date_of_eight_digits(&text),
            _ => return None,
        }
    } else {
        let separator = text
            .chars()
            .find(|character| "/-._ ".contains(*character))?;
        text.split(separator).collect()
    };
    let [a, b, c] = parts[..] else {
        return None;
    };
    let is_day_month = |day: &str, month: &str| is_day(day) && is_month(month);
    let year_last = is_year_or_two_digits(c) && (is_day_month(a, b) || is_day_month(b, a));
    let year_first = is_year_or_two_digits(a) && is_day_month(c, b);
    (year_last || year_first).then_some(DAY_GUESSES * YEAR_GUESSES)
}

fn date_of_eight_digits(text: &str) -> Option<f64> {
    let day_month_year = is_year(&text[4..])
        && ((is_day(&text[..2]) && is_month(&text[2..4]))
            || (is_month(&text[..2]) && is_day(&text[2..4])));
    let year_month_day = is_year(&text[..4]) && is_month(&text[4..6]) && is_day(&text[6..]);
    (day_month_year || year_month_day).then_some(DAY_GUESSES * YEAR_GUESSES)
}

fn number(text: &str, digits: std::ops::RangeInclusive<usize>) -> Option<u32> {
    if !digits.contains(&text.len()) || !text.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn is_year(text: &str) -> bool {
    number(text, 4..=4).is_some_and(|year| YEARS.contains(&year))
}

fn is_year_or_two_digits(text: &str) -> bool {
    is_year(text) || number(text, 2..=2).is_some()
}

fn is_day(text: &str) -> bool {
    number(text, 1..=2).is_some_and(|day| (1..=31).contains(&day))
}

fn is_month(text: &str) -> bool {
    number(text, 1..=2).is_some_and(|month| (1..=12).contains(&month))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chars(text: &str) -> Vec<char> {
        text.chars().collect()
    }

    #[test]
    fn repeats_are_one_unit_written_again() {
        let brute = |unit: &[char]| 26f64.powi(unit.len() as i32);
        assert_eq!(repeat(&chars("aaaa"), brute), Some(26.0 * 4.0));
        assert_eq!(repeat(&chars("abcabc"), brute), Some(26f64.powi(3) * 2.0));
        assert_eq!(repeat(&chars("abcab"), brute), None);
        assert_eq!(repeat(&chars("abcd"), brute), None);
    }

    #[test]
    fn sequences_step_by_one_in_one_class() {
        assert_eq!(sequence(&chars("abcdef")), Some(4.0 * 6.0));
        assert_eq!(sequence(&chars("4567")), Some(10.0 * 4.0));
        assert_eq!(sequence(&chars("zyxw")), Some(4.0 * 2.0 * 4.0));
        assert_eq!(sequence(&chars("abd")), None);
        assert_eq!(sequence(&chars("yzA")), None);
        assert_eq!(sequence(&chars("ab")), None);
    }

    #[test]
    fn keyboard_runs_follow_neighbouring_keys() {
        for run in ["qwerty", "asdfgh", "1qaz", "!@#$%", "poiuy", "zxcvbnm"] {
            assert!(keyboard_run(&chars(run)).is_some(), "{run}");
        }
        for not_a_run in ["qwz", "violet", "1q2"] {
            assert_eq!(keyboard_run(&chars(not_a_run)), None, "{not_a_run}");
        }
    }

    #[test]
    fn years_and_dates_in_the_usual_orders() {
        for a_date in [
            "1990",
            "2024",
            "01011990",
            "19901231",
            "12311990",
            "311299",
            "31/12/1999",
            "1-2-03",
            "1999.12.31",
        ] {
            assert!(date(&chars(a_date)).is_some(), "{a_date}");
        }
        for not_a_date in ["1899", "2050", "32011990", "13131990", "123456", "12/34"] {
            assert_eq!(date(&chars(not_a_date)), None, "{not_a_date}");
        }
    }
}
