//! Request handling: decodes one request frame, runs it against the log and the offset
//! store, and encodes the response. One function per API.

use std::collections::HashMap;
use std::fs::File;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::log::{MAX_PARTITIONS, Partition, StorageError, Topic, valid_topic_name};
use crate::message_set::{self, Prepared};
use crate::offsets::{self, Commit};
use crate::protocol::create_topics::{
    CreatableTopic, CreatableTopicResult, CreateTopicsRequest, CreateTopicsResponse,
};
use crate::protocol::fetch::{FetchPartitionResponse, FetchRequest, FetchResponse};
use crate::protocol::find_coordinator::{FindCoordinatorRequest, FindCoordinatorResponse};
use crate::protocol::list_offsets::{
    EARLIEST, LATEST, ListOffsetsPartitionResponse, ListOffsetsRequest, ListOffsetsResponse,
};
use crate::protocol::metadata::{MetadataRequest, MetadataResponse, TopicMetadata};
use crate::protocol::offset_commit::{OffsetCommitRequest, OffsetCommitResponse};
use crate::protocol::offset_fetch::{
    OffsetFetchPartition, OffsetFetchRequest, OffsetFetchResponse,
};
use crate::protocol::produce::{PartitionData, PartitionResponse, ProduceRequest, ProduceResponse};
use crate::protocol::{
    DecodeError, Decoder, Encoder, PartitionEntry, RequestHeader, TopicPartitions, api_key,
    api_versions, error_code, frame_response, supported_versions,
};
use crate::state::State;

/// The single node's id.
pub const NODE_ID: i32 = 0;
/// Upper bound on a fetch's wait, whatever the client asks.
const MAX_FETCH_WAIT: Duration = Duration::from_secs(300);

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
    state: &Arc<State>,
    me: &Advertised,
    frame: &[u8],
    shutdown: &CancellationToken,
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
        api_key::METADATA => metadata(state, me, &mut d, version).await,
        api_key::OFFSET_COMMIT => offset_commit(state, &mut d, version).await,
        api_key::OFFSET_FETCH => offset_fetch(state, &mut d, version),
        api_key::FIND_COORDINATOR => find_coordinator(me, &mut d, version),
        api_key::CREATE_TOPICS => create_topics(state, &mut d, version).await,
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

/// The topic, created with the broker default if missing (Kafka's
/// auto.create.topics.enable). Creation is storage work; an existing topic is not.
async fn get_or_create_topic(state: &Arc<State>, name: &str) -> Result<Arc<Topic>, StorageError> {
    if let Some(t) = state.log.topic(name) {
        return Ok(t);
    }
    let name = name.to_owned();
    state
        .storage(move |s| s.log.get_or_create(&name, None))
        .await?
}

/// `fdatasync`s each distinct file once. Blocking: run it as storage work.
fn sync_files(files: Vec<Arc<File>>) -> bool {
    let mut distinct: Vec<Arc<File>> = Vec::new();
    for f in files {
        if !distinct.iter().any(|d| Arc::ptr_eq(d, &f)) {
            distinct.push(f);
        }
    }
    match distinct.iter().try_for_each(|f| f.sync_data()) {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(error = %e, "fdatasync failed");
            false
        }
    }
}

