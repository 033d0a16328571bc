//! The Apache Kafka harness itself, on real brokers: start, topic creation as compose's
//! kafka-init does it (checked with kcat, a real client), SIGKILL and restart on the
//! same log directory, and the legacy protocol versions 4.x no longer serves.

use std::process::Command;

use testkit::{KafkaBroker, KafkaLine, broker_api_versions};

/// Partition count of `topic` as kcat (librdkafka) sees it.
fn kcat_partitions(bootstrap: &str, topic: &str) -> usize {
    let output = Command::new("kcat")
        .args(["-b", bootstrap, "-L", "-J", "-t", topic, "-m", "10"])
        .output()
        .expect("kcat is installed by scripts/setup-test-tools.sh");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    json["topics"][0]["partitions"].as_array().unwrap().len()
}

#[test]
fn kafka_3_9_creates_topics_and_survives_sigkill_on_its_log_dir() {
    let mut broker = KafkaBroker::start(KafkaLine::V3_9);
    assert!(broker.release().starts_with("3.9."), "{}", broker.release());
    broker.create_topic("order-topic", 3);
    assert_eq!(kcat_partitions(&broker.bootstrap(), "order-topic"), 3);

    broker.kill9();
    broker.restart();
    assert_eq!(kcat_partitions(&broker.bootstrap(), "order-topic"), 3);
}

#[test]
fn kafka_4_no_longer_serves_the_legacy_fetch_list_offsets_and_offset_commit() {
    let broker = KafkaBroker::start(KafkaLine::V4);
    assert!(broker.release().starts_with("4."), "{}", broker.release());
    let versions = broker_api_versions(&broker.bootstrap()).unwrap();
    let min_version = |api_key: i16| {
        versions
            .iter()
            .find(|(key, _, _)| *key == api_key)
            .map(|(_, min, _)| *min)
            .unwrap()
    };
    // KIP-896. (Produce v0-v2 are still advertised, for old librdkafka's sake
    // (KAFKA-18659), but refused when sent.)
    assert!(min_version(1) >= 4, "Fetch from v{}", min_version(1));
    assert!(min_version(2) >= 1, "ListOffsets from v{}", min_version(2));
    assert!(min_version(8) >= 2, "OffsetCommit from v{}", min_version(8));
    broker.create_topic("status-topic", 2);
    assert_eq!(kcat_partitions(&broker.bootstrap(), "status-topic"), 2);
}
