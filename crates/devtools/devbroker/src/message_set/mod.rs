//! Message sets in format v0 and v1 (magic 0 and 1): validation on produce, and
//! down-conversion to magic 0 for clients that fetch at Fetch v0/v1.
//!
//! A message set is a sequence of `offset: i64, size: i32, message` entries. A message is
//! `crc: u32, magic: i8, attributes: i8, [timestamp: i64 if magic 1], key: bytes,
//! value: bytes`; the CRC-32 covers everything after itself, so rewriting the offset in
//! front of it keeps the message valid. A compressed set travels as the value of one
//! wrapper message whose attributes name the codec.
//!
//! What is stored for a produced entry:
//! - an uncompressed message: as sent (only its offset is assigned);
//! - a magic-1 wrapper whose inner offsets are the relative 0..n-1: as sent, with the
//!   wrapper offset set to the absolute offset of the last inner message (what Kafka 0.10
//!   does; readers add the relative inner offsets to `wrapper offset - (n - 1)`);
//! - any other wrapper (magic 0, whose inner offsets would have to be absolute, or odd
//!   inner offsets): flattened into its inner messages, each stored uncompressed. Their
//!   keys, values, timestamps and CRCs are untouched, so consumers see the same bytes.
//!
//! Here: the format (splitting a set into entries, parsing and building messages);
//! [`produced`]: what a produced set becomes ([`prepare`]); [`down_conversion`]: stored
//! entries as magic 0 ([`down_convert`]).

mod down_conversion;
mod produced;

use bytes::{BufMut, Bytes, BytesMut};

use crate::compression::{self, Codec, DecompressError};
use crate::protocol::error_code;

pub use down_conversion::down_convert;
pub use produced::{Prepared, prepare};

/// Bytes of `offset` + `size` in front of each message.
pub const ENTRY_HEADER_LEN: usize = 12;
/// Smallest possible message body: crc, magic, attributes, key len, value len.
const MIN_MESSAGE_LEN: usize = 4 + 1 + 1 + 4 + 4;

/// Why a produced message set was refused, with the Kafka error code it maps to.
#[derive(Debug, thiserror::Error)]
pub enum SetError {
    #[error("corrupt message set: {0}")]
    Corrupt(&'static str),
    #[error("message CRC mismatch")]
    Crc,
    #[error("decompression failed")]
    Decompress(#[from] DecompressError),
    #[error("unsupported compression codec in attributes {0:#x}")]
    UnsupportedCodec(i8),
}

impl SetError {
    pub fn error_code(&self) -> i16 {
        match self {
            SetError::Corrupt(_) | SetError::Crc => error_code::CORRUPT_MESSAGE,
            SetError::Decompress(DecompressError::TooLarge(_)) => error_code::MESSAGE_TOO_LARGE,
            SetError::Decompress(DecompressError::Unsupported(_))
            | SetError::UnsupportedCodec(_) => error_code::UNSUPPORTED_COMPRESSION_TYPE,
            SetError::Decompress(_) => error_code::CORRUPT_MESSAGE,
        }
    }
}

/// A parsed, CRC-checked message borrowing from its set.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub magic: i8,
    pub attributes: i8,
    /// Magic 1 only.
    pub timestamp: Option<i64>,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    /// The whole message from the CRC on.
    pub body: &'a [u8],
}

impl Message<'_> {
    pub fn codec(&self) -> Option<Codec> {
        Codec::from_attributes(self.attributes)
    }

    /// A wrapper's inner message set: its value decompressed with `codec`, at most
    /// `limit` bytes.
    pub fn inner_set(&self, codec: Codec, limit: usize) -> Result<Vec<u8>, SetError> {
        let payload = self
            .value
            .ok_or(SetError::Corrupt("wrapper without value"))?;
        Ok(compression::decompress(codec, payload, limit)?)
    }
}

