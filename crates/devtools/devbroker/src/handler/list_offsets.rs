//! ListOffsets: a partition's log end, log start, or the first offset at or after a
//! time.

use super::Handled;
use super::storage::answer_each;
use crate::protocol::list_offsets::{
    EARLIEST, LATEST, ListOffsetsPartitionResponse, ListOffsetsRequest, ListOffsetsResponse,
};
use crate::protocol::{Decoder, Request, Response, error_code};
use crate::state::State;

pub(super) fn handle(state: &State, d: &mut Decoder<'_>, version: i16) -> Handled {
    let req = ListOffsetsRequest::decode(d, version)?;
    let topics = answer_each(state, &req.topics, |_, p, partition| {
        let mut r = ListOffsetsPartitionResponse {
            index: p.index,
            error_code: error_code::NONE,
            offset: -1,
            timestamp: -1,
            max_num_offsets: p.max_num_offsets,
        };
        match partition {
            None => r.error_code = error_code::UNKNOWN_TOPIC_OR_PARTITION,
            Some(part) => match p.timestamp {
                LATEST => r.offset = part.log_end(),
                EARLIEST => r.offset = part.log_start(),
                ts => match part.offset_for_time(ts) {
                    Some((o, found_ts)) => {
                        r.offset = o;
                        r.timestamp = found_ts;
                    }
                    None if version == 0 => r.offset = part.log_end(),
                    None => {}
                },
            },
        }
        r
    });
    Ok(Some(ListOffsetsResponse { topics }.encode(version)))
}
