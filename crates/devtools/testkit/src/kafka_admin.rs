//! The few Kafka admin requests the test harness sends, on a plain socket: which API
//! versions a broker serves, whether it has registered brokers and partition leaders
//! (Metadata), whether partitions are served (ListOffsets), and topic creation
//! (CreateTopics). Encoded by hand from Apache Kafka's
//! message definitions, so the same code creates topics on devbroker, on Apache Kafka
//! 3.9 and on 4.x (none of the versions used here was removed by KIP-896).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const API_LIST_OFFSETS: i16 = 2;
const API_METADATA: i16 = 3;
const API_CREATE_TOPICS: i16 = 19;
const API_VERSIONS: i16 = 18;
const CLIENT_ID: &[u8] = b"testkit-admin";
const TIMEOUT: Duration = Duration::from_secs(10);

/// Kafka error codes the harness waits out while a broker is starting or a topic is
/// being created.
const RETRIABLE: &[i16] = &[
    3,  // UNKNOWN_TOPIC_OR_PARTITION
    5,  // LEADER_NOT_AVAILABLE
    6,  // NOT_LEADER_OR_FOLLOWER
    7,  // REQUEST_TIMED_OUT
    8,  // BROKER_NOT_AVAILABLE
    15, // COORDINATOR_NOT_AVAILABLE
    38, // INVALID_REPLICATION_FACTOR: no broker registered yet
    41, // NOT_CONTROLLER
];

pub(crate) fn is_retriable(code: i16) -> bool {
    RETRIABLE.contains(&code)
}

/// One request/response round trip on a fresh connection; returns the response body
/// after the correlation id.
fn round_trip(addr: &str, api_key: i16, version: i16, body: &[u8]) -> io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    let correlation_id: i32 = 0x7e57;
    let mut request = Vec::with_capacity(64 + body.len());
    request.extend_from_slice(&api_key.to_be_bytes());
    request.extend_from_slice(&version.to_be_bytes());
    request.extend_from_slice(&correlation_id.to_be_bytes());
    put_str(&mut request, CLIENT_ID);
    request.extend_from_slice(body);
    let mut frame = (request.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&request);
    stream.write_all(&frame)?;
    let mut size = [0u8; 4];
    stream.read_exact(&mut size)?;
    let size = usize::try_from(i32::from_be_bytes(size))
        .ok()
        .filter(|n| (4..=64 << 20).contains(n))
        .ok_or_else(|| invalid("bad response size"))?;
    let mut response = vec![0u8; size];
    stream.read_exact(&mut response)?;
    if response[..4] != correlation_id.to_be_bytes() {
        return Err(invalid("response for another request"));
    }
    Ok(response.split_off(4))
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as i16).to_be_bytes());
    out.extend_from_slice(s);
}

