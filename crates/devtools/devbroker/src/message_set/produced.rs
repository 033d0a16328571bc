//! What a produced message set becomes ([`prepare`]): every message checked (CRC,
//! layout, codec), and each compressed wrapper kept as sent or flattened into its inner
//! messages, as the [`super`] module describes.

use bytes::Bytes;

use super::{Message, SetError, entries, parse_message};
use crate::compression::Codec;

/// A validated unit ready to be given offsets and appended.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The message body (from the CRC on).
    pub body: Bytes,
    /// How many offsets it takes: 1, or the inner count of a kept compressed wrapper.
    pub count: i64,
    /// Magic 1 timestamp, -1 if none.
    pub timestamp: i64,
}

/// Validates a produced message set and turns it into units to append (see the module
/// doc for what is kept and what is flattened). `limit` bounds decompressed sizes.
pub fn prepare(set: &[u8], limit: usize) -> Result<Vec<Prepared>, SetError> {
    let mut out = Vec::new();
    for (_, body) in entries(set)? {
        let msg = parse_message(body)?;
        let codec = msg
            .codec()
            .ok_or(SetError::UnsupportedCodec(msg.attributes))?;
        if codec == Codec::None {
            out.push(single(&msg));
            continue;
        }
        let inner_set = msg.inner_set(codec, limit)?;
        let inner_entries = entries(&inner_set)?;
        if inner_entries.is_empty() {
            return Err(SetError::Corrupt("empty compressed set"));
        }
        let mut inner = Vec::with_capacity(inner_entries.len());
        let mut sequential = true;
        for (i, (offset, ibody)) in inner_entries.iter().enumerate() {
            let im = parse_message(ibody)?;
            if im.magic != msg.magic {
                return Err(SetError::Corrupt("inner magic differs from wrapper"));
            }
            if im.codec() != Some(Codec::None) {
                return Err(SetError::Corrupt("nested compression"));
            }
            sequential &= *offset == i as i64;
            inner.push(single(&im));
        }
        if msg.magic == 1 && sequential {
            out.push(Prepared {
                body: Bytes::copy_from_slice(body),
                count: inner.len() as i64,
                timestamp: msg.timestamp.unwrap_or(-1),
            });
        } else {
            out.extend(inner);
        }
    }
    Ok(out)
}

fn single(msg: &Message<'_>) -> Prepared {
    Prepared {
        body: Bytes::copy_from_slice(msg.body),
        count: 1,
        timestamp: msg.timestamp.unwrap_or(-1),
    }
}
