//! Down-conversion of stored entries to magic 0, for clients that fetch at Fetch v0/v1
//! and cannot read magic 1 (the `kafka` crate).

use bytes::Bytes;
use lifecycle::ErrorChain;

use super::{Message, SetError, build_message, encode_entry, entries, parse_message};
use crate::compression::Codec;

/// Attribute bit 3 (magic 1): timestamp is LogAppendTime.
const TIMESTAMP_TYPE_BIT: i8 = 0x08;

/// Converts a stored entry to magic 0 for Fetch v0/v1 (clients that cannot read magic
/// 1, e.g. the `kafka` crate). `base` is the entry's first offset. Magic-0 entries pass
/// through; magic-1 messages are rebuilt without timestamp; a magic-1 wrapper is expanded
/// into uncompressed magic-0 messages with absolute offsets.
pub fn down_convert(data: &Bytes, base: i64, limit: usize, out: &mut Vec<Bytes>) {
    match down_convert_inner(data, base, limit, out) {
        Ok(()) => {}
        // Stored entries were validated on the way in; failing here means a disk
        // corruption the recovery CRC did not catch. Serve it raw rather than drop it.
        Err(e) => {
            tracing::warn!(error = %ErrorChain(&e), base, "cannot down-convert stored entry; serving as is");
            out.push(data.clone());
        }
    }
}

fn down_convert_inner(
    data: &Bytes,
    base: i64,
    limit: usize,
    out: &mut Vec<Bytes>,
) -> Result<(), SetError> {
    let list = entries(data)?;
    let Some(&(offset, body)) = list.first() else {
        return Ok(());
    };
    let msg = parse_message(body)?;
    if msg.magic == 0 {
        out.push(data.clone());
        return Ok(());
    }
    let to_v0 = |m: &Message<'_>| {
        build_message(
            0,
            m.attributes & !TIMESTAMP_TYPE_BIT & !0x07,
            None,
            m.key,
            m.value,
        )
    };
    match msg.codec() {
        Some(Codec::None) => out.push(encode_entry(offset, &to_v0(&msg))),
        Some(codec) => {
            let inner_set = msg.inner_set(codec, limit)?;
            for (rel, ibody) in entries(&inner_set)? {
                let im = parse_message(ibody)?;
                out.push(encode_entry(base + rel, &to_v0(&im)));
            }
        }
        None => return Err(SetError::UnsupportedCodec(msg.attributes)),
    }
    Ok(())
}