/// A cursor over a response body; every read fails cleanly on truncation.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> io::Result<&[u8]> {
        if self.0.len() < n {
            return Err(invalid("truncated response"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn i16(&mut self) -> io::Result<i16> {
        Ok(i16::from_be_bytes(
            self.take(2)?.try_into().map_err(|_| invalid("i16"))?,
        ))
    }
    fn i32(&mut self) -> io::Result<i32> {
        Ok(i32::from_be_bytes(
            self.take(4)?.try_into().map_err(|_| invalid("i32"))?,
        ))
    }
    fn i64(&mut self) -> io::Result<i64> {
        Ok(i64::from_be_bytes(
            self.take(8)?.try_into().map_err(|_| invalid("i64"))?,
        ))
    }
    fn bool(&mut self) -> io::Result<bool> {
        Ok(self.take(1)?[0] != 0)
    }
    /// A string or nullable string (null reads as empty).
    fn string(&mut self) -> io::Result<String> {
        let len = self.i16()?;
        if len < 0 {
            return Ok(String::new());
        }
        Ok(String::from_utf8_lossy(self.take(len as usize)?).into_owned())
    }
    fn array_len(&mut self) -> io::Result<usize> {
        Ok(usize::try_from(self.i32()?).unwrap_or(0))
    }
}

/// `(api_key, min, max)` for every API the broker serves (ApiVersions v0, which every
/// broker since 0.10 answers).
pub(crate) fn api_versions(addr: &str) -> io::Result<Vec<(i16, i16, i16)>> {
    let body = round_trip(addr, API_VERSIONS, 0, &[])?;
    let mut r = Reader(&body);
    let error = r.i16()?;
    if error != 0 {
        return Err(invalid(&format!("ApiVersions error {error}")));
    }
    (0..r.array_len()?)
        .map(|_| Ok((r.i16()?, r.i16()?, r.i16()?)))
        .collect()
}

/// What Metadata says about the cluster and about one topic.
#[derive(Debug, Default)]
pub(crate) struct Metadata {
    pub brokers: usize,
    /// `(partition, leader)` of the asked topic, empty when it is unknown.
    pub partitions: Vec<(i32, i32)>,
    /// The same partitions with their replicas and in-sync replicas.
    pub states: Vec<PartitionState>,
}

/// One partition as Metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    pub partition: i32,
    /// The leader's node id (-1: none).
    pub leader: i32,
    pub replicas: Vec<i32>,
    /// The in-sync replicas.
    pub isr: Vec<i32>,
}

/// Metadata for `topic` (or for no topic), in the oldest version the broker serves of
/// v1 (devbroker, Kafka 3.x) and v4 (Kafka 4.x, which removed v0-v3).
pub(crate) fn metadata(addr: &str, topic: Option<&str>) -> io::Result<Metadata> {
    let versions = api_versions(addr)?;
    let (min, max) = versions
        .iter()
        .find(|(key, _, _)| *key == API_METADATA)
        .map(|(_, min, max)| (*min, *max))
        .ok_or_else(|| invalid("broker serves no Metadata"))?;
    let version = [1i16, 4]
        .into_iter()
        .find(|v| (min..=max).contains(v))
        .ok_or_else(|| invalid(&format!("broker serves Metadata v{min}..v{max} only")))?;
    let mut body = Vec::new();
    match topic {
        Some(name) => {
            body.extend_from_slice(&1i32.to_be_bytes());
            put_str(&mut body, name.as_bytes());
        }
        None => body.extend_from_slice(&0i32.to_be_bytes()),
    }
    if version >= 4 {
        body.push(0); // allow_auto_topic_creation: false
    }
    let response = round_trip(addr, API_METADATA, version, &body)?;
    let mut r = Reader(&response);
    if version >= 3 {
        r.i32()?; // throttle_time_ms
    }
    let brokers = r.array_len()?;
    for _ in 0..brokers {
        r.i32()?;
        r.string()?;
        r.i32()?;
        r.string()?; // rack
    }
    if version >= 2 {
        r.string()?; // cluster_id
    }
    r.i32()?; // controller_id
    let mut metadata = Metadata {
        brokers,
        ..Metadata::default()
    };
    for _ in 0..r.array_len()? {
        let topic_error = r.i16()?;
        r.string()?;
        r.bool()?;
        for _ in 0..r.array_len()? {
            let partition_error = r.i16()?;
            let index = r.i32()?;
            let leader = r.i32()?;
            let replicas = (0..r.array_len()?)
                .map(|_| r.i32())
                .collect::<io::Result<Vec<_>>>()?;
            let isr = (0..r.array_len()?)
                .map(|_| r.i32())
                .collect::<io::Result<Vec<_>>>()?;
            if topic_error == 0 && partition_error == 0 {
                metadata.partitions.push((index, leader));
                metadata.states.push(PartitionState {
                    partition: index,
                    leader,
                    replicas,
                    isr,
                });
            }
        }
    }
    Ok(metadata)
}

/// CreateTopics v2 for one topic with `replication_factor` replicas per partition:
/// the broker's error code and message (0 = created).
pub(crate) fn create_topic_replicated(
    addr: &str,
    name: &str,
    partitions: i32,
    replication_factor: i16,
) -> io::Result<(i16, String)> {
    let mut body = Vec::new();
    body.extend_from_slice(&1i32.to_be_bytes());
    put_str(&mut body, name.as_bytes());
    body.extend_from_slice(&partitions.to_be_bytes());
    body.extend_from_slice(&replication_factor.to_be_bytes());
    body.extend_from_slice(&0i32.to_be_bytes()); // no explicit assignments
    body.extend_from_slice(&0i32.to_be_bytes()); // no configs
    body.extend_from_slice(&30_000i32.to_be_bytes()); // timeout_ms
    body.push(0); // validate_only: false
    let response = round_trip(addr, API_CREATE_TOPICS, 2, &body)?;
    let mut r = Reader(&response);
    r.i32()?; // throttle_time_ms
    if r.array_len()? != 1 {
        return Err(invalid(
            "CreateTopics answered for another number of topics",
        ));
    }
    r.string()?;
    let code = r.i16()?;
    let message = r.string()?;
    Ok((code, message))
}

/// ListOffsets v1 (latest) for partitions `0..partitions` of `topic`: each partition's
/// error code (0 = its leader serves it) and log end offset. A partition Metadata already
/// names a leader for may still answer NOT_LEADER_OR_FOLLOWER here (Apache Kafka in KRaft
/// mode publishes metadata before its replica manager takes leadership), and so may a
/// produce to it.
pub(crate) fn latest_offsets(
    addr: &str,
    topic: &str,
    partitions: i32,
) -> io::Result<Vec<(i32, i16, i64)>> {
    const LATEST: i64 = -1;
    let mut body = Vec::new();
    body.extend_from_slice(&(-1i32).to_be_bytes()); // replica_id: a consumer
    body.extend_from_slice(&1i32.to_be_bytes());
    put_str(&mut body, topic.as_bytes());
    body.extend_from_slice(&partitions.to_be_bytes());
    for partition in 0..partitions {
        body.extend_from_slice(&partition.to_be_bytes());
        body.extend_from_slice(&LATEST.to_be_bytes());
    }
    let response = round_trip(addr, API_LIST_OFFSETS, 1, &body)?;
    let mut r = Reader(&response);
    let mut answers = Vec::new();
    for _ in 0..r.array_len()? {
        r.string()?;
        for _ in 0..r.array_len()? {
            let partition = r.i32()?;
            let error = r.i16()?;
            r.i64()?; // timestamp
            answers.push((partition, error, r.i64()?));
        }
    }
    Ok(answers)
}
