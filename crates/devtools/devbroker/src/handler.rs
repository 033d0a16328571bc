//! Request handling: decodes one request frame, runs it against the log and the offset
//! store, and encodes the response. One function per API.

use std::collections::HashMap;
use std::fs::File;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::log::{Log, MAX_PARTITIONS, StorageError, valid_topic_name};
use crate::message_set;
use crate::offsets::{self, Commit, OffsetStore};
use crate::protocol::create_topics::{
    CreatableTopic, CreatableTopicResult, CreateTopicsRequest, CreateTopicsResponse,
};
use crate::protocol::fetch::{
    FetchPartitionResponse, FetchRequest, FetchResponse, FetchTopicResponse,
};
use crate::protocol::find_coordinator::{FindCoordinatorRequest, FindCoordinatorResponse};
use crate::protocol::list_offsets::{
    EARLIEST, LATEST, ListOffsetsPartitionResponse, ListOffsetsRequest, ListOffsetsResponse,
    ListOffsetsTopicResponse,
};
use crate::protocol::metadata::{MetadataRequest, MetadataResponse, TopicMetadata};
use crate::protocol::offset_commit::{OffsetCommitRequest, OffsetCommitResponse};
use crate::protocol::offset_fetch::{
    OffsetFetchPartition, OffsetFetchRequest, OffsetFetchResponse,
};
use crate::protocol::produce::{PartitionResponse, ProduceRequest, ProduceResponse, TopicResponse};
use crate::protocol::{
    DecodeError, Decoder, Encoder, RequestHeader, api_key, api_versions, error_code,
    frame_response, supported_versions,
};

/// The single node's id.
pub const NODE_ID: i32 = 0;
/// Upper bound on a fetch's wait, whatever the client asks.
const MAX_FETCH_WAIT: Duration = Duration::from_secs(300);

/// Shared broker state.
pub struct State {
    pub log: Log,
    pub offsets: OffsetStore,
    /// Limit on a frame and on a decompressed message set.
    pub max_frame_bytes: usize,
}

/// Where clients should reach this broker, as seen on one connection.
#[derive(Debug, Clone)]
pub struct Advertised {
    pub host: String,
    pub port: i32,
}

/// What to do after a request.
pub enum Outcome {
    Respond(Bytes),
    /// Produce with acks=0.
    NoResponse,
    /// The request cannot be answered (malformed, unknown key/version): close.
    Close(String),
}

pub async fn handle(
    state: &State,
    me: &Advertised,
    frame: &[u8],
    shutdown: &mut watch::Receiver<bool>,
) -> Outcome {
    let mut d = Decoder::new(frame);
    let (key, version, correlation_id) = match RequestHeader::decode_prefix(&mut d) {
        Ok(h) => h,
        Err(e) => return Outcome::Close(format!("bad request header: {e}")),
    };
    if key == api_key::API_VERSIONS {
        // Any version gets an answer, the way Kafka does it (see protocol::api_versions).
        let body = api_versions::encode_response(version).into_bytes();
        return Outcome::Respond(frame_response(correlation_id, &body));
    }
    match supported_versions(key) {
        None => return Outcome::Close(format!("unknown api key {key}")),
        Some((min, max)) if version < min || version > max => {
            return Outcome::Close(format!(
                "unsupported version {version} of api key {key} (supported {min}-{max})"
            ));
        }
        Some(_) => {}
    }
    if let Err(e) = d.nullable_string("client_id") {
        return Outcome::Close(format!("bad request header: {e}"));
    }
    let result = match key {
        api_key::PRODUCE => produce(state, &mut d, version).await,
        api_key::FETCH => fetch(state, &mut d, version, shutdown).await,
        api_key::LIST_OFFSETS => list_offsets(state, &mut d, version),
        api_key::METADATA => metadata(state, me, &mut d, version),
        api_key::OFFSET_COMMIT => offset_commit(state, &mut d, version).await,
        api_key::OFFSET_FETCH => offset_fetch(state, &mut d, version),
        api_key::FIND_COORDINATOR => find_coordinator(me, &mut d, version),
        api_key::CREATE_TOPICS => create_topics(state, &mut d, version),
        _ => return Outcome::Close(format!("unknown api key {key}")),
    };
    match result {
        Ok(Some(body)) => Outcome::Respond(frame_response(correlation_id, &body.into_bytes())),
        Ok(None) => Outcome::NoResponse,
        Err(e) => Outcome::Close(format!("malformed request (api key {key} v{version}): {e}")),
    }
}

