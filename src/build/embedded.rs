//! The build script (`build` in Cargo.toml): two large texts the binary embeds are stored
//! deflated, and inflated once at first use. Every binary carries them (the sled-only one
//! for small devices too), and neither is read on a hot path:
//!
//! - `src/http/openapi.json`, the OpenAPI document, written by hand and indented for
//!   people: minified (only white space outside strings goes, so it means exactly what
//!   the file says), then deflated; `http::openapi` serves the inflated text.
//! - `src/auth/password_policy/common-passwords.txt`, the list new passwords are held
//!   against: deflated as it is; `password_policy::common_passwords` inflates it at the
//!   first password check.
//!
//! Both land in `OUT_DIR` as `*.deflate` (raw DEFLATE, RFC 1951), level 10.

use std::path::{Path, PathBuf};

type Failure = Box<dyn std::error::Error>;

fn main() -> Result<(), Failure> {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").ok_or("cargo sets OUT_DIR")?);
    let openapi = read("src/http/openapi.json")?;
    write(
        &out.join("openapi.json.deflate"),
        minify(&openapi).as_bytes(),
    )?;
    let passwords = read("src/auth/password_policy/common-passwords.txt")?;
    write(
        &out.join("common-passwords.txt.deflate"),
        passwords.as_bytes(),
    )
}

fn read(path: &str) -> Result<String, Failure> {
    println!("cargo::rerun-if-changed={path}");
    std::fs::read_to_string(path).map_err(|err| format!("{path}: {err}").into())
}

fn write(path: &Path, text: &[u8]) -> Result<(), Failure> {
    let deflated = miniz_oxide::deflate::compress_to_vec(text, 10);
    std::fs::write(path, deflated).map_err(|err| format!("{}: {err}", path.display()).into())
}

/// `json` without the white space between its tokens.
fn minify(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in json.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_whitespace() {
            out.push(c);
        }
    }
    out
}
