//! Mutation fuzzing of the wire protocol: malformed input never crashes the broker, never
//! panics, and other clients keep being served.
//!
//! Seeds are real requests: a recording proxy between the broker and real clients (the
//! `kafka` crate; kcat with and without ApiVersions negotiation) keeps every request
//! frame. Neither creates topics, so CreateTopics seeds are frames recorded once from
//! Apache Kafka's Java AdminClient and kept here (`RECORDED_CREATE_TOPICS`). Each fuzz
//! frame is a seed with a few mutations (bit flips, boundary values in parsed fields,
//! truncation, appended, duplicated or spliced bytes, another api key or version;
//! message CRCs fixed up half the time so mutations reach the parsers behind the
//! check), sent straight to the broker. A panic hook counts panics on every thread (the
//! broker runs in this process); a well-behaved client must keep producing and fetching.
//!
//! The frames are a pure function of the seed and the corpus (printed with a fingerprint;
//! kcat's message timestamps vary it slightly). `DEVBROKER_FUZZ_SEED` and
//! `DEVBROKER_FUZZ_FRAMES` override seed and frame count, e.g. for long local runs. kcat
//! must be installed (`apt-get install -y kcat`).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::mem::ManuallyDrop;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use crate::common::{DEADLINE, kcat, kcat_read};
use devbroker::protocol::{SUPPORTED_APIS, api_key, supported_versions};
use devbroker::{BrokerConfig, TopicSpec};
use kafka::client::{
    CommitOffset, Compression, FetchOffset, FetchPartition, GroupOffsetStorage, KafkaClient,
    ProduceMessage, RequiredAcks,
};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

const DEFAULT_SEED: u64 = 0x00de_7b20_4e2f_a11e;
/// About 10 s in a debug build on 2 cores. Most frames end their connection, and the
/// closed ones stay in TIME_WAIT for a minute: more frames would start to use up the
/// ephemeral ports (see `Target::connect`).
const DEFAULT_FRAMES: usize = 30_000;
/// Small, so oversize mutations are refused cheaply.
const MAX_FRAME: usize = 64 * 1024;
/// An answer normally takes well under a millisecond. A request that is still open after
/// this (e.g. a Fetch long-polling on a mutated `max_wait_ms`) only costs a connection.
const READ_TIMEOUT: Duration = Duration::from_millis(50);
const HEALTH_CHECK_EVERY: usize = 2_500;
/// The topic the seed clients use, and the one the health checks use.
const SEED_TOPIC: &str = "fuzz";
const HEALTH_TOPIC: &str = "health";
/// Sent behind every fuzz frame: its answer shows that the fuzz frame got none.
const PROBE_CORRELATION_ID: i32 = -7;

static PANICS: AtomicUsize = AtomicUsize::new(0);