type Handled = Result<Option<Encoder>, DecodeError>;

fn topic_error_code(e: &StorageError) -> i16 {
    match e {
        StorageError::InvalidTopic(_) => error_code::INVALID_TOPIC_EXCEPTION,
        _ => error_code::UNKNOWN_SERVER_ERROR,
    }
}

/// `fdatasync`s each distinct file once, off the async threads.
async fn sync_files(files: Vec<Arc<File>>) -> bool {
    let mut distinct: Vec<Arc<File>> = Vec::new();
    for f in files {
        if !distinct.iter().any(|d| Arc::ptr_eq(d, &f)) {
            distinct.push(f);
        }
    }
    if distinct.is_empty() {
        return true;
    }
    let res = tokio::task::spawn_blocking(move || {
        distinct
            .iter()
            .map(|f| f.sync_data())
            .collect::<Result<Vec<()>, _>>()
    })
    .await;
    match res {
        Ok(Ok(_)) => true,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "fdatasync failed");
            false
        }
        Err(e) => {
            tracing::error!(error = %e, "fdatasync task failed");
            false
        }
    }
}

async fn produce(state: &State, d: &mut Decoder<'_>, version: i16) -> Handled {
    let req = ProduceRequest::decode(d, version)?;
    let valid_acks = matches!(req.acks, -1..=1);
    let mut resp = ProduceResponse::default();
    let mut to_sync = Vec::new();
    let mut appended_any = false;
    for t in &req.topics {
        let topic = if valid_acks {
            state.log.get_or_create(&t.name, None)
        } else {
            Err(StorageError::InvalidTopic(String::new()))
        };
        let mut parts = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let mut r = PartitionResponse {
                index: p.index,
                error_code: error_code::NONE,
                base_offset: -1,
            };
            let partition = match &topic {
                _ if !valid_acks => {
                    r.error_code = error_code::INVALID_REQUIRED_ACKS;
                    parts.push(r);
                    continue;
                }
                Err(e) => {
                    r.error_code = topic_error_code(e);
                    parts.push(r);
                    continue;
                }
                Ok(topic) => topic.partition(p.index),
            };
            let Some(partition) = partition else {
                r.error_code = error_code::UNKNOWN_TOPIC_OR_PARTITION;
                parts.push(r);
                continue;
            };
            let units = match p
                .records
                .map(|s| message_set::prepare(s, state.max_frame_bytes))
            {
                Some(Ok(units)) if !units.is_empty() => units,
                Some(Ok(_)) | None => {
                    r.error_code = error_code::CORRUPT_MESSAGE;
                    parts.push(r);
                    continue;
                }
                Some(Err(e)) => {
                    tracing::warn!(topic = %t.name, partition = p.index, error = %e, "refused message set");
                    r.error_code = e.error_code();
                    parts.push(r);
                    continue;
                }
            };
            match partition.append(units) {
                Ok(a) => {
                    r.base_offset = a.base_offset;
                    appended_any = true;
                    if req.acks == -1 {
                        to_sync.extend(a.file);
                    }
                }
                Err(e) => {
                    tracing::error!(topic = %t.name, partition = p.index, error = %e, "append failed");
                    r.error_code = error_code::UNKNOWN_SERVER_ERROR;
                }
            }
            parts.push(r);
        }
        resp.topics.push(TopicResponse {
            name: t.name.clone(),
            partitions: parts,
        });
    }
    // acks=all: on disk (fdatasync) before the ack; acks=1/0: written to the OS.
    if !to_sync.is_empty() && !sync_files(to_sync).await {
        for t in &mut resp.topics {
            for p in &mut t.partitions {
                if p.error_code == error_code::NONE {
                    p.error_code = error_code::UNKNOWN_SERVER_ERROR;
                }
            }
        }
    }
    if appended_any {
        state.log.notify_appended();
    }
    if req.acks == 0 {
        return Ok(None);
    }
    Ok(Some(resp.encode(version)))
}

