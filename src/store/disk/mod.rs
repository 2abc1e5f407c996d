//! The on-disk shapes of every record, kept apart from the in-memory types the store hands
//! out (kanidm's `DbEntryVers` is the model). Each record type numbers its own formats; a
//! value is `[format][bincode of that format's shape]` (see [`super::codec`]).
//!
//! The rules, which the golden-bytes tests below hold to:
//!
//! - A shape, once released, never changes. bincode is positional: even a field appended
//!   at the end makes every record written before it undecodable. A change to a record is a
//!   new shape (`V2`) with the next format number.
//! - [`Stored::to_disk`] writes the newest format; [`Stored::from_disk`] keeps a branch for
//!   every format ever written and converts old shapes up to the in-memory type.
//! - Every shape has its golden bytes committed under `tests/fixtures/records/`: a shape
//!   changed by accident fails CI instead of a user's upgrade. A new shape adds its own
//!   file; the old files stay.
//!
//! The big-endian numbers in `meta`, the deny buckets, `session_acks` and
//! `pending_denials` are fixed-width and covered by the store's schema version instead.

mod change;
mod invitation;
mod key;
mod mail;
mod service;
mod session;
mod tenant;
mod user;

use serde_json::{Map, Value};

use super::codec::CodecError;

/// A record with on-disk shapes.
pub(crate) trait Stored: Sized {
    /// The format [`Stored::to_disk`] writes.
    const FORMAT: u8;

    /// The record in its newest on-disk shape.
    ///
    /// # Errors
    /// A value the shape cannot carry (a bug).
    fn to_disk(&self) -> Result<Vec<u8>, CodecError>;

    /// The record from any shape ever written.
    ///
    /// # Errors
    /// An unknown format, or bytes that are not a whole record of theirs.
    fn from_disk(bytes: &[u8]) -> Result<Self, CodecError>;
}

/// An `attrs` object as stored: JSON text (bincode cannot carry `serde_json::Value`).
fn attrs_to_text(attrs: &Map<String, Value>) -> Result<String, CodecError> {
    serde_json::to_string(attrs).map_err(|err| CodecError::Encode(err.to_string()))
}

/// An `attrs` object from its stored JSON text.
fn attrs_from_text(text: &str) -> Result<Map<String, Value>, CodecError> {
    serde_json::from_str(text).map_err(|err| CodecError::Decode(format!("attrs: {err}")))
}

#[cfg(test)]
mod golden {
    //! Golden bytes: the committed encoding of one sample of every shape.

    use std::path::PathBuf;

    /// The committed bytes of `name` (a hex file under `tests/fixtures/records/`).
    pub fn bytes(name: &str) -> Vec<u8> {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/records")
            .join(format!("{name}.hex"));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        let hex: String = text.split_whitespace().collect();
        (0..hex.len())
            .step_by(2)
            .map(|at| u8::from_str_radix(&hex[at..at + 2], 16).unwrap())
            .collect()
    }

    /// `bytes` as the hex a golden file holds, 32 bytes a line.
    pub fn hex(bytes: &[u8]) -> String {
        bytes
            .chunks(32)
            .map(|line| {
                line.iter()
                    .map(|byte| format!("{byte:02x}"))
                    .collect::<String>()
                    + "\n"
            })
            .collect()
    }

    /// Asserts that `encoded` is the golden file `name`; prints what to commit when the
    /// file is missing (a new shape) so its first bytes are reviewed, never regenerated.
    pub fn assert_matches(name: &str, encoded: &[u8]) {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/records")
            .join(format!("{name}.hex"));
        assert!(
            path.exists(),
            "no golden bytes for {name}; if this is a new shape, commit this as {}:\n{}",
            path.display(),
            hex(encoded)
        );
        assert_eq!(
            hex(encoded),
            hex(&bytes(name)),
            "{name} no longer encodes to its golden bytes: a released shape changed"
        );
    }
}