/// Sets every partition still marked fine to UNKNOWN_SERVER_ERROR.
fn fail_remaining(resp: &mut ProduceResponse) {
    for p in resp.topics.iter_mut().flat_map(|t| t.partitions.iter_mut()) {
        if p.error_code == error_code::NONE {
            p.error_code = error_code::UNKNOWN_SERVER_ERROR;
        }
    }
}

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
async fn produce(state: &Arc<State>, d: &mut Decoder<'_>, version: i16) -> Handled {
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
            tracing::warn!(topic = %topic_name, partition = p.index, error = %e, "refused message set");
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
            tracing::error!(error = %e, "produce storage step failed");
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
            tracing::error!(topic = %a.topic.name, partition = a.partition, error = %e, "append failed");
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

async fn fetch(
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

/// Answers each requested partition of `topics`: `answer` gets the topic's name, the
/// entry, and the partition (`None` when the topic or partition does not exist).
fn answer_each<'a, P: PartitionEntry, Q>(
    state: &State,
    topics: &'a [TopicPartitions<P>],
    mut answer: impl FnMut(&'a str, &'a P, Option<&Partition>) -> Q,
) -> Vec<TopicPartitions<Q>> {
    topics
        .iter()
        .map(|t| {
            let topic = state.log.topic(&t.name);
            t.map(|p| {
                let partition = topic.as_ref().and_then(|topic| topic.partition(p.index()));
                answer(&t.name, p, partition)
            })
        })
        .collect()
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

fn list_offsets(state: &State, d: &mut Decoder<'_>, version: i16) -> Handled {
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

async fn metadata(
    state: &Arc<State>,
    me: &Advertised,
    d: &mut Decoder<'_>,
    version: i16,
) -> Handled {
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
        Some(names) => {
            let mut topics = Vec::with_capacity(names.len());
            for name in names {
                topics.push(match get_or_create_topic(state, &name).await {
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
                });
            }
            topics
        }
    };
    let resp = MetadataResponse {
        node_id: NODE_ID,
        host: me.host.clone(),
        port: me.port,
        topics,
    };
    Ok(Some(resp.encode(version)))
}

async fn offset_commit(state: &Arc<State>, d: &mut Decoder<'_>, version: i16) -> Handled {
    let req = OffsetCommitRequest::decode(d, version)?;
    let mut commits = Vec::new();
    let mut codes = answer_each(state, &req.topics, |topic, p, partition| {
        let meta = p.metadata.as_deref().unwrap_or("");
        let code = if req.group_id.is_empty() {
            error_code::INVALID_GROUP_ID
        } else if partition.is_none() {
            error_code::UNKNOWN_TOPIC_OR_PARTITION
        } else if meta.len() > offsets::MAX_METADATA_LEN {
            error_code::OFFSET_METADATA_TOO_LARGE
        } else {
            commits.push(Commit {
                topic,
                partition: p.index,
                offset: p.offset,
                metadata: meta,
            });
            error_code::NONE
        };
        (p.index, code)
    });
    let ok = commits.is_empty() || commit_offsets(state, &req.group_id, &commits).await;
    if !ok {
        for t in &mut codes {
            for (_, code) in &mut t.partitions {
                if *code == error_code::NONE {
                    *code = error_code::UNKNOWN_SERVER_ERROR;
                }
            }
        }
    }
    Ok(Some(OffsetCommitResponse { topics: codes }.encode(version)))
}

/// Writes the commits and `fdatasync`s the offsets file (if any) in one storage step;
/// true once they are on disk.
async fn commit_offsets(state: &Arc<State>, group: &str, commits: &[Commit<'_>]) -> bool {
    let group = group.to_owned();
    let owned: Vec<(String, i32, i64, String)> = commits
        .iter()
        .map(|c| {
            (
                c.topic.to_owned(),
                c.partition,
                c.offset,
                c.metadata.to_owned(),
            )
        })
        .collect();
    let stored = state
        .storage(move |s| {
            let commits: Vec<Commit<'_>> = owned
                .iter()
                .map(|(topic, partition, offset, metadata)| Commit {
                    topic,
                    partition: *partition,
                    offset: *offset,
                    metadata,
                })
                .collect();
            match s.offsets.commit(&group, &commits) {
                Ok(file) => sync_files(file.into_iter().collect()),
                Err(e) => {
                    tracing::error!(group = %group, error = %e, "offset commit write failed");
                    false
                }
            }
        })
        .await;
    stored.unwrap_or_else(|e| {
        tracing::error!(error = %e, "offset commit storage step failed");
        false
    })
}

fn offset_fetch(state: &State, d: &mut Decoder<'_>, version: i16) -> Handled {
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
async fn create_topics(state: &Arc<State>, d: &mut Decoder<'_>, version: i16) -> Handled {
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
            create_topic(state, t, req.validate_only).await
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
async fn create_topic(
    state: &Arc<State>,
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
    let name = t.name.clone();
    let created = state
        .storage(move |s| s.log.create(&name, Some(partitions)))
        .await
        .and_then(|r| r);
    match created {
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

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;
    use crate::log::Log;
    use crate::offsets::OffsetStore;

    fn raw(key: i16, version: i16, body: Encoder) -> Vec<u8> {
        let mut e = Encoder::new();
        e.i16(key).i16(version).i32(7).string("unit-test");
        let mut f = e.into_bytes().to_vec();
        f.extend_from_slice(&body.into_bytes());
        f
    }

    /// Produce v0, acks=all, one message to `topic` partition 0.
    fn produce_frame(topic: &str) -> Vec<u8> {
        let msg = message_set::build_message(0, 0, None, None, Some(b"v"));
        let set = message_set::encode_entry(0, &msg);
        let mut e = Encoder::new();
        e.i16(-1).i32(5_000);
        e.array(&[topic], |e, t| {
            e.string(t);
            e.array(&[0i32], |e, p| {
                e.i32(*p).bytes_chunks(std::slice::from_ref(&set));
            });
        });
        raw(api_key::PRODUCE, 0, e)
    }

    /// Fetch v0 of `topic` partition 0 from offset 0, not waiting.
    fn fetch_frame(topic: &str) -> Vec<u8> {
        let mut e = Encoder::new();
        e.i32(-1).i32(0).i32(1);
        e.array(&[topic], |e, t| {
            e.string(t);
            e.array(&[0i32], |e, p| {
                e.i32(*p).i64(0).i32(1 << 20);
            });
        });
        raw(api_key::FETCH, 0, e)
    }

    /// Metadata v0 naming `topic` (which creates it).
    fn metadata_frame(topic: &str) -> Vec<u8> {
        let mut e = Encoder::new();
        e.array(&[topic], |e, t| {
            e.string(t);
        });
        raw(api_key::METADATA, 0, e)
    }

    /// Log end of `topic` partition 0.
    fn log_end(state: &State, topic: &str) -> i64 {
        state
            .log
            .topic(topic)
            .unwrap()
            .partition(0)
            .unwrap()
            .log_end()
    }

    /// A current-thread runtime has one worker: if a produce blocked it on the disk, no
    /// other request could run until the disk answered.
    #[tokio::test]
    async fn a_stalled_disk_write_holds_up_only_its_own_request() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(Some(dir.path()), 1, &[("t".to_owned(), 1)]).unwrap();
        let offsets = OffsetStore::open(Some(dir.path())).unwrap();
        let state = Arc::new(State::new(log, offsets, 1 << 20));
        let me = Advertised {
            host: "127.0.0.1".into(),
            port: 9092,
        };
        let shutdown = CancellationToken::new();

        let topic = state.log.topic("t").unwrap();
        let (held_tx, held) = mpsc::channel();
        let (release, release_rx) = mpsc::channel();
        let staller = std::thread::spawn(move || {
            topic
                .partition(0)
                .unwrap()
                .stall_appends(&held_tx, &release_rx);
        });
        held.recv().unwrap();

        let produce = tokio::spawn({
            let (state, me, shutdown) = (state.clone(), me.clone(), shutdown.clone());
            async move { handle(&state, &me, &produce_frame("t"), &shutdown).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!produce.is_finished(), "the produce waits for its write");

        // Meanwhile a fetch of the same partition and a topic creation are answered.
        let fetched = handle(&state, &me, &fetch_frame("t"), &shutdown).await;
        assert!(matches!(fetched, Outcome::Respond(_)));
        let created = handle(&state, &me, &metadata_frame("other"), &shutdown).await;
        assert!(matches!(created, Outcome::Respond(_)));
        assert!(state.log.topic("other").is_some());
        assert_eq!(log_end(&state, "t"), 0);

        release.send(()).unwrap();
        staller.join().unwrap();
        let produced = tokio::time::timeout(Duration::from_secs(10), produce)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(produced, Outcome::Respond(_)));
        assert_eq!(log_end(&state, "t"), 1);
    }
}
