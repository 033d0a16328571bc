//! OffsetFetch: a group's committed offset (and metadata) per partition, -1 where it
//! has none.

use super::Handled;
use crate::protocol::offset_fetch::{
    OffsetFetchPartition, OffsetFetchRequest, OffsetFetchResponse,
};
use crate::protocol::{Decoder, Request, Response, error_code};
use crate::state::State;

pub(super) fn handle(state: &State, d: &mut Decoder<'_>, version: i16) -> Handled {
    let req = OffsetFetchRequest::decode(d, version)?;
    let topics = req
        .topics
        .iter()
        .map(|t| {
            t.map(|&index| {
                let c = state.offsets.get(&req.group_id, &t.name, index);
                OffsetFetchPartition {
                    index,
                    offset: c.as_ref().map_or(-1, |c| c.offset),
                    metadata: c.map(|c| c.metadata).unwrap_or_default(),
                    error_code: error_code::NONE,
                }
            })
        })
        .collect();
    Ok(Some(OffsetFetchResponse { topics }.encode(version)))
}