#[test]
fn mutated_requests_never_crash_the_broker_or_disturb_other_clients() {
    count_panics();
    let seed = env_or("DEVBROKER_FUZZ_SEED", DEFAULT_SEED);
    let frames = env_or("DEVBROKER_FUZZ_FRAMES", DEFAULT_FRAMES as u64) as usize;
    // Dropped only after the checks passed: a failed broker may be hung, and dropping it
    // joins its thread.
    let broker = ManuallyDrop::new(
        devbroker::spawn_background(BrokerConfig {
            max_frame_bytes: MAX_FRAME,
            // Mutated topic names auto-create topics; one partition each keeps Metadata small.
            default_partitions: 1,
            topics: [SEED_TOPIC, HEALTH_TOPIC]
                .map(|name| TopicSpec {
                    name: name.into(),
                    partitions: 1,
                })
                .to_vec(),
            ..BrokerConfig::default()
        })
        .unwrap(),
    );

    let corpus = record_real_client_requests(broker.addr());
    let mut by_api: BTreeMap<(i16, i16), usize> = BTreeMap::new();
    for req in &corpus {
        *by_api.entry((key_of(req), version_of(req))).or_default() += 1;
    }
    eprintln!(
        "mutation_fuzz: seed={seed:#x} frames={frames} corpus={} requests (fingerprint {:#010x}), \
         by (api key, version): {by_api:?}",
        corpus.len(),
        crc32fast::hash(&corpus.concat()),
    );
    for &(key, _, _) in SUPPORTED_APIS {
        assert!(
            by_api.keys().any(|&(k, _)| k == key),
            "no real client sent api key {key}: the corpus misses an API"
        );
    }

    let mut healthy = KafkaClient::new(vec![broker.bootstrap()]);
    healthy.load_metadata(&[HEALTH_TOPIC]).unwrap();
    // The last frames sent, to name suspects if a health check fails.
    let mut recent: VecDeque<Vec<u8>> = VecDeque::new();
    healthy = health_check(healthy, "before fuzzing", &recent);

    let rss_before = resident_kib();
    let mut mutator = Mutator::new(seed, corpus);
    let mut target = Target::new(broker.addr());
    let start = Instant::now();
    for i in 0..frames {
        // A broker that stopped answering altogether shows as frames going unanswered in
        // a row: check then rather than only at the next scheduled check.
        if (i > 0 && i % HEALTH_CHECK_EVERY == 0) || target.unanswered_in_a_row >= 10 {
            healthy = health_check(healthy, &format!("after {i} fuzz frames"), &recent);
            target.unanswered_in_a_row = 0;
        }
        let panics_before = PANICS.load(Ordering::SeqCst);
        let frame = if mutator.rng.random_ratio(1, 100) {
            let frame = mutator.wrong_size_frame();
            target.send_wrong_size(&frame);
            frame
        } else {
            let correlation_id = i32::try_from(i + 1).unwrap();
            let body = mutator.next_request(correlation_id);
            target.send(&body, correlation_id);
            body
        };
        // A broker task panics before its connection closes, so a panic shows up here,
        // on the frame that caused it. One is enough: more would only flood the log.
        assert_eq!(
            PANICS.load(Ordering::SeqCst),
            panics_before,
            "the broker panicked on fuzz frame {i} (seed {seed:#x}): {}",
            hex(&frame)
        );
        if recent.len() == 16 {
            recent.pop_front();
        }
        recent.push_back(frame);
    }
    let elapsed = start.elapsed();

    health_check(healthy, "after fuzzing (long-lived client)", &recent);
    let mut fresh = KafkaClient::new(vec![broker.bootstrap()]);
    fresh.load_metadata(&[HEALTH_TOPIC]).unwrap();
    health_check(fresh, "after fuzzing (new client)", &recent);
    eprintln!(
        "mutation_fuzz: {frames} frames in {elapsed:.1?}: {:?}; resident memory {} -> {} KiB",
        target.outcomes,
        rss_before.unwrap_or(0),
        resident_kib().unwrap_or(0),
    );
    // E.g. a panic in a long poll that outlived its fuzz frame's connection.
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "the broker panicked");
    ManuallyDrop::into_inner(broker).stop();
}

/// Counts panics on any thread, still printing them the usual way. Nextest runs each
/// test in its own process, so a process-wide hook sees only this test.
fn count_panics() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        default_hook(info);
    }));
}

fn env_or(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => {
            let parsed = match v.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => v.parse(),
            };
            parsed.unwrap_or_else(|e| panic!("{name}={v:?}: {e}"))
        }
        Err(_) => default,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The test process's resident memory (Linux), printed so a run shows how the broker grew.
fn resident_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

// Request layout: header (api key, version, correlation id, client id), then the body.

fn key_of(req: &[u8]) -> i16 {
    i16::from_be_bytes([req[0], req[1]])
}

fn version_of(req: &[u8]) -> i16 {
    i16::from_be_bytes([req[2], req[3]])
}

/// Where the body starts, after the client id (a nullable int16-length string).
fn body_start(req: &[u8]) -> Option<usize> {
    let len = i16::from_be_bytes(req.get(8..10)?.try_into().ok()?);
    Some(10 + usize::try_from(len).unwrap_or(0))
}

/// A Produce with acks=0, the one request the broker does not answer.
fn is_fire_and_forget(req: &[u8]) -> bool {
    req.len() >= 2
        && key_of(req) == api_key::PRODUCE
        && body_start(req)
            .and_then(|at| req.get(at..at + 2))
            .is_some_and(|acks| acks == [0, 0])
}

fn framed(body: &[u8]) -> Vec<u8> {
    let mut frame = u32::try_from(body.len()).unwrap().to_be_bytes().to_vec();
    frame.extend_from_slice(body);
    frame
}

/// Reads one size-prefixed frame; `None` at a clean end of stream.
fn read_frame(s: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut size = [0u8; 4];
    match s.read_exact(&mut size) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let size = usize::try_from(i32::from_be_bytes(size))
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "negative frame size"))?;
    let mut body = vec![0u8; size];
    s.read_exact(&mut body)?;
    Ok(Some(body))
}

// Seeds: what real clients send.

