//! Decompression of wrapper-message payloads: gzip, and snappy both raw and in the
//! xerial/snappy-java stream framing that Java clients, librdkafka and the `kafka` crate
//! use. The broker never recompresses: compressed sets it cannot keep as they are are
//! stored flattened (see [`crate::message_set`]).

use std::io::Read;

/// Compression codec in the low three attribute bits of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    None,
    Gzip,
    Snappy,
    Lz4,
}

impl Codec {
    pub fn from_attributes(attributes: i8) -> Option<Codec> {
        match attributes & 0x07 {
            0 => Some(Codec::None),
            1 => Some(Codec::Gzip),
            2 => Some(Codec::Snappy),
            3 => Some(Codec::Lz4),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DecompressError {
    #[error("gzip: {0}")]
    Gzip(std::io::Error),
    #[error("snappy")]
    Snappy(#[from] snap::Error),
    #[error("snappy-java framing: {0}")]
    Framing(&'static str),
    #[error("decompressed data exceeds the {0} byte limit")]
    TooLarge(usize),
    #[error("codec {0:?} is not supported")]
    Unsupported(Codec),
}

/// The snappy-java stream header: magic, then version and compatible version (int32 each).
const XERIAL_MAGIC: &[u8] = &[0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
const XERIAL_HEADER_LEN: usize = 16;

/// Decompresses `data` with `codec`, refusing output larger than `limit` (a compressed
/// frame must not become an unbounded allocation).
pub fn decompress(codec: Codec, data: &[u8], limit: usize) -> Result<Vec<u8>, DecompressError> {
    match codec {
        Codec::None => Ok(data.to_vec()),
        Codec::Gzip => gunzip(data, limit),
        Codec::Snappy => unsnappy(data, limit),
        Codec::Lz4 => Err(DecompressError::Unsupported(codec)),
    }
}

fn gunzip(data: &[u8], limit: usize) -> Result<Vec<u8>, DecompressError> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(data)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(DecompressError::Gzip)?;
    if out.len() > limit {
        return Err(DecompressError::TooLarge(limit));
    }
    Ok(out)
}

fn unsnappy(data: &[u8], limit: usize) -> Result<Vec<u8>, DecompressError> {
    if !data.starts_with(XERIAL_MAGIC) {
        return snappy_block(data, limit, Vec::new());
    }
    if data.len() < XERIAL_HEADER_LEN {
        return Err(DecompressError::Framing("truncated header"));
    }
    let mut rest = &data[XERIAL_HEADER_LEN..];
    let mut out = Vec::new();
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err(DecompressError::Framing("truncated chunk length"));
        }
        let (len_bytes, tail) = rest.split_at(4);
        let len = i32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
        let len = usize::try_from(len).map_err(|_| DecompressError::Framing("negative chunk"))?;
        if tail.len() < len {
            return Err(DecompressError::Framing("truncated chunk"));
        }
        let (chunk, tail) = tail.split_at(len);
        out = snappy_block(chunk, limit, out)?;
        rest = tail;
    }
    Ok(out)
}

/// Decompresses one raw snappy block, appending to `out`.
fn snappy_block(block: &[u8], limit: usize, mut out: Vec<u8>) -> Result<Vec<u8>, DecompressError> {
    let n = snap::raw::decompress_len(block)?;
    let start = out.len();
    if start + n > limit {
        return Err(DecompressError::TooLarge(limit));
    }
    out.resize(start + n, 0);
    let written = snap::raw::Decoder::new().decompress(block, &mut out[start..])?;
    out.truncate(start + written);
    Ok(out)
}

/// Test helpers that produce what clients send.
#[cfg(test)]
pub(crate) mod testing {
    use std::io::Write;

    pub fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    pub fn snappy_raw(data: &[u8]) -> Vec<u8> {
        snap::raw::Encoder::new().compress_vec(data).unwrap()
    }

    /// snappy-java framing with small chunks so multi-chunk decoding is exercised.
    pub fn snappy_xerial(data: &[u8]) -> Vec<u8> {
        let mut out = super::XERIAL_MAGIC.to_vec();
        out.extend_from_slice(&1i32.to_be_bytes());
        out.extend_from_slice(&1i32.to_be_bytes());
        for chunk in data.chunks(7) {
            let c = snappy_raw(chunk);
            out.extend_from_slice(&(c.len() as i32).to_be_bytes());
            out.extend_from_slice(&c);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_limits() {
        let data = b"hello hello hello hello, compressed world".repeat(3);
        for (codec, c) in [
            (Codec::Gzip, testing::gzip(&data)),
            (Codec::Snappy, testing::snappy_raw(&data)),
            (Codec::Snappy, testing::snappy_xerial(&data)),
        ] {
            assert_eq!(decompress(codec, &c, 1 << 20).unwrap(), data);
            assert!(matches!(
                decompress(codec, &c, 10),
                Err(DecompressError::TooLarge(10))
            ));
        }
        assert!(decompress(Codec::Gzip, b"not gzip", 100).is_err());
        assert!(decompress(Codec::Snappy, b"\x82SNAPPY\0\0\0\0\x01", 100).is_err());
    }
}
