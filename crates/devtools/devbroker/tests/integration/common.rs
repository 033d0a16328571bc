//! Helpers shared by the integration tests. Every test starts its own broker on
//! 127.0.0.1:0, so tests run in parallel.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use devbroker::{BackgroundBroker, BrokerConfig, TopicSpec};
use kafka::client::{FetchOffset, GroupOffsetStorage, KafkaClient};
use kafka::consumer::Consumer;
use kafka::producer::{Producer, RequiredAcks};

/// Deadline for anything a test waits for. Not a timing assertion: only a bound so a
/// broken broker fails the test instead of hanging it.
pub const DEADLINE: Duration = Duration::from_secs(30);

pub fn broker_with_topics(topics: &[(&str, i32)]) -> BackgroundBroker {
    devbroker::spawn_background(BrokerConfig {
        topics: topics
            .iter()
            .map(|(n, p)| TopicSpec {
                name: (*n).to_owned(),
                partitions: *p,
            })
            .collect(),
        ..BrokerConfig::default()
    })
    .unwrap()
}

pub fn producer(bootstrap: &str) -> Producer {
    Producer::from_hosts(vec![bootstrap.to_owned()])
        .with_ack_timeout(Duration::from_secs(5))
        .with_required_acks(RequiredAcks::All)
        .create()
        .unwrap()
}

/// A consumer of `topic` in `group` (offsets stored in Kafka), from the earliest
/// offset when the group has none, each fetch waiting up to 200 ms.
pub fn consumer(bootstrap: &str, topic: &str, group: &str) -> Consumer {
    reader(bootstrap, topic, Duration::from_millis(200))
        .with_group(group.to_owned())
        .with_offset_storage(Some(GroupOffsetStorage::Kafka))
        .create()
        .unwrap()
}

/// A consumer of `topic` from its earliest offset, to be built (`create`), each fetch
/// waiting up to `max_wait` for at least one byte.
pub fn reader(bootstrap: &str, topic: &str, max_wait: Duration) -> kafka::consumer::Builder {
    Consumer::from_hosts(vec![bootstrap.to_owned()])
        .with_topic(topic.to_owned())
        .with_fallback_offset(FetchOffset::Earliest)
        .with_fetch_max_wait_time(max_wait)
        .with_fetch_min_bytes(1)
}

/// Asserts that every key of `got` came from one partition only.
#[track_caller]
pub fn assert_each_key_in_one_partition(got: &[Got]) {
    let mut partitions_of = std::collections::HashMap::<_, Vec<i32>>::new();
    for g in got {
        let partitions = partitions_of.entry(&g.key).or_default();
        if !partitions.contains(&g.partition) {
            partitions.push(g.partition);
        }
    }
    assert!(
        partitions_of
            .values()
            .all(|partitions| partitions.len() == 1),
        "key split across partitions: {partitions_of:?}"
    );
}

/// A consumed message, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Got {
    pub partition: i32,
    pub offset: i64,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

/// Polls until `n` messages arrived (or the deadline), marking them consumed and
/// committing after each poll if `commit`.
pub fn consume_n(c: &mut Consumer, n: usize, commit: bool) -> Vec<Got> {
    collect(c, n, true, commit)
}

/// Polls until `n` messages arrived without marking anything consumed.
pub fn poll_n(c: &mut Consumer, n: usize) -> Vec<Got> {
    collect(c, n, false, false)
}

fn collect(c: &mut Consumer, n: usize, mark: bool, commit: bool) -> Vec<Got> {
    let start = Instant::now();
    let mut out = Vec::new();
    while out.len() < n {
        assert!(
            start.elapsed() < DEADLINE,
            "only {} of {n} messages arrived: {out:?}",
            out.len()
        );
        let sets = c.poll().unwrap();
        for set in sets.iter() {
            for m in set.messages() {
                out.push(Got {
                    partition: set.partition(),
                    offset: m.offset,
                    key: m.key.to_vec(),
                    value: m.value.to_vec(),
                });
            }
            if mark {
                c.consume_messageset(set).unwrap();
            }
        }
        if commit {
            c.commit_consumed().unwrap();
        }
    }
    out
}

/// The committed offset of a group, via the kafka crate's own client.
pub fn committed(bootstrap: &str, group: &str, topic: &str, partition: i32) -> i64 {
    let mut client = KafkaClient::new(vec![bootstrap.to_owned()]);
    client.set_group_offset_storage(Some(GroupOffsetStorage::Kafka));
    client.load_metadata_all().unwrap();
    let offs = client.fetch_group_topic_offset(group, topic).unwrap();
    offs.iter()
        .find(|o| o.partition == partition)
        .map_or(-1, |o| o.offset)
}

pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads partition `partition` of `topic` with kcat, from the beginning to the end of
/// the partition, and returns stdout; `extra` adds kcat arguments (format, settings).
pub fn kcat_read(bootstrap: &str, topic: &str, partition: i32, extra: &[&str]) -> Vec<u8> {
    let partition = partition.to_string();
    let mut args = vec![
        "-b",
        bootstrap,
        "-C",
        "-t",
        topic,
        "-p",
        &partition,
        "-o",
        "beginning",
        "-e",
        "-q",
    ];
    args.extend_from_slice(extra);
    kcat(&args, b"")
}

/// Runs kcat with `args`, feeding `stdin`, and returns stdout. Fails the test with a
/// clear message if kcat is not installed or does not finish before the deadline.
pub fn kcat(args: &[&str], stdin: &[u8]) -> Vec<u8> {
    let mut child = match Command::new("kcat")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "kcat is not installed (needed by devbroker's kcat tests): apt-get install -y kcat"
        ),
        Err(e) => panic!("cannot run kcat: {e}"),
    };
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).unwrap();
    drop(input);
    // Drain the pipes while waiting: a full pipe would block kcat forever.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        stdout.read_to_end(&mut v).map(|_| v)
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        stderr.read_to_end(&mut v).map(|_| v)
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            let err = err_reader.join().unwrap().unwrap_or_default();
            panic!(
                "kcat {args:?} did not finish; stderr: {}",
                String::from_utf8_lossy(&err)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = out_reader.join().unwrap().unwrap();
    let err = err_reader.join().unwrap().unwrap();
    assert!(
        status.success(),
        "kcat {args:?} failed: {}",
        String::from_utf8_lossy(&err)
    );
    out
}

/// A raw connection to `b`, reads bounded by [`DEADLINE`].
pub fn connect(b: &BackgroundBroker) -> std::net::TcpStream {
    let s = std::net::TcpStream::connect(b.addr()).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s
}

/// A request frame: size, api key, version, correlation id, client id, body.
pub fn request(key: i16, version: i16, corr: i32, body: &[u8]) -> Vec<u8> {
    let mut e = devbroker::protocol::Encoder::new();
    e.i16(key).i16(version).i32(corr).string("raw-test");
    let mut req = e.into_bytes().to_vec();
    req.extend_from_slice(body);
    let mut frame = (req.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&req);
    frame
}

/// Reads one response and returns its body after checking the correlation id.
pub fn response(s: &mut std::net::TcpStream, corr: i32) -> Vec<u8> {
    let mut size = [0u8; 4];
    s.read_exact(&mut size).unwrap();
    let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
    s.read_exact(&mut body).unwrap();
    assert_eq!(body[..4], corr.to_be_bytes());
    body.split_off(4)
}

/// Asserts the broker closed `s` (EOF or reset).
pub fn assert_closed(s: &mut std::net::TcpStream, what: &str) {
    let mut buf = [0u8; 16];
    match s.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("{what}: expected the broker to close the connection, got {other:?}"),
    }
}