/// Drives real clients through a recording proxy and returns their requests, correlation
/// ids zeroed, deduplicated and sorted (the order clients interleave in is not stable).
fn record_real_client_requests(broker: SocketAddr) -> Vec<Vec<u8>> {
    let proxy = RecordingProxy::start(broker);
    drive_kafka_crate(&proxy.bootstrap());
    drive_kcat(&proxy.bootstrap());
    let recorded_earlier = RECORDED_CREATE_TOPICS.iter().map(|h| unhex(h));
    let mut corpus: Vec<Vec<u8>> = proxy
        .requests
        .lock()
        .unwrap()
        .iter()
        .cloned()
        .chain(recorded_earlier)
        .filter(|req| req.len() >= 8)
        .map(|mut req| {
            req[4..8].fill(0);
            req
        })
        .collect();
    corpus.sort();
    corpus.dedup();
    corpus
}

/// CreateTopics v4 requests (hex, without the size prefix) from Apache Kafka 3.9.2's
/// Java AdminClient against devbroker, recorded through a proxy like `RecordingProxy`:
/// `java-created` with 3 partitions, replication factor 1 and a `retention.ms` config;
/// the same name again with -1/-1 (the defaults); and `java-created-assigned` with a
/// manual assignment of partitions 0 and 1 to broker 0, validate_only.
const RECORDED_CREATE_TOPICS: [&str; 3] = [
    "0013000400000005000d61646d696e636c69656e742d3100000001000c6a6176612d637265617465640000000300010000000000000001000c726574656e74696f6e2e6d73000838363430303030300000751d00",
    "0013000400000006000d61646d696e636c69656e742d3100000001000c6a6176612d63726561746564ffffffffffff00000000000000000000753000",
    "0013000400000007000d61646d696e636c69656e742d310000000100156a6176612d637265617465642d61737369676e6564ffffffffffff00000002000000000000000100000000000000010000000100000000000000000000753001",
];

fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// Forwards connections to the broker and records every request frame on the way.
struct RecordingProxy {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl RecordingProxy {
    fn start(broker: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = requests.clone();
        // Runs until the test process exits.
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let client = client.unwrap();
                let upstream = TcpStream::connect(broker).unwrap();
                relay(client, upstream, addr.port(), recorded.clone());
            }
        });
        Self { addr, requests }
    }

    fn bootstrap(&self) -> String {
        self.addr.to_string()
    }
}

/// Pumps one connection both ways, a whole frame at a time.
fn relay(
    client: TcpStream,
    broker: TcpStream,
    proxy_port: u16,
    recorded: Arc<Mutex<Vec<Vec<u8>>>>,
) {
    // Correlation id -> api key of requests in flight, to find the answers to rewrite.
    let in_flight: Arc<Mutex<HashMap<i32, i16>>> = Arc::default();
    let (mut from_client, mut to_broker) =
        (client.try_clone().unwrap(), broker.try_clone().unwrap());
    let requests_in_flight = in_flight.clone();
    std::thread::spawn(move || {
        while let Ok(Some(req)) = read_frame(&mut from_client) {
            if req.len() >= 8 {
                let correlation_id = i32::from_be_bytes(req[4..8].try_into().unwrap());
                requests_in_flight
                    .lock()
                    .unwrap()
                    .insert(correlation_id, key_of(&req));
            }
            recorded.lock().unwrap().push(req.clone());
            if to_broker.write_all(&framed(&req)).is_err() {
                break;
            }
        }
        let _ = to_broker.shutdown(Shutdown::Write);
    });
    let (mut from_broker, mut to_client) = (broker, client);
    std::thread::spawn(move || {
        while let Ok(Some(mut resp)) = read_frame(&mut from_broker) {
            let correlation_id = i32::from_be_bytes(resp[0..4].try_into().unwrap());
            if let Some(key) = in_flight.lock().unwrap().remove(&correlation_id) {
                point_at_proxy(&mut resp, key, proxy_port);
            }
            if to_client.write_all(&framed(&resp)).is_err() {
                break;
            }
        }
        let _ = to_client.shutdown(Shutdown::Write);
    });
}

/// The broker advertises the port it was reached on, its own; clients must keep coming
/// through the proxy, so Metadata and FindCoordinator answers get the proxy's port.
fn point_at_proxy(resp: &mut [u8], key: i16, proxy_port: u16) {
    // After the correlation id: Metadata has the broker count (always 1) and node id,
    // FindCoordinator the error code and node id; then host and port.
    let host_at = match key {
        api_key::METADATA => 4 + 4 + 4,
        api_key::FIND_COORDINATOR => 4 + 2 + 4,
        _ => return,
    };
    let host_len = usize::from(u16::from_be_bytes([resp[host_at], resp[host_at + 1]]));
    let port_at = host_at + 2 + host_len;
    resp[port_at..port_at + 4].copy_from_slice(&i32::from(proxy_port).to_be_bytes());
}

