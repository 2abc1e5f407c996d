//! Texts the build script embeds deflated (`src/build/embedded.rs`), inflated at first use.

/// The text `deflated` holds. A failure is a build that went wrong, which the unit tests of
/// each text catch; it is logged, and the text is empty rather than the server down.
pub(crate) fn inflate(deflated: &[u8], what: &str) -> String {
    match miniz_oxide::inflate::decompress_to_vec(deflated)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
    {
        Some(text) => text,
        None => {
            tracing::error!("{what} embedded in this binary does not inflate: a broken build");
            String::new()
        }
    }
}
