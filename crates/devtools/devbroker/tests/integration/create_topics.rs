//! CreateTopics (api key 19, v0-4), hand-encoded over real sockets: creation with a
//! partition count (seen by Metadata and kcat), Kafka's error codes, validate_only,
//! manual assignments, persistence with a data dir, each version's layout.

use std::io::Write;
use std::path::Path;

use crate::common::*;
use devbroker::protocol::{Decoder, Encoder, api_key, error_code};
use devbroker::{BackgroundBroker, BrokerConfig, TopicSpec};

/// Not Kafka's own code names; the numbers are the protocol's.
const TOPIC_ALREADY_EXISTS: i16 = 36;
const INVALID_PARTITIONS: i16 = 37;
const INVALID_REPLICATION_FACTOR: i16 = 38;
const INVALID_REPLICA_ASSIGNMENT: i16 = 39;

fn broker(data_dir: Option<&Path>) -> BackgroundBroker {
    devbroker::spawn_background(BrokerConfig {
        data_dir: data_dir.map(Path::to_owned),
        default_partitions: 2,
        topics: vec![TopicSpec {
            name: "existing".into(),
            partitions: 1,
        }],
        ..BrokerConfig::default()
    })
    .unwrap()
}

/// One topic of a CreateTopics request.
struct NewTopic {
    name: String,
    partitions: i32,
    replication_factor: i16,
    assignments: Vec<(i32, Vec<i32>)>,
    configs: Vec<(&'static str, Option<&'static str>)>,
}

fn topic(name: &str, partitions: i32, replication_factor: i16) -> NewTopic {
    NewTopic {
        name: name.to_owned(),
        partitions,
        replication_factor,
        assignments: Vec::new(),
        configs: Vec::new(),
    }
}

/// The request body at `version` (validate_only is only on the wire from v1).
fn create_body(version: i16, topics: &[NewTopic], validate_only: bool, timeout_ms: i32) -> Vec<u8> {
    let mut e = Encoder::new();
    e.array(topics, |e, t| {
        e.string(&t.name)
            .i32(t.partitions)
            .i16(t.replication_factor);
        e.array(&t.assignments, |e, (index, brokers)| {
            e.i32(*index).array(brokers, |e, b| {
                e.i32(*b);
            });
        });
        e.array(&t.configs, |e, (name, value)| {
            e.string(name).nullable_string(*value);
        });
    });
    e.i32(timeout_ms);
    if version >= 1 {
        e.bool(validate_only);
    }
    e.into_bytes().to_vec()
}

/// A topic's result: name, error code, error message (`None` below v1 too).
type Created = (String, i16, Option<String>);

/// Parses a response strictly by the layout of `version`: nothing may be left over.
fn create_result(version: i16, body: &[u8]) -> Vec<Created> {
    let mut d = Decoder::new(body);
    if version >= 2 {
        assert_eq!(d.i32("throttle_time_ms").unwrap(), 0);
    }
    let n = d.i32("topics").unwrap();
    let topics = (0..n)
        .map(|_| {
            let name = d.string("name").unwrap();
            let code = d.i16("error_code").unwrap();
            let message = if version >= 1 {
                d.nullable_string("error_message").unwrap()
            } else {
                None
            };
            (name, code, message)
        })
        .collect();
    d.finish().unwrap();
    topics
}

/// Sends one CreateTopics request on its own connection and returns the results.
fn create_at(
    b: &BackgroundBroker,
    version: i16,
    topics: &[NewTopic],
    validate_only: bool,
) -> Vec<Created> {
    let mut s = connect(b);
    let body = create_body(version, topics, validate_only, 30_000);
    s.write_all(&request(api_key::CREATE_TOPICS, version, 7, &body))
        .unwrap();
    create_result(version, &response(&mut s, 7))
}

fn create(b: &BackgroundBroker, topics: &[NewTopic]) -> Vec<Created> {
    create_at(b, 4, topics, false)
}