/// The `kafka` crate: Metadata, Produce (plain, gzip, snappy; acks all, one, none), Fetch,
/// ListOffsets, and GroupCoordinator with OffsetCommit/OffsetFetch for both storages.
fn drive_kafka_crate(bootstrap: &str) {
    let mut client = KafkaClient::new(vec![bootstrap.to_owned()]);
    // Short waits: a seed that long-polls makes every mutation of it that keeps the wait
    // time block past the fuzz read timeout.
    client
        .set_fetch_max_wait_time(Duration::from_millis(10))
        .unwrap();
    client.set_fetch_min_bytes(1);
    client.load_metadata_all().unwrap();
    client.load_metadata(&[SEED_TOPIC]).unwrap();
    for (compression, acks) in [
        (Compression::NONE, RequiredAcks::All),
        (Compression::GZIP, RequiredAcks::One),
        (Compression::SNAPPY, RequiredAcks::All),
        (Compression::NONE, RequiredAcks::None),
    ] {
        client.set_compression(compression);
        let messages: Vec<_> = (0..3)
            .map(|i| ProduceMessage::new(SEED_TOPIC, 0, Some(b"key"), Some(VALUES[i])))
            .collect();
        client
            .produce_messages(acks, Duration::from_secs(5), messages)
            .unwrap();
    }
    client
        .fetch_messages_for_partition(&FetchPartition::new(SEED_TOPIC, 0, 0))
        .unwrap();
    for which in [
        FetchOffset::Earliest,
        FetchOffset::Latest,
        FetchOffset::ByTime(0),
    ] {
        client.fetch_offsets(&[SEED_TOPIC], which).unwrap();
    }
    for storage in [GroupOffsetStorage::Kafka, GroupOffsetStorage::Zookeeper] {
        client.set_group_offset_storage(Some(storage));
        client
            .commit_offsets("fuzz-group", &[CommitOffset::new(SEED_TOPIC, 0, 1)])
            .unwrap();
        client
            .fetch_group_topic_offset("fuzz-group", SEED_TOPIC)
            .unwrap();
    }
}

const VALUES: [&[u8]; 3] = [b"order-1", b"{\"order_id\":2,\"total\":\"9.99\"}", b""];

/// kcat (librdkafka) with ApiVersions negotiation (Metadata v1, Produce v2, Fetch v3,
/// message format v1) and without it (Metadata v0, Produce v1, Fetch v1, ListOffsets v0,
/// message format v0): metadata, produce plain and compressed, consume to the end.
fn drive_kcat(bootstrap: &str) {
    // Not `broker.version.fallback=0.10.0`: librdkafka treats a fallback of 0.10.0 or
    // later as "the broker has ApiVersions" and negotiates anyway, so it would send
    // exactly what the default settings send.
    let no_negotiation = [
        "-X",
        "api.version.request=false",
        "-X",
        "broker.version.fallback=0.9.0",
    ];
    for (settings, codec) in [(&[][..], "gzip"), (&no_negotiation[..], "snappy")] {
        let with = |args: &[&'static str]| {
            let mut all = vec!["-b", bootstrap];
            all.extend_from_slice(args);
            all.extend_from_slice(settings);
            all
        };
        kcat(&with(&["-L"]), b"");
        let lines = b"k1:plain one\nk2:plain two\n";
        kcat(
            &with(&["-P", "-t", SEED_TOPIC, "-p", "0", "-K", ":"]),
            lines,
        );
        kcat(
            &with(&["-P", "-t", SEED_TOPIC, "-p", "0", "-z", codec]),
            lines,
        );
        // A short fetch wait, for the same reason as in drive_kafka_crate.
        let mut extra = vec!["-X", "fetch.wait.max.ms=10"];
        extra.extend_from_slice(settings);
        kcat_read(bootstrap, SEED_TOPIC, 0, &extra);
    }
}

// Mutations.

const BOUNDARY_I16: [i16; 5] = [0, -1, 1, i16::MAX, i16::MIN];
const BOUNDARY_I32: [i32; 7] = [0, -1, 1, i16::MAX as i32, i32::MAX, i32::MIN, 0x7fff_fff0];
const BOUNDARY_I64: [i64; 5] = [0, -1, -2, i64::MAX, i64::MIN];

struct Mutator {
    rng: StdRng,
    corpus: Vec<Vec<u8>>,
    /// The corpus by api key: every API gets an equal share of the frames, however
    /// many requests of it the clients happened to send.
    by_api: Vec<Vec<Vec<u8>>>,
}