async fn fetch(
    state: &State,
    d: &mut Decoder<'_>,
    version: i16,
    shutdown: &mut watch::Receiver<bool>,
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
            () = crate::server::stopped(shutdown) => return Ok(Some(resp.encode(version))),
        }
    }
}

fn fetch_once(state: &State, req: &FetchRequest, version: i16) -> (FetchResponse, usize, bool) {
    let mut resp = FetchResponse::default();
    let mut total = 0usize;
    let mut had_error = false;
    let response_limit = usize::try_from(req.max_bytes).unwrap_or(0);
    for t in &req.topics {
        let topic = state.log.topic(&t.name);
        let mut parts = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let mut r = FetchPartitionResponse {
                index: p.index,
                error_code: error_code::NONE,
                high_watermark: -1,
                records: Vec::new(),
            };
            let Some(partition) = topic.as_ref().and_then(|t| t.partition(p.index)) else {
                r.error_code = error_code::UNKNOWN_TOPIC_OR_PARTITION;
                had_error = true;
                parts.push(r);
                continue;
            };
            if total > 0 && total >= response_limit {
                // v3 response limit reached: later partitions get nothing this time (the
                // first data always goes out, so a small limit cannot stall a consumer).
                r.high_watermark = partition.log_end();
                parts.push(r);
                continue;
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
                    message_set::down_convert(
                        &e.data,
                        e.base,
                        state.max_frame_bytes,
                        &mut r.records,
                    );
                }
            }
            parts.push(r);
        }
        resp.topics.push(FetchTopicResponse {
            name: t.name.clone(),
            partitions: parts,
        });
    }
    (resp, total, had_error)
}

fn list_offsets(state: &State, d: &mut Decoder<'_>, version: i16) -> Handled {
    let req = ListOffsetsRequest::decode(d, version)?;
    let mut resp = ListOffsetsResponse::default();
    for t in &req.topics {
        let topic = state.log.topic(&t.name);
        let parts = t
            .partitions
            .iter()
            .map(|p| {
                let mut r = ListOffsetsPartitionResponse {
                    index: p.index,
                    error_code: error_code::NONE,
                    offset: -1,
                    timestamp: -1,
                    max_num_offsets: p.max_num_offsets,
                };
                match topic.as_ref().and_then(|t| t.partition(p.index)) {
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
            })
            .collect();
        resp.topics.push(ListOffsetsTopicResponse {
            name: t.name.clone(),
            partitions: parts,
        });
    }
    Ok(Some(resp.encode(version)))
}

fn metadata(state: &State, me: &Advertised, d: &mut Decoder<'_>, version: i16) -> Handled {
    let req = MetadataRequest::decode(d, version)?;
    let topics = match req.topics {
        None => state
            .log
            .topic_list()
            .into_iter()
            .map(|(name, partitions)| TopicMetadata {
                error_code: error_code::NONE,
                name,
                partitions,
            })
            .collect(),
        // Naming a topic creates it, like Kafka's auto.create.topics.enable.
        Some(names) => names
            .into_iter()
            .map(|name| match state.log.get_or_create(&name, None) {
                Ok(t) => TopicMetadata {
                    error_code: error_code::NONE,
                    partitions: t.partition_count(),
                    name,
                },
                Err(e) => {
                    tracing::warn!(topic = %name, error = %e, "metadata for a topic that cannot be created");
                    TopicMetadata {
                        error_code: topic_error_code(&e),
                        partitions: 0,
                        name,
                    }
                }
            })
            .collect(),
    };
    let resp = MetadataResponse {
        node_id: NODE_ID,
        host: me.host.clone(),
        port: me.port,
        topics,
    };
    Ok(Some(resp.encode(version)))
}

async fn offset_commit(state: &State, d: &mut Decoder<'_>, version: i16) -> Handled {
    let req = OffsetCommitRequest::decode(d, version)?;
    let mut codes: Vec<(String, Vec<(i32, i16)>)> = Vec::new();
    let mut commits = Vec::new();
    for t in &req.topics {
        let topic = state.log.topic(&t.name);
        let mut parts = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let meta = p.metadata.as_deref().unwrap_or("");
            let code = if req.group_id.is_empty() {
                error_code::INVALID_GROUP_ID
            } else if topic.as_ref().and_then(|t| t.partition(p.index)).is_none() {
                error_code::UNKNOWN_TOPIC_OR_PARTITION
            } else if meta.len() > offsets::MAX_METADATA_LEN {
                error_code::OFFSET_METADATA_TOO_LARGE
            } else {
                commits.push(Commit {
                    topic: &t.name,
                    partition: p.index,
                    offset: p.offset,
                    metadata: meta,
                });
                error_code::NONE
            };
            parts.push((p.index, code));
        }
        codes.push((t.name.clone(), parts));
    }
    let ok = if commits.is_empty() {
        true
    } else {
        match state.offsets.commit(&req.group_id, &commits) {
            Ok(file) => sync_files(file.into_iter().collect()).await,
            Err(e) => {
                tracing::error!(group = %req.group_id, error = %e, "offset commit write failed");
                false
            }
        }
    };
    if !ok {
        for (_, parts) in &mut codes {
            for (_, code) in parts.iter_mut() {
                if *code == error_code::NONE {
                    *code = error_code::UNKNOWN_SERVER_ERROR;
                }
            }
        }
    }
    Ok(Some(OffsetCommitResponse { topics: codes }.encode(version)))
}

