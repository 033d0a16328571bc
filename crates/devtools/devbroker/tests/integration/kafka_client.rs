//! The `kafka` crate (what the platform's workers use) against devbroker.

use std::time::Duration;

use crate::common::*;
use kafka::client::{FetchOffset, KafkaClient, RequiredAcks};
use kafka::producer::{Producer, Record};

#[test]
fn produce_consume_commit_and_resume_from_committed_offset() {
    let b = broker_with_topics(&[("orders", 1)]);
    let mut p = producer(&b.bootstrap());
    for i in 0..5 {
        p.send(&Record::from_value("orders", format!("m{i}")))
            .unwrap();
    }

    let mut c = consumer(&b.bootstrap(), "orders", "g1");
    let first = poll_n(&mut c, 5);
    assert_eq!(
        first[0].offset, 0,
        "nothing committed yet: starts from earliest"
    );
    // Commit exactly up to offset 2 (next to read: 3).
    c.consume_message("orders", 0, 2).unwrap();
    c.commit_consumed().unwrap();
    drop(c);
    assert_eq!(committed(&b.bootstrap(), "g1", "orders", 0), 3);

    let mut c = consumer(&b.bootstrap(), "orders", "g1");
    let rest = consume_n(&mut c, 2, true);
    assert_eq!(
        rest.iter().map(|g| g.value.clone()).collect::<Vec<_>>(),
        vec![b"m3".to_vec(), b"m4".to_vec()]
    );
    assert_eq!(committed(&b.bootstrap(), "g1", "orders", 0), 5);

    // Another group is independent and starts from the beginning.
    let mut other = consumer(&b.bootstrap(), "orders", "g2");
    assert_eq!(consume_n(&mut other, 5, true)[0].value, b"m0");
}

#[test]
fn two_partitions_are_independent() {
    let b = broker_with_topics(&[("two", 2)]);
    let mut p = producer(&b.bootstrap());
    for i in 0..4 {
        p.send(&Record::from_value("two", format!("p0-{i}")).with_partition(0))
            .unwrap();
        p.send(&Record::from_value("two", format!("p1-{i}")).with_partition(1))
            .unwrap();
    }
    let mut c = consumer(&b.bootstrap(), "two", "g");
    let got = consume_n(&mut c, 8, true);
    for part in 0..2 {
        let vals: Vec<_> = got
            .iter()
            .filter(|g| g.partition == part)
            .map(|g| (g.offset, String::from_utf8(g.value.clone()).unwrap()))
            .collect();
        let want: Vec<_> = (0..4).map(|i| (i, format!("p{part}-{i}"))).collect();
        assert_eq!(vals, want);
        assert_eq!(committed(&b.bootstrap(), "g", "two", part), 4);
    }

    let mut client = KafkaClient::new(vec![b.bootstrap()]);
    client.load_metadata_all().unwrap();
    for (which, want) in [(FetchOffset::Earliest, 0), (FetchOffset::Latest, 4)] {
        let offs = client.fetch_topic_offsets("two", which).unwrap();
        assert_eq!(offs.len(), 2);
        assert!(offs.iter().all(|o| o.offset == want), "{offs:?}");
    }
}

#[test]
fn keyed_records_keep_key_and_value_and_stay_in_one_partition() {
    let b = broker_with_topics(&[("keyed", 3)]);
    let mut p = producer(&b.bootstrap());
    let recs: Vec<(String, String)> = (0..30)
        .map(|i| (format!("{}", i % 5), format!("{{\"event_id\":{i}}}")))
        .collect();
    let batch: Vec<_> = recs
        .iter()
        .map(|(k, v)| Record::from_key_value("keyed", k.as_bytes(), v.as_bytes()))
        .collect();
    p.send_all(&batch).unwrap();

    let mut c = consumer(&b.bootstrap(), "keyed", "g");
    let got = consume_n(&mut c, 30, true);
    assert_each_key_in_one_partition(&got);
    let mut seen: Vec<_> = got
        .iter()
        .map(|g| {
            (
                String::from_utf8(g.key.clone()).unwrap(),
                String::from_utf8(g.value.clone()).unwrap(),
            )
        })
        .collect();
    let mut want = recs.clone();
    seen.sort();
    want.sort();
    assert_eq!(seen, want);
}

#[test]
fn compressed_produce_from_the_kafka_crate_reads_back() {
    let b = broker_with_topics(&[("gz", 1), ("sn", 1)]);
    for (topic, compression) in [
        ("gz", kafka::client::Compression::GZIP),
        ("sn", kafka::client::Compression::SNAPPY),
    ] {
        let mut p = Producer::from_hosts(vec![b.bootstrap()])
            .with_required_acks(RequiredAcks::All)
            .with_compression(compression)
            .create()
            .unwrap();
        let recs: Vec<_> = (0..10)
            .map(|i| Record::from_key_value(topic, format!("k{i}"), format!("v{i}")))
            .collect();
        p.send_all(&recs).unwrap();
        p.send(&Record::from_value(topic, "last".to_owned()))
            .unwrap();
        let mut c = consumer(&b.bootstrap(), topic, "g");
        let got = consume_n(&mut c, 11, true);
        let offsets: Vec<_> = got.iter().map(|g| g.offset).collect();
        assert_eq!(offsets, (0..11).collect::<Vec<_>>(), "{topic}");
        assert_eq!(got[3].key, b"k3");
        assert_eq!(got[3].value, b"v3");
        assert_eq!(got[10].value, b"last");
    }
}

#[test]
fn waiting_consumer_sees_a_later_produce() {
    let b = broker_with_topics(&[("wait", 1)]);
    let bootstrap = b.bootstrap();
    let mut c = reader(&bootstrap, "wait", Duration::from_secs(10))
        .create()
        .unwrap();
    let producer_thread = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        producer(&bootstrap)
            .send(&Record::from_value("wait", "late".to_owned()))
            .unwrap();
    });
    let got = consume_n(&mut c, 1, false);
    assert_eq!(got[0].value, b"late");
    producer_thread.join().unwrap();
}

#[test]
fn named_topics_are_auto_created_with_the_default_partition_count() {
    let b = broker_with_topics(&[]);
    let mut client = KafkaClient::new(vec![b.bootstrap()]);
    client.load_metadata(&["fresh"]).unwrap();
    let n = client.topics().partitions("fresh").map(|p| p.len());
    assert_eq!(n, Some(devbroker::DEFAULT_PARTITIONS as usize));
    // Listing all topics does not create any.
    client.load_metadata_all().unwrap();
    assert_eq!(client.topics().len(), 1);
}
