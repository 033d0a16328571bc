//! `--data-dir`: messages and committed offsets survive a restart of the real binary,
//! including a `kill -9` right after the acks.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::*;
use kafka::client::RequiredAcks;
use kafka::producer::{Producer, Record};

struct Running {
    child: Child,
    bootstrap: String,
}

impl Drop for Running {
    // A failing test must not leave a broker behind (it would also hold the test's
    // stderr open).
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the devbroker binary on a free port and reads the bound address it prints.
fn start(dir: &Path) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_devbroker"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .args(["--topic", "durable:2"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let bootstrap = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    Running { child, bootstrap }
}

fn kill_9(mut r: Running) {
    r.child.kill().unwrap(); // SIGKILL
    r.child.wait().unwrap();
}

fn values(got: &[Got], partition: i32) -> Vec<String> {
    got.iter()
        .filter(|g| g.partition == partition)
        .map(|g| String::from_utf8(g.value.clone()).unwrap())
        .collect()
}

#[test]
fn kill_9_right_after_acked_produces_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path());
    let mut all = Producer::from_hosts(vec![r.bootstrap.clone()])
        .with_required_acks(RequiredAcks::All)
        .create()
        .unwrap();
    let mut one = Producer::from_hosts(vec![r.bootstrap.clone()])
        .with_required_acks(RequiredAcks::One)
        .create()
        .unwrap();
    let mut want = [Vec::new(), Vec::new()];
    for i in 0..100 {
        let p = i % 2;
        let v = format!("all-{i}");
        all.send(&Record::from_value("durable", v.clone()).with_partition(p))
            .unwrap();
        want[p as usize].push(v);
    }
    let batch: Vec<_> = (0..50).map(|i| format!("batch-{i}")).collect();
    let recs: Vec<_> = batch
        .iter()
        .map(|v| Record::from_value("durable", v.as_bytes()).with_partition(1))
        .collect();
    all.send_all(&recs).unwrap();
    want[1].extend(batch.iter().cloned());
    // acks=1 is written to the OS before the ack: a process crash does not lose it.
    for i in 0..20 {
        let v = format!("one-{i}");
        one.send(&Record::from_value("durable", v.clone()).with_partition(0))
            .unwrap();
        want[0].push(v);
    }
    // Commit: group g has read partition 0 up to offset 30 (next 31), partition 1 to 9.
    let mut c = consumer(&r.bootstrap, "durable", "g");
    poll_n(&mut c, 170);
    c.consume_message("durable", 0, 30).unwrap();
    c.consume_message("durable", 1, 9).unwrap();
    c.commit_consumed().unwrap();

    kill_9(r);

    let r = start(dir.path());
    assert_eq!(committed(&r.bootstrap, "g", "durable", 0), 31);
    assert_eq!(committed(&r.bootstrap, "g", "durable", 1), 10);
    let mut c = consumer(&r.bootstrap, "durable", "fresh");
    let got = consume_n(&mut c, 170, false);
    assert_eq!(values(&got, 0), want[0]);
    assert_eq!(values(&got, 1), want[1]);

    // Appends continue after the recovered end.
    let mut p = producer(&r.bootstrap);
    p.send(&Record::from_value("durable", "after".to_owned()).with_partition(0))
        .unwrap();
    let got = consume_n(&mut c, 1, false);
    // Partition 0 held 50 acks=all + 20 acks=1 messages.
    assert_eq!(
        (got[0].offset, got[0].value.as_slice()),
        (70, &b"after"[..])
    );

    // The group resumes from its committed offsets.
    let mut g = consumer(&r.bootstrap, "durable", "g");
    let got = consume_n(&mut g, (71 - 31) + (100 - 10), true);
    let first = |partition| {
        got.iter()
            .filter(|m| m.partition == partition)
            .map(|m| m.offset)
            .min()
    };
    assert_eq!((first(0), first(1)), (Some(31), Some(10)));
    kill_9(r);
}

#[test]
fn graceful_restart_keeps_messages_offsets_and_auto_created_topics() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = start(dir.path());
    let mut client = kafka::client::KafkaClient::new(vec![r.bootstrap.clone()]);
    client.load_metadata(&["auto"]).unwrap();
    let mut p = Producer::from_client(client)
        .with_required_acks(RequiredAcks::All)
        .create()
        .unwrap();
    for i in 0..10 {
        p.send(&Record::from_value("auto", format!("m{i}")).with_partition(2))
            .unwrap();
    }
    let mut c = consumer(&r.bootstrap, "auto", "g");
    consume_n(&mut c, 10, true);
    drop(c);

    // SIGTERM: the broker drains connections and exits 0.
    let status = Command::new("kill")
        .args(["-TERM", &r.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let start_wait = std::time::Instant::now();
    let exit = loop {
        if let Some(s) = r.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start_wait.elapsed() < DEADLINE,
            "broker did not exit on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "{exit:?}");

    let r = start(dir.path());
    let mut client = kafka::client::KafkaClient::new(vec![r.bootstrap.clone()]);
    client.load_metadata_all().unwrap();
    assert_eq!(
        client.topics().partitions("auto").map(|p| p.len()),
        Some(devbroker::DEFAULT_PARTITIONS as usize)
    );
    assert_eq!(committed(&r.bootstrap, "g", "auto", 2), 10);
    let mut c = consumer(&r.bootstrap, "auto", "other");
    let got = consume_n(&mut c, 10, false);
    assert_eq!(got[9].value, b"m9");
    kill_9(r);
}

#[test]
fn library_restart_on_the_same_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let config = devbroker::BrokerConfig {
        data_dir: Some(dir.path().to_owned()),
        ..devbroker::BrokerConfig::default()
    };
    let b = devbroker::spawn_background(config.clone()).unwrap();
    let mut client = kafka::client::KafkaClient::new(vec![b.bootstrap()]);
    client.load_metadata(&["lib"]).unwrap();
    let mut p = Producer::from_client(client)
        .with_required_acks(RequiredAcks::All)
        .create()
        .unwrap();
    p.send(&Record::from_value("lib", "kept".to_owned()).with_partition(0))
        .unwrap();
    drop(p);
    b.stop();
    let b = devbroker::spawn_background(config).unwrap();
    let mut c = consumer(&b.bootstrap(), "lib", "g");
    assert_eq!(consume_n(&mut c, 1, true)[0].value, b"kept");
}