fn offset_fetch(state: &State, d: &mut Decoder<'_>, version: i16) -> Handled {
    let req = OffsetFetchRequest::decode(d, version)?;
    let topics = req
        .topics
        .iter()
        .map(|(name, parts)| {
            let parts = parts
                .iter()
                .map(|&index| {
                    let c = state.offsets.get(&req.group_id, name, index);
                    OffsetFetchPartition {
                        index,
                        offset: c.as_ref().map_or(-1, |c| c.offset),
                        metadata: c.map(|c| c.metadata).unwrap_or_default(),
                        error_code: error_code::NONE,
                    }
                })
                .collect();
            (name.clone(), parts)
        })
        .collect();
    Ok(Some(OffsetFetchResponse { topics }.encode(version)))
}

fn find_coordinator(me: &Advertised, d: &mut Decoder<'_>, version: i16) -> Handled {
    let _req = FindCoordinatorRequest::decode(d, version)?;
    let resp = FindCoordinatorResponse {
        error_code: error_code::NONE,
        node_id: NODE_ID,
        host: me.host.clone(),
        port: me.port,
    };
    Ok(Some(resp.encode(version)))
}

/// CreateTopics: creates each topic through the log (serialised with auto-creation), or
/// with `validate_only` only checks it. One result per distinct name, in request order;
/// a name given twice is refused, as Kafka does.
fn create_topics(state: &State, d: &mut Decoder<'_>, version: i16) -> Handled {
    let req = CreateTopicsRequest::decode(d, version)?;
    let mut occurrences: HashMap<&str, usize> = HashMap::with_capacity(req.topics.len());
    for t in &req.topics {
        *occurrences.entry(t.name.as_str()).or_default() += 1;
    }
    let mut resp = CreateTopicsResponse::default();
    for t in &req.topics {
        // Each name is answered once: at its first occurrence, which takes it out.
        let Some(n) = occurrences.remove(t.name.as_str()) else {
            continue;
        };
        let outcome = if n > 1 {
            Err((
                error_code::INVALID_REQUEST,
                "Found multiple entries for this topic.".to_owned(),
            ))
        } else {
            create_topic(state, t, req.validate_only)
        };
        let (error_code, error_message) = match outcome {
            Ok(()) => (error_code::NONE, None),
            Err((code, message)) => {
                tracing::debug!(topic = %t.name, code, %message, "topic not created");
                (code, Some(message))
            }
        };
        resp.topics.push(CreatableTopicResult {
            name: t.name.clone(),
            error_code,
            error_message,
        });
    }
    Ok(Some(resp.encode(version)))
}