impl Mutator {
    fn new(seed: u64, corpus: Vec<Vec<u8>>) -> Self {
        // The corpus is sorted, so requests of one api key are adjacent.
        let by_api = corpus
            .chunk_by(|a, b| key_of(a) == key_of(b))
            .map(<[Vec<u8>]>::to_vec)
            .collect();
        Self {
            rng: StdRng::seed_from_u64(seed),
            corpus,
            by_api,
        }
    }

    /// A seed with one or more stacked mutations and the given correlation id (if it is
    /// still long enough to have one).
    fn next_request(&mut self, correlation_id: i32) -> Vec<u8> {
        let same_api = self.by_api.choose(&mut self.rng).unwrap();
        let mut req = same_api.choose(&mut self.rng).unwrap().clone();
        // Mostly one mutation: a request still well-formed elsewhere gets further into
        // the broker with it.
        self.mutate(&mut req);
        while req.len() < MAX_FRAME && self.rng.random_bool(0.3) {
            self.mutate(&mut req);
        }
        // Messages are CRC-checked: without fixing the CRC, nearly every mutation of a
        // produced message set would stop at the check and never reach the parser or
        // the decompressors behind it.
        if self.rng.random_bool(0.5) {
            fix_message_crcs(&mut req);
        }
        if let Some(id) = req.get_mut(4..8) {
            id.copy_from_slice(&correlation_id.to_be_bytes());
        }
        req
    }

    fn mutate(&mut self, req: &mut Vec<u8>) {
        if req.is_empty() {
            self.append_random(req);
            return;
        }
        match self.rng.random_range(0..9) {
            0 => {
                for _ in 0..self.rng.random_range(1..=4) {
                    let at = self.rng.random_range(0..req.len());
                    req[at] ^= 1 << self.rng.random_range(0..8);
                }
            }
            1 => {
                for _ in 0..self.rng.random_range(1..=4) {
                    let at = self.rng.random_range(0..req.len());
                    req[at] = self.rng.random();
                }
            }
            2 => self.boundary_value(req),
            3 => req.truncate(self.rng.random_range(0..req.len())),
            4 => self.append_random(req),
            5 => {
                // Duplicate a range: repeated fields, array elements, message set entries.
                let range = self.random_range_in(req.len());
                let copy = req[range].to_vec();
                let at = self.rng.random_range(0..=req.len());
                req.splice(at..at, copy);
            }
            6 => {
                // Splice: our head with another request's tail.
                let other = self.corpus.choose(&mut self.rng).unwrap();
                let from = self.rng.random_range(0..other.len());
                req.truncate(self.rng.random_range(0..=req.len()));
                req.extend_from_slice(&other[from..]);
            }
            7 if req.len() >= 4 => {
                let version = self.version_for(key_of(req));
                req[2..4].copy_from_slice(&version.to_be_bytes());
            }
            8 if req.len() >= 2 => {
                // One api's body read as another's.
                let key = match self.rng.random_range(0..4) {
                    0 => *[-1i16, 4, 11, 99, i16::MAX].choose(&mut self.rng).unwrap(),
                    _ => SUPPORTED_APIS.choose(&mut self.rng).unwrap().0,
                };
                req[0..2].copy_from_slice(&key.to_be_bytes());
            }
            _ => self.append_random(req),
        }
    }

    /// Overwrites an integer with a boundary value: mostly a field of the request's
    /// layout (found by parsing it), else a spot anywhere, e.g. inside a message. Blind
    /// spots alone would rarely hit a given field with a given value.
    fn boundary_value(&mut self, req: &mut [u8]) {
        let field = Fields::of(req)
            .ints
            .choose(&mut self.rng)
            .cloned()
            .filter(|_| self.rng.random_bool(0.75));
        let spot = match field {
            Some(field) => field,
            None => {
                let width = *[2, 4, 8].choose(&mut self.rng).unwrap();
                let Some(last) = req.len().checked_sub(width) else {
                    return;
                };
                let at = self.rng.random_range(0..=last);
                at..at + width
            }
        };
        let value = match spot.len() {
            2 => BOUNDARY_I16
                .choose(&mut self.rng)
                .unwrap()
                .to_be_bytes()
                .to_vec(),
            4 => BOUNDARY_I32
                .choose(&mut self.rng)
                .unwrap()
                .to_be_bytes()
                .to_vec(),
            _ => BOUNDARY_I64
                .choose(&mut self.rng)
                .unwrap()
                .to_be_bytes()
                .to_vec(),
        };
        req[spot].copy_from_slice(&value);
    }