/// Asserts one result per topic, in order, with these codes; returns the messages.
fn assert_codes(results: &[Created], want: &[(&str, i16)]) -> Vec<Option<String>> {
    let got: Vec<(&str, i16)> = results.iter().map(|(n, c, _)| (n.as_str(), *c)).collect();
    assert_eq!(got, want, "{results:?}");
    for (name, code, message) in results {
        assert_eq!(
            *code == error_code::NONE,
            message.is_none(),
            "{name}: an error carries a message, a success none: {results:?}"
        );
    }
    results.iter().map(|(_, _, m)| m.clone()).collect()
}

/// Every topic with its partition count, from Metadata v0 with an empty list ("all
/// topics", which creates nothing).
fn all_topics(b: &BackgroundBroker) -> Vec<(String, i32)> {
    let mut s = connect(b);
    s.write_all(&request(api_key::METADATA, 0, 3, &0i32.to_be_bytes()))
        .unwrap();
    let body = response(&mut s, 3);
    let mut d = Decoder::new(&body);
    for _ in 0..d.i32("brokers").unwrap() {
        d.i32("node").unwrap();
        d.string("host").unwrap();
        d.i32("port").unwrap();
    }
    let n = d.i32("topics").unwrap();
    let mut topics = Vec::new();
    for _ in 0..n {
        assert_eq!(d.i16("topic error").unwrap(), error_code::NONE);
        let name = d.string("name").unwrap();
        let partitions = d.i32("partitions").unwrap();
        for i in 0..partitions {
            assert_eq!(d.i16("partition error").unwrap(), error_code::NONE);
            assert_eq!(d.i32("partition").unwrap(), i);
            d.i32("leader").unwrap();
            for _ in 0..d.i32("replicas").unwrap() {
                d.i32("replica").unwrap();
            }
            for _ in 0..d.i32("isr").unwrap() {
                d.i32("isr").unwrap();
            }
        }
        topics.push((name, partitions));
    }
    d.finish().unwrap();
    topics
}

fn partitions_of(b: &BackgroundBroker, name: &str) -> Option<i32> {
    all_topics(b)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, p)| p)
}

/// The partition count kcat (librdkafka) sees for `name`, from `kcat -L -J`.
fn kcat_partitions(b: &BackgroundBroker, name: &str) -> usize {
    let out = kcat(&["-b", &b.bootstrap(), "-L", "-J", "-t", name], b"");
    let meta: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let topics = meta["topics"].as_array().unwrap();
    let t = topics
        .iter()
        .find(|t| t["topic"] == name)
        .unwrap_or_else(|| panic!("{name} not in {meta}"));
    assert!(t.get("error").is_none(), "{t}");
    t["partitions"].as_array().unwrap().len()
}

#[test]
fn creates_a_topic_with_the_asked_partition_count() {
    let b = broker(None);
    let results = create(&b, &[topic("three", 3, 1)]);
    assert_codes(&results, &[("three", error_code::NONE)]);
    assert_eq!(partitions_of(&b, "three"), Some(3));
    assert_eq!(kcat_partitions(&b, "three"), 3);
    let listed = String::from_utf8(kcat(&["-b", &b.bootstrap(), "-L"], b"")).unwrap();
    assert!(
        listed.contains("topic \"three\" with 3 partitions"),
        "{listed}"
    );

    // The new partitions take messages like any other: the last one, through kcat.
    kcat(
        &["-b", &b.bootstrap(), "-P", "-t", "three", "-p", "2"],
        b"into partition 2\n",
    );
    let out = kcat_read(&b.bootstrap(), "three", 2, &[]);
    assert_eq!(out, b"into partition 2\n");

    // -1 partitions and -1 replication factor: the broker defaults (2 partitions here).
    let results = create(&b, &[topic("defaults", -1, -1)]);
    assert_codes(&results, &[("defaults", error_code::NONE)]);
    assert_eq!(partitions_of(&b, "defaults"), Some(2));
    assert_eq!(kcat_partitions(&b, "defaults"), 2);
}

