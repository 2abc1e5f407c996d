//! The one place that turns records into bytes and back. Every value is
//! `[format version][bincode]`; decoding dispatches on the version byte so that a later
//! release can still read what an earlier one wrote. bincode stays behind this module
//! (upstream has stopped development): swapping it touches nothing else.
//!
//! Keys are not encoded here with bincode: numeric parts of keys are big-endian so that
//! sled's byte order is numeric order (see [`expiry_key`]).

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The format every record is written in today.
pub const CURRENT_FORMAT: u8 = 1;

/// A stored value that cannot be read back.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("empty value")]
    Empty,
    #[error("unknown format version {0}")]
    UnknownFormat(u8),
    #[error("undecodable value: {0}")]
    Decode(String),
    #[error("unencodable value: {0}")]
    Encode(String),
    #[error("{0} trailing bytes after value")]
    Trailing(usize),
}

fn bincode_config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Encodes a record in the current format.
///
/// # Errors
/// Only for types bincode cannot express (a bug, caught by the unit tests).
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut bytes = vec![CURRENT_FORMAT];
    bincode::serde::encode_into_std_write(value, &mut bytes, bincode_config())
        .map_err(|err| CodecError::Encode(err.to_string()))?;
    Ok(bytes)
}

/// Decodes a record written by this or an earlier format.
///
/// # Errors
/// An empty value, an unknown version, or bytes that are not a whole record.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    match version {
        CURRENT_FORMAT => {
            let (value, read) = bincode::serde::decode_from_slice(body, bincode_config())
                .map_err(|err| CodecError::Decode(err.to_string()))?;
            if read != body.len() {
                return Err(CodecError::Trailing(body.len() - read));
            }
            Ok(value)
        }
        other => Err(CodecError::UnknownFormat(other)),
    }
}

/// A big-endian `u64`, as stored in deny-list values and key parts.
pub fn encode_u64(value: u64) -> [u8; 8] {
    value.to_be_bytes()
}

/// Reads a big-endian `u64` written by [`encode_u64`].
///
/// # Errors
/// A value of the wrong length.
pub fn decode_u64(bytes: &[u8]) -> Result<u64, CodecError> {
    <[u8; 8]>::try_from(bytes)
        .map(u64::from_be_bytes)
        .map_err(|_| CodecError::Decode(format!("expected 8 bytes, found {}", bytes.len())))
}

/// `prefix + expiry (big-endian) + rest`: keys that sort by expiry, so that everything
/// expired by `now` is the range up to [`expiry_key`]`(prefix, now + 1, &[])`.
pub fn expiry_key(prefix: &[u8], expiry: u64, rest: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(prefix.len() + 8 + rest.len());
    key.extend_from_slice(prefix);
    key.extend_from_slice(&expiry.to_be_bytes());
    key.extend_from_slice(rest);
    key
}

/// Splits a key built by [`expiry_key`] back into its expiry and the rest.
pub fn split_expiry_key<'a>(prefix: &[u8], key: &'a [u8]) -> Option<(u64, &'a [u8])> {
    let body = key.strip_prefix(prefix)?;
    if body.len() < 8 {
        return None;
    }
    let (expiry, rest) = body.split_at(8);
    Some((decode_u64(expiry).ok()?, rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Sample {
        name: String,
        roles: Vec<String>,
        version: u64,
        tenant: Option<[u8; 16]>,
    }

    fn sample() -> Sample {
        Sample {
            name: "alice".into(),
            roles: vec!["admin".into()],
            version: 7,
            tenant: Some([9; 16]),
        }
    }

    #[test]
    fn round_trips_with_a_version_byte() {
        let bytes = encode(&sample()).unwrap();
        assert_eq!(bytes[0], CURRENT_FORMAT);
        assert_eq!(decode::<Sample>(&bytes).unwrap(), sample());
    }

    #[test]
    fn refuses_unknown_versions_and_damage() {
        let mut bytes = encode(&sample()).unwrap();
        assert!(matches!(decode::<Sample>(&[]), Err(CodecError::Empty)));
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(
            decode::<Sample>(&trailing),
            Err(CodecError::Trailing(1))
        ));
        assert!(decode::<Sample>(&bytes[..bytes.len() - 3]).is_err());
        bytes[0] = 99;
        assert!(matches!(
            decode::<Sample>(&bytes),
            Err(CodecError::UnknownFormat(99))
        ));
    }

    #[test]
    fn expiry_keys_sort_by_number() {
        let early = expiry_key(b"e", 255, b"x");
        let late = expiry_key(b"e", 256, b"a");
        assert!(early < late);
        assert_eq!(split_expiry_key(b"e", &late), Some((256, &b"a"[..])));
        assert_eq!(split_expiry_key(b"e", b"e123"), None);
    }
}