    /// A version in the supported range of `key` half the time, else one outside it.
    fn version_for(&mut self, key: i16) -> i16 {
        let (min, max) = supported_versions(key).unwrap_or((0, 0));
        if self.rng.random_bool(0.5) {
            self.rng.random_range(min..=max)
        } else {
            *[-1, max + 1, max + 2, 7, i16::MAX, i16::MIN]
                .choose(&mut self.rng)
                .unwrap()
        }
    }

    fn append_random(&mut self, req: &mut Vec<u8>) {
        let n = self.rng.random_range(1..=64);
        req.extend((0..n).map(|_| self.rng.random::<u8>()));
    }

    fn random_range_in(&mut self, len: usize) -> Range<usize> {
        let start = self.rng.random_range(0..len);
        let end = self.rng.random_range(start..=len.min(start + 512));
        start..end
    }

    /// A seed whose size prefix claims more bytes than follow (some beyond the frame
    /// limit): the broker must wait for the rest, and close when the stream ends.
    fn wrong_size_frame(&mut self) -> Vec<u8> {
        let req = self.corpus.choose(&mut self.rng).unwrap();
        let claimed = req.len() + self.rng.random_range(1..=2 * MAX_FRAME);
        let mut frame = u32::try_from(claimed).unwrap().to_be_bytes().to_vec();
        frame.extend_from_slice(req);
        frame
    }
}

/// Recomputes the CRC of every message in a Produce request, as far as its structure
/// still parses.
fn fix_message_crcs(req: &mut [u8]) {
    for m in Fields::of(req).messages {
        let crc = crc32fast::hash(&req[m.start + 4..m.end]);
        req[m.start..m.start + 4].copy_from_slice(&crc.to_be_bytes());
    }
}

/// A request body field: int16, int32, int64, string, bytes (a Produce message set), or
/// an array of elements laid out as given.
enum Field {
    I16,
    I32,
    I64,
    Str,
    MessageSet,
    Array(&'static [Field]),
}

/// The body layouts of the supported requests (ApiVersions v0 has no body).
fn body_layout(key: i16, version: i16) -> &'static [Field] {
    use Field::*;
    match (key, version) {
        (api_key::PRODUCE, _) => &[I16, I32, Array(&[Str, Array(&[I32, MessageSet])])],
        (api_key::FETCH, ..=2) => &[I32, I32, I32, Array(&[Str, Array(&[I32, I64, I32])])],
        (api_key::FETCH, _) => &[I32, I32, I32, I32, Array(&[Str, Array(&[I32, I64, I32])])],
        (api_key::LIST_OFFSETS, 0) => &[I32, Array(&[Str, Array(&[I32, I64, I32])])],
        (api_key::LIST_OFFSETS, _) => &[I32, Array(&[Str, Array(&[I32, I64])])],
        (api_key::METADATA, _) => &[Array(&[Str])],
        (api_key::OFFSET_COMMIT, 0) => &[Str, Array(&[Str, Array(&[I32, I64, Str])])],
        (api_key::OFFSET_COMMIT, 1) => {
            &[Str, I32, Str, Array(&[Str, Array(&[I32, I64, I64, Str])])]
        }
        (api_key::OFFSET_COMMIT, _) => {
            &[Str, I32, Str, I64, Array(&[Str, Array(&[I32, I64, Str])])]
        }
        (api_key::OFFSET_FETCH, _) => &[Str, Array(&[Str, Array(&[I32])])],
        (api_key::FIND_COORDINATOR, _) => &[Str],
        // v1+ ends with validate_only, a bool: left out, the walk just stops before it.
        (api_key::CREATE_TOPICS, _) => &[
            Array(&[
                Str,
                I32,
                I16,
                Array(&[I32, Array(&[I32])]),
                Array(&[Str, Str]),
            ]),
            I32,
        ],
        _ => &[],
    }
}

/// Where a request's fields are, as far as its structure still parses.
#[derive(Default)]
struct Fields {
    /// Integers, including string, array and message set lengths and, inside message
    /// sets, entry offsets and sizes.
    ints: Vec<Range<usize>>,
    /// Produced messages, from the CRC on.
    messages: Vec<Range<usize>>,
}

impl Fields {
    fn of(req: &[u8]) -> Self {
        let mut fields = Self::default();
        if req.len() >= 10 {
            fields.ints.extend([0..2, 2..4, 8..10]); // api key, version, client id length
            let _complete = body_start(req).and_then(|pos| {
                let mut c = Cursor { buf: req, pos };
                fields.walk(&mut c, body_layout(key_of(req), version_of(req)))
            });
        }
        fields
    }