/// Splits a message set into `(offset, message body)` entries. A partial trailing entry is
/// an error: producers always send whole messages.
pub fn entries(mut set: &[u8]) -> Result<Vec<(i64, &[u8])>, SetError> {
    let mut out = Vec::new();
    while !set.is_empty() {
        if set.len() < ENTRY_HEADER_LEN {
            return Err(SetError::Corrupt("truncated entry header"));
        }
        let offset = i64::from_be_bytes(fixed(&set[0..8]));
        let size = i32::from_be_bytes(fixed(&set[8..12]));
        let size = usize::try_from(size).map_err(|_| SetError::Corrupt("negative size"))?;
        if size < MIN_MESSAGE_LEN {
            return Err(SetError::Corrupt("message too short"));
        }
        let rest = &set[ENTRY_HEADER_LEN..];
        if rest.len() < size {
            return Err(SetError::Corrupt("truncated message"));
        }
        out.push((offset, &rest[..size]));
        set = &rest[size..];
    }
    Ok(out)
}

fn fixed<const N: usize>(s: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&s[..N]);
    a
}

/// Parses one message body and checks its CRC and layout.
pub fn parse_message(body: &[u8]) -> Result<Message<'_>, SetError> {
    if body.len() < MIN_MESSAGE_LEN {
        return Err(SetError::Corrupt("message too short"));
    }
    let crc = u32::from_be_bytes(fixed(&body[0..4]));
    if crc32fast::hash(&body[4..]) != crc {
        return Err(SetError::Crc);
    }
    let magic = body[4] as i8;
    let attributes = body[5] as i8;
    let mut rest = &body[6..];
    let timestamp = match magic {
        0 => None,
        1 => {
            if rest.len() < 8 {
                return Err(SetError::Corrupt("truncated timestamp"));
            }
            let ts = i64::from_be_bytes(fixed(&rest[..8]));
            rest = &rest[8..];
            Some(ts)
        }
        _ => return Err(SetError::Corrupt("unsupported magic byte")),
    };
    let key = read_bytes(&mut rest)?;
    let value = read_bytes(&mut rest)?;
    if !rest.is_empty() {
        return Err(SetError::Corrupt("trailing bytes in message"));
    }
    Ok(Message {
        magic,
        attributes,
        timestamp,
        key,
        value,
        body,
    })
}

fn read_bytes<'a>(rest: &mut &'a [u8]) -> Result<Option<&'a [u8]>, SetError> {
    if rest.len() < 4 {
        return Err(SetError::Corrupt("truncated length"));
    }
    let len = i32::from_be_bytes(fixed(&rest[..4]));
    *rest = &rest[4..];
    if len < 0 {
        return Ok(None);
    }
    let len = len as usize;
    if rest.len() < len {
        return Err(SetError::Corrupt("truncated key or value"));
    }
    let (v, tail) = rest.split_at(len);
    *rest = tail;
    Ok(Some(v))
}

/// One message set entry as stored and served: `offset, size, body`.
pub fn encode_entry(offset: i64, body: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(ENTRY_HEADER_LEN + body.len());
    b.put_i64(offset);
    b.put_i32(i32::try_from(body.len()).unwrap_or(i32::MAX));
    b.put_slice(body);
    b.freeze()
}