#[test]
fn an_existing_topic_is_refused_and_left_as_it_is() {
    let b = broker(None);
    assert_codes(
        &create(&b, &[topic("twice", 4, 1)]),
        &[("twice", error_code::NONE)],
    );
    let messages = assert_codes(
        &create(&b, &[topic("twice", 6, 1)]),
        &[("twice", TOPIC_ALREADY_EXISTS)],
    );
    assert_eq!(
        messages[0].as_deref(),
        Some("Topic 'twice' already exists.")
    );
    assert_eq!(partitions_of(&b, "twice"), Some(4));

    // Topics from the configuration and auto-created ones exist just the same.
    kcat(&["-b", &b.bootstrap(), "-L", "-t", "auto"], b"");
    assert_eq!(partitions_of(&b, "auto"), Some(2));
    assert_codes(
        &create(&b, &[topic("existing", 3, 1), topic("auto", 3, 1)]),
        &[
            ("existing", TOPIC_ALREADY_EXISTS),
            ("auto", TOPIC_ALREADY_EXISTS),
        ],
    );
    assert_eq!(partitions_of(&b, "existing"), Some(1));
    assert_eq!(partitions_of(&b, "auto"), Some(2));
}

#[test]
fn racing_creations_of_one_topic_make_exactly_one() {
    let b = broker(None);
    let results: Vec<i16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| create(&b, &[topic("raced", 5, 1)])[0].1))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        results.iter().filter(|&&c| c == error_code::NONE).count(),
        1,
        "{results:?}"
    );
    assert!(
        results
            .iter()
            .all(|&c| c == error_code::NONE || c == TOPIC_ALREADY_EXISTS),
        "{results:?}"
    );
    assert_eq!(partitions_of(&b, "raced"), Some(5));
}

#[test]
fn bad_replication_factor_is_refused() {
    let b = broker(None);
    // (name, replication factor, expected code), each with 3 partitions.
    let cases = [
        ("rf-three", 3, INVALID_REPLICATION_FACTOR),
        ("rf-zero", 0, INVALID_REPLICATION_FACTOR),
        ("rf-minus-two", -2, INVALID_REPLICATION_FACTOR),
        ("rf-one", 1, error_code::NONE),
        ("rf-default", -1, error_code::NONE),
    ];
    let results = create(&b, &cases.map(|(name, rf, _)| topic(name, 3, rf)));
    let messages = assert_codes(&results, &cases.map(|(name, _, code)| (name, code)));
    assert_eq!(
        messages[0].as_deref(),
        Some("Replication factor: 3 larger than available brokers: 1.")
    );
    let names: Vec<String> = all_topics(&b).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["existing", "rf-default", "rf-one"]);
}

#[test]
fn bad_names_partition_counts_and_duplicates_are_refused() {
    let b = broker(None);
    let long = "x".repeat(250);
    let results = create(
        &b,
        &[
            topic("a/b", 1, 1),
            topic("", 1, 1),
            topic("..", 1, 1),
            topic(&long, 1, 1),
            topic("zero", 0, 1),
            topic("minus-two", -2, 1),
            topic("too-many", 10_001, 1),
            topic("most", 10_000, 1),
            topic("dup", 1, 1),
            topic("dup", 2, 1),
        ],
    );
    assert_codes(
        &results,
        &[
            ("a/b", error_code::INVALID_TOPIC_EXCEPTION),
            ("", error_code::INVALID_TOPIC_EXCEPTION),
            ("..", error_code::INVALID_TOPIC_EXCEPTION),
            (&long, error_code::INVALID_TOPIC_EXCEPTION),
            ("zero", INVALID_PARTITIONS),
            ("minus-two", INVALID_PARTITIONS),
            ("too-many", INVALID_PARTITIONS),
            ("most", error_code::NONE),
            // One result per name, as in Kafka.
            ("dup", error_code::INVALID_REQUEST),
        ],
    );
    assert_eq!(
        all_topics(&b),
        [("existing".to_owned(), 1), ("most".to_owned(), 10_000)]
    );
}