    fn walk(&mut self, c: &mut Cursor<'_>, layout: &[Field]) -> Option<()> {
        for field in layout {
            // Every field starts with an integer: its value, a length or a count.
            let at = c.pos;
            let n = match field {
                Field::I16 | Field::Str => c.i16().map(i64::from)?,
                Field::I64 => c.i64()?,
                _ => c.i32().map(i64::from)?,
            };
            self.ints.push(at..c.pos);
            match field {
                Field::Str => c.skip(usize::try_from(n).unwrap_or(0))?,
                Field::MessageSet => {
                    if let Ok(len) = usize::try_from(n) {
                        let end = c.pos.checked_add(len).filter(|&e| e <= c.buf.len())?;
                        self.walk_message_set(c, end)?;
                    }
                }
                Field::Array(element) => {
                    for _ in 0..n {
                        self.walk(c, element)?;
                    }
                }
                Field::I16 | Field::I32 | Field::I64 => {}
            }
        }
        Some(())
    }

    fn walk_message_set(&mut self, c: &mut Cursor<'_>, end: usize) -> Option<()> {
        while end - c.pos >= 12 {
            self.ints.extend([c.pos..c.pos + 8, c.pos + 8..c.pos + 12]);
            c.skip(8)?;
            let size = usize::try_from(c.i32()?).ok()?;
            let message_end = c.pos.checked_add(size).filter(|&e| e <= end)?;
            if size > 4 {
                self.messages.push(c.pos..message_end);
            }
            c.pos = message_end;
        }
        c.pos = end;
        Some(())
    }
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let bytes = self.buf.get(self.pos..self.pos.checked_add(N)?)?;
        self.pos += N;
        bytes.try_into().ok()
    }

    fn i16(&mut self) -> Option<i16> {
        self.take().map(i16::from_be_bytes)
    }

    fn i32(&mut self) -> Option<i32> {
        self.take().map(i32::from_be_bytes)
    }

    fn i64(&mut self) -> Option<i64> {
        self.take().map(i64::from_be_bytes)
    }

    fn skip(&mut self, n: usize) -> Option<()> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len())?;
        self.pos = end;
        Some(())
    }
}

// Sending.

#[derive(Debug, Default)]
struct Outcomes {
    answered: usize,
    /// Produce with acks=0: the probe behind it was answered first.
    not_answered_acks_0: usize,
    closed_by_broker: usize,
    /// E.g. a Fetch long-polling on a mutated wait time; not a failure.
    no_answer_in_time: usize,
    wrong_size_closed: usize,
    wrong_size_no_close_in_time: usize,
}

/// The broker under fuzz, reached directly, over one connection until the broker closes
/// it (or it has a request outstanding past the read timeout).
struct Target {
    addr: SocketAddr,
    conn: Option<TcpStream>,
    probe: Vec<u8>,
    outcomes: Outcomes,
    /// Frames (or probes) not answered within the read timeout since the last answer.
    unanswered_in_a_row: usize,
}

enum Answer {
    Frame(Vec<u8>),
    Closed,
    TimedOut,
}

impl Target {
    fn new(addr: SocketAddr) -> Self {
        // ApiVersions v0: answered whatever state the broker's data is in.
        let mut probe = api_key::API_VERSIONS.to_be_bytes().to_vec();
        probe.extend_from_slice(&0i16.to_be_bytes());
        probe.extend_from_slice(&PROBE_CORRELATION_ID.to_be_bytes());
        probe.extend_from_slice(&(-1i16).to_be_bytes());
        Self {
            addr,
            conn: None,
            probe,
            outcomes: Outcomes::default(),
            unanswered_in_a_row: 0,
        }
    }