/// Checks one topic of a CreateTopics request and, unless `validate_only`, creates it.
/// Errors are `(error code, message)` with Kafka's codes and, mostly, its wording.
fn create_topic(
    state: &State,
    t: &CreatableTopic,
    validate_only: bool,
) -> Result<(), (i16, String)> {
    if !valid_topic_name(&t.name) {
        return Err((
            error_code::INVALID_TOPIC_EXCEPTION,
            format!(
                "Topic name {:?} is illegal: it must be 1-249 characters of ASCII \
                 alphanumerics, '.', '_' and '-', and not '.' or '..'.",
                t.name
            ),
        ));
    }
    if state.log.topic(&t.name).is_some() {
        return Err(already_exists(&t.name));
    }
    let partitions = if t.assignments.is_empty() {
        if t.num_partitions == 0 || t.num_partitions < -1 {
            return Err((
                error_code::INVALID_PARTITIONS,
                "Number of partitions must be larger than 0.".to_owned(),
            ));
        }
        match t.replication_factor {
            -1 | 1 => {}
            r if r < 1 => {
                return Err((
                    error_code::INVALID_REPLICATION_FACTOR,
                    "Replication factor must be larger than 0.".to_owned(),
                ));
            }
            r => {
                return Err((
                    error_code::INVALID_REPLICATION_FACTOR,
                    format!("Replication factor: {r} larger than available brokers: 1."),
                ));
            }
        }
        (t.num_partitions != -1).then_some(t.num_partitions)
    } else {
        if t.num_partitions != -1 || t.replication_factor != -1 {
            return Err((
                error_code::INVALID_REQUEST,
                "Both numPartitions or replicationFactor and replicasAssignments were set. \
                 Both cannot be used at the same time."
                    .to_owned(),
            ));
        }
        Some(check_assignment(&t.assignments)?)
    };
    let Some(partitions) = state.log.resolve_partitions(partitions) else {
        return Err((
            error_code::INVALID_PARTITIONS,
            format!("Number of partitions must be at most {MAX_PARTITIONS} on devbroker."),
        ));
    };
    if !t.configs.is_empty() {
        tracing::info!(
            topic = %t.name,
            configs = t.configs.len(),
            "ignoring topic configs: devbroker has no per-topic settings"
        );
    }
    if validate_only {
        return Ok(());
    }
    match state.log.create(&t.name, Some(partitions)) {
        Ok(_) => Ok(()),
        // Created by someone else (e.g. auto-creation) since the check above.
        Err(StorageError::TopicExists(_)) => Err(already_exists(&t.name)),
        Err(e) => {
            tracing::error!(topic = %t.name, error = %e, "creating topic failed");
            Err((
                topic_error_code(&e),
                format!("Cannot create the topic: {e}"),
            ))
        }
    }
}

fn already_exists(name: &str) -> (i16, String) {
    (
        error_code::TOPIC_ALREADY_EXISTS,
        format!("Topic '{name}' already exists."),
    )
}

/// A manual assignment on the single node: partitions 0..n, each on exactly this node.
/// Returns n.
fn check_assignment(assignments: &[(i32, Vec<i32>)]) -> Result<i32, (i16, String)> {
    let invalid = |m: String| (error_code::INVALID_REPLICA_ASSIGNMENT, m);
    for (index, brokers) in assignments {
        match brokers.as_slice() {
            [NODE_ID] => {}
            [] => {
                return Err(invalid(format!(
                    "Partition {index} has an empty replica list."
                )));
            }
            [..] if brokers.iter().all(|&b| b == NODE_ID) => {
                return Err(invalid(format!(
                    "Partition {index} lists broker {NODE_ID} more than once."
                )));
            }
            [..] => {
                let other = brokers.iter().find(|&&b| b != NODE_ID).unwrap_or(&NODE_ID);
                return Err(invalid(format!(
                    "Partition {index} is assigned to broker {other}, but the only broker \
                     is {NODE_ID}."
                )));
            }
        }
    }
    let mut indexes: Vec<i32> = assignments.iter().map(|(i, _)| *i).collect();
    indexes.sort_unstable();
    let consecutive = indexes
        .iter()
        .enumerate()
        .all(|(i, &p)| usize::try_from(p).is_ok_and(|p| p == i));
    if !consecutive {
        return Err(invalid(
            "Partitions should be a consecutive 0-based integer sequence.".to_owned(),
        ));
    }
    i32::try_from(indexes.len()).map_err(|_| {
        (
            error_code::INVALID_PARTITIONS,
            format!("Number of partitions must be at most {MAX_PARTITIONS} on devbroker."),
        )
    })
}