#[test]
fn validate_only_checks_but_creates_nothing() {
    let b = broker(None);
    for version in 1..=4 {
        let results = create_at(
            &b,
            version,
            &[
                topic("checked", 3, 1),
                topic("existing", 3, 1),
                topic("checked-rf", 3, 2),
            ],
            true,
        );
        assert_codes(
            &results,
            &[
                ("checked", error_code::NONE),
                ("existing", TOPIC_ALREADY_EXISTS),
                ("checked-rf", INVALID_REPLICATION_FACTOR),
            ],
        );
    }
    assert_eq!(partitions_of(&b, "checked"), None);
    // The same request without validate_only creates it.
    assert_codes(
        &create(&b, &[topic("checked", 3, 1)]),
        &[("checked", error_code::NONE)],
    );
    assert_eq!(partitions_of(&b, "checked"), Some(3));
}

#[test]
fn manual_assignments_on_the_single_node_and_configs() {
    let b = broker(None);
    let assigned = |name: &str, partitions: i32, rf: i16, assignments: &[(i32, &[i32])]| {
        let mut t = topic(name, partitions, rf);
        t.assignments = assignments.iter().map(|(i, b)| (*i, b.to_vec())).collect();
        t
    };
    let mut with_configs = topic("with-configs", 2, 1);
    with_configs.configs = vec![("retention.ms", Some("1000")), ("cleanup.policy", None)];
    let results = create(
        &b,
        &[
            assigned("manual", -1, -1, &[(1, &[0]), (0, &[0]), (2, &[0])]),
            assigned("manual-and-count", 3, -1, &[(0, &[0])]),
            assigned("manual-and-rf", -1, 1, &[(0, &[0])]),
            assigned("other-broker", -1, -1, &[(0, &[1])]),
            assigned("two-replicas", -1, -1, &[(0, &[0, 0])]),
            assigned("no-replicas", -1, -1, &[(0, &[])]),
            assigned("gap", -1, -1, &[(0, &[0]), (2, &[0])]),
            assigned("same-twice", -1, -1, &[(0, &[0]), (0, &[0])]),
            with_configs,
        ],
    );
    assert_codes(
        &results,
        &[
            ("manual", error_code::NONE),
            ("manual-and-count", error_code::INVALID_REQUEST),
            ("manual-and-rf", error_code::INVALID_REQUEST),
            ("other-broker", INVALID_REPLICA_ASSIGNMENT),
            ("two-replicas", INVALID_REPLICA_ASSIGNMENT),
            ("no-replicas", INVALID_REPLICA_ASSIGNMENT),
            ("gap", INVALID_REPLICA_ASSIGNMENT),
            ("same-twice", INVALID_REPLICA_ASSIGNMENT),
            // Accepted; devbroker has no per-topic settings to apply them to.
            ("with-configs", error_code::NONE),
        ],
    );
    assert_eq!(
        all_topics(&b),
        [
            ("existing".to_owned(), 1),
            ("manual".to_owned(), 3),
            ("with-configs".to_owned(), 2)
        ]
    );
}

#[test]
fn created_topics_survive_a_restart_with_a_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    {
        let b = broker(Some(dir.path()));
        assert_codes(
            &create(&b, &[topic("kept", 4, 1), topic("kept-default", -1, -1)]),
            &[
                ("kept", error_code::NONE),
                ("kept-default", error_code::NONE),
            ],
        );
        kcat(
            &["-b", &b.bootstrap(), "-P", "-t", "kept", "-p", "3"],
            b"before restart\n",
        );
        // Validated only: must not appear after the restart either.
        assert_codes(
            &create_at(&b, 1, &[topic("not-kept", 2, 1)], true),
            &[("not-kept", error_code::NONE)],
        );
    }
    let b = broker(Some(dir.path()));
    assert_eq!(
        all_topics(&b),
        [
            ("existing".to_owned(), 1),
            ("kept".to_owned(), 4),
            ("kept-default".to_owned(), 2)
        ]
    );
    assert_codes(
        &create(&b, &[topic("kept", 4, 1)]),
        &[("kept", TOPIC_ALREADY_EXISTS)],
    );
    let out = kcat_read(&b.bootstrap(), "kept", 3, &[]);
    assert_eq!(out, b"before restart\n");
}

