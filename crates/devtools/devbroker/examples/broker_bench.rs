//! Throughput and latency of the `kafka` crate against devbroker on this machine.
//!
//! ```text
//! cargo run --release -p devbroker --example broker_bench -- [--messages N] [--size BYTES] [--batch N] [--samples N]
//! ```
//!
//! Prints, for an in-memory broker and for one with `--data-dir` (acks=all = fdatasync
//! per produce request): produce and consume throughput (messages/s, MB/s), and the
//! latency from a produce to a consumer waiting in a long poll (p50/p99).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::mpsc;
use std::time::{Duration, Instant};

use devbroker::{BrokerConfig, TopicSpec};
use kafka::client::{FetchOffset, GroupOffsetStorage};
use kafka::consumer::Consumer;
use kafka::producer::{Producer, Record, RequiredAcks};

struct Args {
    messages: usize,
    size: usize,
    batch: usize,
    samples: usize,
}

fn args() -> Args {
    let mut a = Args {
        messages: 200_000,
        size: 200,
        batch: 500,
        samples: 2_000,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let v = || {
            pair.get(1)
                .and_then(|v| v.parse().ok())
                .expect("numeric value")
        };
        match pair[0].as_str() {
            "--messages" => a.messages = v(),
            "--size" => a.size = v(),
            "--batch" => a.batch = v(),
            "--samples" => a.samples = v(),
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

fn main() {
    let a = args();
    println!(
        "devbroker bench: {} messages of {} bytes, produce batches of {}, acks=all, {} latency samples",
        a.messages, a.size, a.batch, a.samples
    );
    run("in memory", None, &a);
    let dir = tempfile::tempdir().unwrap();
    run(
        "--data-dir (fsync per acks=all request)",
        Some(dir.path()),
        &a,
    );
}

fn run(label: &str, data_dir: Option<&std::path::Path>, a: &Args) {
    let b = devbroker::spawn_background(BrokerConfig {
        data_dir: data_dir.map(|d| d.to_owned()),
        topics: vec![
            TopicSpec {
                name: "bench".into(),
                partitions: 1,
            },
            TopicSpec {
                name: "latency".into(),
                partitions: 1,
            },
        ],
        ..BrokerConfig::default()
    })
    .unwrap();
    let hosts = vec![b.bootstrap()];
    println!("\n== {label}");

    // Produce throughput.
    let value = {
        let mut v =
            br#"{"event_id":1,"order_id":42,"user_id":7,"total_amount":1999,"pad":""#.to_vec();
        v.resize(a.size.saturating_sub(2), b'x');
        v.extend_from_slice(b"\"}");
        v
    };
    let mut producer = Producer::from_hosts(hosts.clone())
        .with_required_acks(RequiredAcks::All)
        .with_ack_timeout(Duration::from_secs(10))
        .create()
        .unwrap();
    let keys: Vec<String> = (0..a.batch).map(|i| i.to_string()).collect();
    let start = Instant::now();
    let mut sent = 0;
    while sent < a.messages {
        let n = a.batch.min(a.messages - sent);
        let recs: Vec<_> = keys[..n]
            .iter()
            .map(|k| Record::from_key_value("bench", k.as_bytes(), &value[..]))
            .collect();
        producer.send_all(&recs).unwrap();
        sent += n;
    }
    report("produce", sent, sent * value.len(), start.elapsed());

    // Consume throughput (from the beginning, committing per poll).
    let mut consumer = Consumer::from_hosts(hosts.clone())
        .with_topic("bench".into())
        .with_group("bench".into())
        .with_offset_storage(Some(GroupOffsetStorage::Kafka))
        .with_fallback_offset(FetchOffset::Earliest)
        .with_fetch_max_bytes_per_partition(1024 * 1024)
        .with_fetch_min_bytes(1)
        .create()
        .unwrap();
    let start = Instant::now();
    let (mut got, mut bytes) = (0usize, 0usize);
    while got < a.messages {
        let sets = consumer.poll().unwrap();
        for set in sets.iter() {
            for m in set.messages() {
                got += 1;
                bytes += m.value.len();
            }
            consumer.consume_messageset(set).unwrap();
        }
        consumer.commit_consumed().unwrap();
    }
    report("consume", got, bytes, start.elapsed());

    // Latency: one message at a time to a consumer parked in a long poll.
    let clock = Instant::now();
    let (tx, rx) = mpsc::channel();
    let samples = a.samples;
    let consumer_hosts = hosts.clone();
    let waiter = std::thread::spawn(move || {
        let mut c = Consumer::from_hosts(consumer_hosts)
            .with_topic("latency".into())
            .with_fallback_offset(FetchOffset::Earliest)
            .with_fetch_max_wait_time(Duration::from_secs(5))
            .with_fetch_min_bytes(1)
            .create()
            .unwrap();
        tx.send(()).unwrap();
        let mut lat = Vec::with_capacity(samples);
        while lat.len() < samples {
            for set in c.poll().unwrap().iter() {
                for m in set.messages() {
                    let sent_ns: u128 = std::str::from_utf8(m.value).unwrap().parse().unwrap();
                    lat.push(clock.elapsed().as_nanos() - sent_ns);
                }
            }
        }
        lat
    });
    rx.recv().unwrap();
    for _ in 0..samples {
        // A pause so every message finds the consumer already waiting.
        std::thread::sleep(Duration::from_millis(1));
        let now = clock.elapsed().as_nanos().to_string();
        producer
            .send(&Record::from_value("latency", now.as_bytes()))
            .unwrap();
    }
    let mut lat = waiter.join().unwrap();
    lat.sort_unstable();
    let pct = |p: f64| {
        let i = ((lat.len() as f64 - 1.0) * p).round() as usize;
        lat[i] as f64 / 1_000.0
    };
    println!(
        "produce -> waiting consumer latency: p50 {:.0} us, p99 {:.0} us, max {:.0} us ({} samples)",
        pct(0.50),
        pct(0.99),
        pct(1.0),
        lat.len()
    );
}

fn report(what: &str, n: usize, bytes: usize, took: Duration) {
    let secs = took.as_secs_f64();
    println!(
        "{what:8}: {n} messages in {secs:.2} s = {:.0} messages/s, {:.1} MB/s",
        n as f64 / secs,
        bytes as f64 / secs / 1e6
    );
}
