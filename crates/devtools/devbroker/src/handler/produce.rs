//! Produce: check every partition, append what passed (and sync it for acks=all) in one
//! storage step, then wake waiting fetches and answer (nothing at all for acks=0).

use lifecycle::ErrorChain;
use std::fs::File;
use std::sync::Arc;

use super::Handled;
use super::storage::{get_or_create_topic, sync_files, topic_error_code};
use crate::log::Topic;
use crate::message_set::{self, Prepared};
use crate::protocol::produce::{PartitionData, PartitionResponse, ProduceRequest, ProduceResponse};
use crate::protocol::{Decoder, Request, Response, TopicPartitions, error_code};
use crate::state::State;

/// A produced partition that passed the checks: what to append where.
struct Append {
    /// Its answer's position in the response: (topic, partition).
    slot: (usize, usize),
    topic: Arc<Topic>,
    partition: i32,
    units: Vec<Prepared>,
}

/// What the storage step of a produce did.
struct Written {
    /// Per append, in request order: the base offset, or the error code.
    results: Vec<((usize, usize), Result<i64, i16>)>,
    /// False if the acks=all `fdatasync` failed.
    synced: bool,
}

/// Produce: check every partition, append what passed (and sync it for acks=all) in one
/// storage step, then wake waiting fetches and answer.
pub(super) async fn handle(state: &Arc<State>, d: &mut Decoder<'_>, version: i16) -> Handled {
    let req = ProduceRequest::decode(d, version)?;
    let topics = resolve_produce_topics(state, &req).await;
    let (mut resp, appends) = check_produce(state, &req, &topics);
    let written = write_appends(state, appends, req.acks == -1).await;
    if record_written(&mut resp, written) {
        state.log.notify_appended();
    }
    if req.acks == 0 {
        return Ok(None);
    }
    Ok(Some(resp.encode(version)))
}

/// Each produced topic, auto-created if missing, or the error code all its partitions
/// get. With invalid acks nothing is created.
async fn resolve_produce_topics(
    state: &Arc<State>,
    req: &ProduceRequest<'_>,
) -> Vec<Result<Arc<Topic>, i16>> {
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        topics.push(if matches!(req.acks, -1..=1) {
            get_or_create_topic(state, &t.name)
                .await
                .map_err(|e| topic_error_code(&e))
        } else {
            Err(error_code::INVALID_REQUIRED_ACKS)
        });
    }
    topics
}

/// The response with every refused partition's error code filled in (the rest still
/// NONE, offset -1), and the appends to make for the others.
fn check_produce(
    state: &State,
    req: &ProduceRequest<'_>,
    topics: &[Result<Arc<Topic>, i16>],
) -> (ProduceResponse, Vec<Append>) {
    let mut resp = ProduceResponse::default();
    let mut appends = Vec::new();
    for (ti, (t, topic)) in req.topics.iter().zip(topics).enumerate() {
        let mut parts = Vec::with_capacity(t.partitions.len());
        for (pi, p) in t.partitions.iter().enumerate() {
            let error_code = match check_partition(state, &t.name, topic, p) {
                Ok((topic, units)) => {
                    appends.push(Append {
                        slot: (ti, pi),
                        topic,
                        partition: p.index,
                        units,
                    });
                    error_code::NONE
                }
                Err(code) => code,
            };
            parts.push(PartitionResponse {
                index: p.index,
                error_code,
                base_offset: -1,
            });
        }
        resp.topics.push(TopicPartitions {
            name: t.name.clone(),
            partitions: parts,
        });
    }
    (resp, appends)
}

/// One produced partition: its topic and validated messages, or the error code.
fn check_partition(
    state: &State,
    topic_name: &str,
    topic: &Result<Arc<Topic>, i16>,
    p: &PartitionData<'_>,
) -> Result<(Arc<Topic>, Vec<Prepared>), i16> {
    let topic = topic.as_ref().map_err(|&code| code)?;
    if topic.partition(p.index).is_none() {
        return Err(error_code::UNKNOWN_TOPIC_OR_PARTITION);
    }
    match p
        .records
        .map(|s| message_set::prepare(s, state.max_frame_bytes))
    {
        Some(Ok(units)) if !units.is_empty() => Ok((topic.clone(), units)),
        Some(Ok(_)) | None => Err(error_code::CORRUPT_MESSAGE),
        Some(Err(e)) => {
            tracing::warn!(topic = %topic_name, partition = p.index, error = %ErrorChain(&e), "refused message set");
            Err(e.error_code())
        }
    }
}

/// The storage step of a produce: every append in request order, then for acks=all
/// (`sync`) one `fdatasync` per file touched, so the ack means "on disk". Nothing to
/// append means no storage step at all. `None` if the step did not finish.
async fn write_appends(state: &Arc<State>, appends: Vec<Append>, sync: bool) -> Option<Written> {
    if appends.is_empty() {
        return Some(Written {
            results: Vec::new(),
            synced: true,
        });
    }
    let written = state
        .storage(move |_| {
            let mut to_sync = Vec::new();
            let results = appends
                .into_iter()
                .map(|a| (a.slot, append_one(a, &mut to_sync)))
                .collect();
            let synced = !sync || sync_files(to_sync);
            Written { results, synced }
        })
        .await;
    match written {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::error!(error = %ErrorChain(&e), "produce storage step failed");
            None
        }
    }
}

/// Appends one partition's messages: the base offset (the file to sync is pushed to
/// `to_sync`), or the error code.
fn append_one(a: Append, to_sync: &mut Vec<Arc<File>>) -> Result<i64, i16> {
    let Some(partition) = a.topic.partition(a.partition) else {
        return Err(error_code::UNKNOWN_TOPIC_OR_PARTITION);
    };
    match partition.append(a.units) {
        Ok(appended) => {
            to_sync.extend(appended.file);
            Ok(appended.base_offset)
        }
        Err(e) => {
            tracing::error!(topic = %a.topic.name, partition = a.partition, error = %ErrorChain(&e), "append failed");
            Err(error_code::UNKNOWN_SERVER_ERROR)
        }
    }
}

/// Puts the storage step's results into the response. Returns whether anything may have
/// been appended (then waiting fetches must be woken).
fn record_written(resp: &mut ProduceResponse, written: Option<Written>) -> bool {
    let Some(written) = written else {
        // Unknown how far it got: fail what was not refused, and wake fetches anyway.
        fail_remaining(resp);
        return true;
    };
    let mut appended_any = false;
    for ((ti, pi), result) in written.results {
        let Some(r) = resp
            .topics
            .get_mut(ti)
            .and_then(|t| t.partitions.get_mut(pi))
        else {
            continue;
        };
        match result {
            Ok(base_offset) => {
                r.base_offset = base_offset;
                appended_any = true;
            }
            Err(code) => r.error_code = code,
        }
    }
    if !written.synced {
        fail_remaining(resp);
    }
    appended_any
}

/// Sets every partition still marked fine to UNKNOWN_SERVER_ERROR.
fn fail_remaining(resp: &mut ProduceResponse) {
    for p in resp.topics.iter_mut().flat_map(|t| t.partitions.iter_mut()) {
        if p.error_code == error_code::NONE {
            p.error_code = error_code::UNKNOWN_SERVER_ERROR;
        }
    }
}
