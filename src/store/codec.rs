//! The one place that turns values into bytes and back. A record is
//! `[format][bincode of that format's shape]`: the format byte says which on-disk shape
//! follows, and each record type numbers its own shapes (see [`super::disk`], which owns
//! them). bincode stays behind this module (upstream has stopped development): swapping it
//! touches nothing else.
//!
//! Keys are not encoded here with bincode: numeric parts of keys are big-endian so that
//! sled's byte order is numeric order (see [`expiry_key`]).

use serde::de::DeserializeOwned;
use serde::Serialize;

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

/// Encodes `value` as a record of the given format.
///
/// # Errors
/// Only for types bincode cannot express (a bug, caught by the unit tests).
pub fn encode_as<T: Serialize>(format: u8, value: &T) -> Result<Vec<u8>, CodecError> {
    let mut bytes = vec![format];
    bincode::serde::encode_into_std_write(value, &mut bytes, bincode_config())
        .map_err(|err| CodecError::Encode(err.to_string()))?;
    Ok(bytes)
}

/// A record's format byte and the body that follows it.
///
/// # Errors
/// An empty value.
pub fn split_format(bytes: &[u8]) -> Result<(u8, &[u8]), CodecError> {
    let (&format, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    Ok((format, body))
}

/// Decodes a record body (the bytes after the format byte) as one shape, all of it.
///
/// # Errors
/// Bytes that are not exactly one value of that shape.
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, CodecError> {
    let (value, read) = bincode::serde::decode_from_slice(body, bincode_config())
        .map_err(|err| CodecError::Decode(err.to_string()))?;
    if read != body.len() {
        return Err(CodecError::Trailing(body.len() - read));
    }
    Ok(value)
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
    fn round_trips_behind_a_format_byte() {
        let bytes = encode_as(3, &sample()).unwrap();
        assert_eq!(bytes[0], 3);
        let (format, body) = split_format(&bytes).unwrap();
        assert_eq!(format, 3);
        assert_eq!(decode_body::<Sample>(body).unwrap(), sample());
    }

    #[test]
    fn refuses_empty_values_and_damage() {
        let bytes = encode_as(1, &sample()).unwrap();
        assert!(matches!(split_format(&[]), Err(CodecError::Empty)));
        let mut trailing = bytes[1..].to_vec();
        trailing.push(0);
        assert!(matches!(
            decode_body::<Sample>(&trailing),
            Err(CodecError::Trailing(1))
        ));
        assert!(decode_body::<Sample>(&bytes[1..bytes.len() - 3]).is_err());
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