/// Builds a message body (from the CRC on).
pub fn build_message(
    magic: i8,
    attributes: i8,
    timestamp: Option<i64>,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) -> Vec<u8> {
    let mut b = Vec::with_capacity(
        MIN_MESSAGE_LEN + 8 + key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len),
    );
    b.extend_from_slice(&[0; 4]);
    b.push(magic as u8);
    b.push(attributes as u8);
    if magic >= 1 {
        b.extend_from_slice(&timestamp.unwrap_or(-1).to_be_bytes());
    }
    for field in [key, value] {
        match field {
            Some(v) => {
                b.extend_from_slice(&i32::try_from(v.len()).unwrap_or(i32::MAX).to_be_bytes());
                b.extend_from_slice(v);
            }
            None => b.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    let crc = crc32fast::hash(&b[4..]);
    b[0..4].copy_from_slice(&crc.to_be_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compression::testing;

    fn set_of(msgs: &[(i64, Vec<u8>)]) -> Vec<u8> {
        msgs.iter()
            .flat_map(|(o, b)| encode_entry(*o, b).to_vec())
            .collect()
    }

    fn bodies(p: &[Prepared]) -> Vec<&[u8]> {
        p.iter().map(|e| &e.body[..]).collect()
    }

    #[test]
    fn uncompressed_messages_are_kept_byte_for_byte() {
        let m0 = build_message(0, 0, None, Some(b"k"), Some(b"v"));
        let m1 = build_message(1, 0, Some(123), None, Some(b"value"));
        let set = set_of(&[(0, m0.clone()), (0, m1.clone())]);
        let p = prepare(&set, 1 << 20).unwrap();
        assert_eq!(bodies(&p), [&m0[..], &m1[..]]);
        assert_eq!(p[1].timestamp, 123);
    }

    #[test]
    fn bad_crc_and_truncation_are_rejected() {
        let mut m = build_message(0, 0, None, Some(b"k"), Some(b"v"));
        let last = m.len() - 1;
        m[last] ^= 1;
        let e = prepare(&set_of(&[(0, m)]), 1 << 20).unwrap_err();
        assert_eq!(e.error_code(), error_code::CORRUPT_MESSAGE);

        let good = set_of(&[(0, build_message(0, 0, None, None, Some(b"v")))]);
        let e = prepare(&good[..good.len() - 1], 1 << 20).unwrap_err();
        assert_eq!(e.error_code(), error_code::CORRUPT_MESSAGE);
    }

    #[test]
    fn magic1_wrapper_with_relative_offsets_is_kept() {
        let inner = set_of(&[
            (0, build_message(1, 0, Some(1), Some(b"a"), Some(b"x"))),
            (1, build_message(1, 0, Some(2), Some(b"b"), Some(b"y"))),
        ]);
        for (attr, payload) in [
            (1, testing::gzip(&inner)),
            (2, testing::snappy_xerial(&inner)),
            (2, testing::snappy_raw(&inner)),
        ] {
            let w = build_message(1, attr, Some(2), None, Some(&payload));
            let p = prepare(&set_of(&[(0, w.clone())]), 1 << 20).unwrap();
            assert_eq!(bodies(&p), [&w[..]]);
            assert_eq!(p[0].count, 2);

            // Down-converted: two magic-0 messages with absolute offsets 10, 11.
            let mut out = Vec::new();
            down_convert(&encode_entry(11, &w), 10, 1 << 20, &mut out);
            let flat: Vec<u8> = out.iter().flat_map(|b| b.to_vec()).collect();
            let es = entries(&flat).unwrap();
            assert_eq!(es.iter().map(|e| e.0).collect::<Vec<_>>(), vec![10, 11]);
            let m = parse_message(es[1].1).unwrap();
            assert_eq!(
                (m.magic, m.key, m.value),
                (0, Some(&b"b"[..]), Some(&b"y"[..]))
            );
        }
    }

    #[test]
    fn magic0_wrapper_is_flattened() {
        let a = build_message(0, 0, None, Some(b"a"), Some(b"x"));
        let b = build_message(0, 0, None, None, Some(b"y"));
        let inner = set_of(&[(0, a.clone()), (0, b.clone())]);
        let w = build_message(0, 2, None, None, Some(&testing::snappy_raw(&inner)));
        let p = prepare(&set_of(&[(0, w)]), 1 << 20).unwrap();
        assert_eq!(bodies(&p), [&a[..], &b[..]]);
        assert_eq!(p[0].count, 1);
    }

    #[test]
    fn nested_or_mixed_magic_or_lz4_is_refused() {
        let inner = set_of(&[(0, build_message(0, 0, None, None, Some(b"x")))]);
        let w = build_message(1, 1, Some(0), None, Some(&testing::gzip(&inner)));
        assert_eq!(
            prepare(&set_of(&[(0, w)]), 1 << 20)
                .unwrap_err()
                .error_code(),
            error_code::CORRUPT_MESSAGE
        );
        let w = build_message(0, 3, None, None, Some(b"lz4?"));
        assert_eq!(
            prepare(&set_of(&[(0, w)]), 1 << 20)
                .unwrap_err()
                .error_code(),
            error_code::UNSUPPORTED_COMPRESSION_TYPE
        );
    }
}