#[test]
fn every_version_0_to_4_decodes_and_answers_in_its_layout() {
    let b = broker(None);
    // Advertised like the other APIs.
    let mut s = connect(&b);
    s.write_all(&request(api_key::API_VERSIONS, 0, 1, &[]))
        .unwrap();
    let body = response(&mut s, 1);
    let mut d = Decoder::new(&body);
    assert_eq!(d.i16("error").unwrap(), error_code::NONE);
    let table: Vec<(i16, i16, i16)> = (0..d.i32("n").unwrap())
        .map(|_| {
            (
                d.i16("k").unwrap(),
                d.i16("min").unwrap(),
                d.i16("max").unwrap(),
            )
        })
        .collect();
    assert!(table.contains(&(api_key::CREATE_TOPICS, 0, 4)), "{table:?}");

    for version in 0..=4i16 {
        let name = format!("v{version}");
        // create_result parses the exact layout: throttle time from v2, messages from v1.
        let results = create_at(
            &b,
            version,
            &[topic(&name, 2, 1), topic("existing", 1, 1)],
            false,
        );
        assert_eq!(results.len(), 2, "v{version}");
        assert_eq!(
            (results[0].0.as_str(), results[0].1),
            (name.as_str(), error_code::NONE)
        );
        assert_eq!(results[1].1, TOPIC_ALREADY_EXISTS, "v{version}");
        assert_eq!(
            results[1].2.is_some(),
            version >= 1,
            "v{version}: the error message is on the wire from v1"
        );
        assert_eq!(partitions_of(&b, &name), Some(2), "v{version}");
    }

    // Several requests on one connection, answered in order.
    let mut s = connect(&b);
    for (corr, version) in (10..).zip(0..=4i16) {
        let body = create_body(
            version,
            &[topic(&format!("pipelined-{version}"), 1, 1)],
            false,
            0,
        );
        s.write_all(&request(api_key::CREATE_TOPICS, version, corr, &body))
            .unwrap();
    }
    for (corr, version) in (10..).zip(0..=4i16) {
        let results = create_result(version, &response(&mut s, corr));
        assert_codes(
            &results,
            &[(&format!("pipelined-{version}"), error_code::NONE)],
        );
    }
}

#[test]
fn malformed_requests_close_their_connection_only() {
    let b = broker(None);
    let good = create_body(1, &[topic("fine", 1, 1)], false, 1000);
    let mut bad: Vec<(String, i16, Vec<u8>)> = vec![
        ("v5 (flexible, not served)".into(), 5, good.clone()),
        ("v0 with v1's validate_only byte".into(), 0, good.clone()),
        (
            "v1 without validate_only".into(),
            1,
            good[..good.len() - 1].to_vec(),
        ),
        ("trailing byte".into(), 1, [&good[..], &[0]].concat()),
        (
            "forged topic count".into(),
            1,
            [&i32::MAX.to_be_bytes()[..], &good[4..]].concat(),
        ),
        (
            "negative name length".into(),
            1,
            [&good[..4], &[0x80, 0][..], &good[6..]].concat(),
        ),
    ];
    for cut in [0, 3, 7, 12] {
        bad.push((format!("cut at {cut}"), 1, good[..cut].to_vec()));
    }
    for (what, version, body) in bad {
        let mut s = connect(&b);
        s.write_all(&request(api_key::CREATE_TOPICS, version, 1, &body))
            .unwrap();
        assert_closed(&mut s, &what);
    }
    assert_eq!(partitions_of(&b, "fine"), None);
    // The broker is fine and the well-formed request works.
    let results = create_at(&b, 1, &[topic("fine", 1, 1)], false);
    assert_codes(&results, &[("fine", error_code::NONE)]);
}
