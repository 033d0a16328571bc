//! Fetch: reads each requested partition; with too little data to answer, waits for an
//! append (woken by the log, no polling) until the client's wait runs out.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Handled;
use super::storage::answer_each;
use crate::message_set;
use crate::protocol::fetch::{FetchPartitionResponse, FetchRequest, FetchResponse};
use crate::protocol::{Decoder, Request, Response, error_code};
use crate::state::State;

/// Upper bound on a fetch's wait, whatever the client asks.
const MAX_FETCH_WAIT: Duration = Duration::from_secs(300);

pub(super) async fn handle(
    state: &State,
    d: &mut Decoder<'_>,
    version: i16,
    shutdown: &CancellationToken,
) -> Handled {
    let req = FetchRequest::decode(d, version)?;
    let wait = Duration::from_millis(req.max_wait_ms.max(0) as u64).min(MAX_FETCH_WAIT);
    let deadline = Instant::now() + wait;
    // Subscribe before reading so an append between the read and the wait is not missed.
    let mut appended = state.log.subscribe();
    loop {
        appended.borrow_and_update();
        let (resp, bytes, had_error) = fetch_once(state, &req, version);
        let done = had_error
            || i64::try_from(bytes).unwrap_or(i64::MAX) >= i64::from(req.min_bytes)
            || Instant::now() >= deadline;
        if done {
            return Ok(Some(resp.encode(version)));
        }
        tokio::select! {
            r = appended.changed() => {
                if r.is_err() {
                    return Ok(Some(resp.encode(version)));
                }
            }
            () = tokio::time::sleep_until(deadline) => {}
            () = shutdown.cancelled() => return Ok(Some(resp.encode(version))),
        }
    }
}

fn fetch_once(state: &State, req: &FetchRequest, version: i16) -> (FetchResponse, usize, bool) {
    let mut total = 0usize;
    let mut had_error = false;
    let response_limit = usize::try_from(req.max_bytes).unwrap_or(0);
    let topics = answer_each(state, &req.topics, |_, p, partition| {
        let mut r = FetchPartitionResponse {
            index: p.index,
            error_code: error_code::NONE,
            high_watermark: -1,
            records: Vec::new(),
        };
        let Some(partition) = partition else {
            r.error_code = error_code::UNKNOWN_TOPIC_OR_PARTITION;
            had_error = true;
            return r;
        };
        if total > 0 && total >= response_limit {
            // v3 response limit reached: later partitions get nothing this time
            // (the first data always goes out, so a small limit cannot stall a
            // consumer).
            r.high_watermark = partition.log_end();
            return r;
        }
        let max = usize::try_from(p.max_bytes)
            .unwrap_or(0)
            .min(response_limit.saturating_sub(total));
        let read = partition.read(p.fetch_offset, max);
        r.high_watermark = read.high_watermark;
        if read.out_of_range {
            r.error_code = error_code::OFFSET_OUT_OF_RANGE;
            had_error = true;
        }
        total += read.bytes;
        for e in read.entries {
            if version >= 2 {
                r.records.push(e.data);
            } else {
                message_set::down_convert(&e.data, e.base, state.max_frame_bytes, &mut r.records);
            }
        }
        r
    });
    (FetchResponse { topics }, total, had_error)
}