    fn connect(&self) -> TcpStream {
        // Most fuzz frames cost a connection, and closed ones linger in TIME_WAIT: if the
        // local ports run out, wait for some to expire.
        let start = Instant::now();
        let s = loop {
            match TcpStream::connect_timeout(&self.addr, DEADLINE) {
                Ok(s) => break s,
                Err(e)
                    if e.kind() == io::ErrorKind::AddrNotAvailable
                        && start.elapsed() < DEADLINE =>
                {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("cannot connect to the broker: {e}"),
            }
        };
        s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        s.set_nodelay(true).unwrap();
        s
    }

    /// Sends a well-framed request with a probe behind it and classifies what comes back.
    fn send(&mut self, req: &[u8], correlation_id: i32) {
        let mut conn = match self.conn.take() {
            Some(c) => c,
            None => self.connect(),
        };
        let mut bytes = framed(req);
        bytes.extend_from_slice(&framed(&self.probe));
        if conn.write_all(&bytes).is_err() {
            // The broker closed while we wrote (e.g. right after the size of a frame that
            // is too large).
            self.outcomes.closed_by_broker += 1;
            return;
        }
        let has_id = req.len() >= 8;
        let answer = read_answer(&mut conn);
        self.note(&answer);
        match answer {
            Answer::Closed => self.outcomes.closed_by_broker += 1,
            Answer::TimedOut => self.outcomes.no_answer_in_time += 1,
            Answer::Frame(resp) if has_id && resp[..4] == correlation_id.to_be_bytes() => {
                self.outcomes.answered += 1;
                let probe_answer = read_answer(&mut conn);
                self.note(&probe_answer);
                match probe_answer {
                    Answer::Frame(probe) => {
                        assert_eq!(
                            probe[..4],
                            PROBE_CORRELATION_ID.to_be_bytes(),
                            "answer out of order after {}",
                            hex(req)
                        );
                        self.conn = Some(conn);
                    }
                    Answer::TimedOut => {}
                    Answer::Closed => panic!(
                        "the broker closed the connection instead of answering ApiVersions \
                         after answering {}",
                        hex(req)
                    ),
                }
            }
            Answer::Frame(resp) if resp[..4] == PROBE_CORRELATION_ID.to_be_bytes() => {
                assert!(
                    is_fire_and_forget(req),
                    "the broker silently dropped a request that needs an answer: {}",
                    hex(req)
                );
                self.outcomes.not_answered_acks_0 += 1;
                self.conn = Some(conn);
            }
            Answer::Frame(resp) => panic!(
                "answer with correlation id {} to request {correlation_id} ({})",
                hex(&resp[..4]),
                hex(req)
            ),
        }
    }

    fn note(&mut self, answer: &Answer) {
        match answer {
            Answer::TimedOut => self.unanswered_in_a_row += 1,
            Answer::Frame(_) | Answer::Closed => self.unanswered_in_a_row = 0,
        }
    }

    /// Sends a frame whose size prefix promises more than follows, then ends the stream:
    /// the broker must close, never answer.
    fn send_wrong_size(&mut self, frame: &[u8]) {
        let mut conn = self.connect();
        if conn.write_all(frame).is_ok() {
            let _ = conn.shutdown(Shutdown::Write);
        }
        let answer = read_answer(&mut conn);
        self.note(&answer);
        match answer {
            Answer::Closed => self.outcomes.wrong_size_closed += 1,
            Answer::TimedOut => self.outcomes.wrong_size_no_close_in_time += 1,
            Answer::Frame(resp) => panic!(
                "answer {} to a frame shorter than its size: {}",
                hex(&resp),
                hex(frame)
            ),
        }
    }
}

/// One response frame; it must at least hold a correlation id.
fn read_answer(conn: &mut TcpStream) -> Answer {
    match read_frame(conn) {
        Ok(Some(resp)) => {
            assert!(resp.len() >= 4, "response without a correlation id");
            Answer::Frame(resp)
        }
        Ok(None) => Answer::Closed,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            Answer::TimedOut
        }
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::UnexpectedEof
            ) =>
        {
            Answer::Closed
        }
        Err(e) => panic!("reading an answer: {e}"),
    }
}

// Health checks.

/// A well-behaved client produces a message and fetches it back. Runs on a thread so a
/// broker that stopped answering fails the test at the deadline instead of hanging it.
fn health_check(mut client: KafkaClient, when: &str, recent: &VecDeque<Vec<u8>>) -> KafkaClient {
    let (done_tx, done_rx) = mpsc::channel();
    let value = format!("healthy {when}");
    std::thread::spawn(move || {
        let confirms = client
            .produce_messages(
                RequiredAcks::All,
                Duration::from_secs(5),
                vec![ProduceMessage::new(
                    HEALTH_TOPIC,
                    0,
                    None,
                    Some(value.as_bytes()),
                )],
            )
            .unwrap();
        let offset = confirms[0].partition_confirms[0].offset.unwrap();
        let resps = client
            .fetch_messages_for_partition(&FetchPartition::new(HEALTH_TOPIC, 0, offset))
            .unwrap();
        let data = resps[0].topics()[0].partitions()[0].data().unwrap();
        assert_eq!(data.messages()[0].value, value.as_bytes());
        let _ = done_tx.send(client);
    });
    let failure = match done_rx.recv_timeout(DEADLINE) {
        Ok(client) => return client,
        Err(mpsc::RecvTimeoutError::Timeout) => format!("no answer within {DEADLINE:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => "failed (see the panic above)".to_owned(),
    };
    let suspects: Vec<String> = recent.iter().map(|f| hex(f)).collect();
    panic!(
        "health check {when}: {failure}; the last fuzz frames, oldest first:\n{}",
        suspects.join("\n")
    );
}
