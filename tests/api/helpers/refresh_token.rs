//! Refresh tokens as strings: their three parts (`<sid>.<generation>.<mac>`), and a
//! well-formed one whose MAC is wrong.

/// Splits a refresh token `<sid>.<generation>.<mac>` into its parts.
pub fn refresh_parts(token: &str) -> (String, u64, String) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(
        parts.len(),
        3,
        "refresh token has three dot-separated parts: {token}"
    );
    let generation = parts[1]
        .parse()
        .unwrap_or_else(|_| panic!("generation is a number: {token}"));
    assert!(!parts[2].is_empty(), "refresh token mac is empty: {token}");
    (parts[0].to_string(), generation, parts[2].to_string())
}

/// The refresh token with the first character of its MAC changed (to another character that
/// is valid in both hex and base64url): a well-formed token whose MAC is wrong.
pub fn forge_mac(token: &str) -> String {
    let (sid, generation, mac) = refresh_parts(token);
    let mut chars: Vec<char> = mac.chars().collect();
    chars[0] = if chars[0] == '0' { '1' } else { '0' };
    format!(
        "{sid}.{generation}.{}",
        chars.into_iter().collect::<String>()
    )
}
