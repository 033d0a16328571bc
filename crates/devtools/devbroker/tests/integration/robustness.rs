//! Bad input on the wire: garbage, truncated and oversized frames, unknown API keys and
//! versions, corrupt messages. Each affects only its own connection (or partition
//! result); other clients keep being served. Also many concurrent connections.

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use crate::common::*;
use devbroker::protocol::{Decoder, Encoder, api_key, error_code};
use devbroker::{BrokerConfig, TopicSpec};
use kafka::client::{FetchPartition, KafkaClient, ProduceMessage, RequiredAcks};

const MAX_FRAME: usize = 64 * 1024;

fn broker() -> devbroker::BackgroundBroker {
    devbroker::spawn_background(BrokerConfig {
        max_frame_bytes: MAX_FRAME,
        topics: vec![TopicSpec {
            name: "t".into(),
            partitions: 1,
        }],
        ..BrokerConfig::default()
    })
    .unwrap()
}

/// A healthy client does a produce and a fetch on its (long-lived) connection.
fn healthy_round_trip(client: &mut KafkaClient, value: &str) {
    let confirms = client
        .produce_messages(
            RequiredAcks::All,
            Duration::from_secs(5),
            vec![ProduceMessage::new("t", 0, None, Some(value.as_bytes()))],
        )
        .unwrap();
    let offset = confirms[0].partition_confirms[0].offset.unwrap();
    let resps = client
        .fetch_messages_for_partition(&FetchPartition::new("t", 0, offset))
        .unwrap();
    let data = resps[0].topics()[0].partitions()[0].data().unwrap();
    assert_eq!(data.messages()[0].value, value.as_bytes());
}

#[test]
fn bad_frames_close_only_their_own_connection() {
    let b = broker();
    let mut healthy = KafkaClient::new(vec![b.bootstrap()]);
    healthy.load_metadata_all().unwrap();
    healthy_round_trip(&mut healthy, "before");

    let mut metadata_with_forged_array = Encoder::new();
    metadata_with_forged_array.i32(1_000_000);
    let forged = metadata_with_forged_array.into_bytes();

    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        (
            "garbage (an HTTP request)",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            false,
        ),
        (
            "random bytes",
            (0..200u32).map(|i| (i * 37 % 251) as u8).collect(),
            false,
        ),
        ("negative frame size", (-5i32).to_be_bytes().to_vec(), false),
        (
            "frame too short for a header",
            [0, 0, 0, 2, 0, 3].to_vec(),
            false,
        ),
        (
            "oversized frame",
            ((MAX_FRAME as i32) + 1).to_be_bytes().to_vec(),
            false,
        ),
        (
            "truncated frame",
            {
                let mut f = request(api_key::METADATA, 0, 1, &[0, 0, 0, 0]);
                f.truncate(f.len() - 3);
                f
            },
            true,
        ),
        ("unknown api key", request(99, 0, 1, &[]), false),
        (
            "unsupported version",
            request(api_key::PRODUCE, 7, 1, &[]),
            false,
        ),
        (
            "forged array length",
            request(api_key::METADATA, 0, 1, &forged),
            false,
        ),
        (
            "trailing bytes",
            request(api_key::METADATA, 0, 1, &[0, 0, 0, 0, 9, 9]),
            false,
        ),
    ];
    for (what, bytes, half_close) in cases {
        let mut s = connect(&b);
        s.write_all(&bytes).unwrap();
        if half_close {
            s.shutdown(Shutdown::Write).unwrap();
        }
        assert_closed(&mut s, what);
        healthy_round_trip(&mut healthy, what);
    }
    // A fresh client is served too.
    let mut fresh = KafkaClient::new(vec![b.bootstrap()]);
    fresh.load_metadata_all().unwrap();
    healthy_round_trip(&mut fresh, "after");
}

fn produce_v0_body(topic: &str, partition: i32, set: &[u8]) -> Vec<u8> {
    let mut e = Encoder::new();
    e.i16(-1)
        .i32(1000)
        .array_len(1)
        .string(topic)
        .array_len(1)
        .i32(partition);
    e.i32(set.len() as i32);
    let mut body = e.into_bytes().to_vec();
    body.extend_from_slice(set);
    body
}

/// A magic-0 message set with one message.
fn message_set(value: &[u8]) -> Vec<u8> {
    let mut msg = vec![0u8; 4];
    msg.push(0); // magic
    msg.push(0); // attributes
    msg.extend_from_slice(&(-1i32).to_be_bytes()); // null key
    msg.extend_from_slice(&(value.len() as i32).to_be_bytes());
    msg.extend_from_slice(value);
    let crc = crc32(&msg[4..]);
    msg[..4].copy_from_slice(&crc.to_be_bytes());
    let mut set = 0i64.to_be_bytes().to_vec();
    set.extend_from_slice(&(msg.len() as i32).to_be_bytes());
    set.extend_from_slice(&msg);
    set
}

fn crc32(data: &[u8]) -> u32 {
    // Bitwise CRC-32 (IEEE): independent of the broker's implementation.
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Produce v0 response for one partition: (error code, base offset).
fn produce_result(resp: &[u8]) -> (i16, i64) {
    let mut d = Decoder::new(resp);
    assert_eq!(d.i32("topics").unwrap(), 1);
    d.string("name").unwrap();
    assert_eq!(d.i32("partitions").unwrap(), 1);
    d.i32("partition").unwrap();
    (d.i16("error").unwrap(), d.i64("offset").unwrap())
}

#[test]
fn corrupt_message_is_refused_and_the_log_stays_clean() {
    let b = broker();
    let mut s = connect(&b);
    let mut bad = message_set(b"payload");
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    s.write_all(&request(
        api_key::PRODUCE,
        0,
        7,
        &produce_v0_body("t", 0, &bad),
    ))
    .unwrap();
    assert_eq!(
        produce_result(&response(&mut s, 7)).0,
        error_code::CORRUPT_MESSAGE
    );

    // Same connection still works; the first good message gets offset 0.
    s.write_all(&request(
        api_key::PRODUCE,
        0,
        8,
        &produce_v0_body("t", 0, &message_set(b"good")),
    ))
    .unwrap();
    assert_eq!(produce_result(&response(&mut s, 8)), (error_code::NONE, 0));

    // Unknown partition and an invalid topic name are refused per partition.
    s.write_all(&request(
        api_key::PRODUCE,
        0,
        9,
        &produce_v0_body("t", 5, &message_set(b"x")),
    ))
    .unwrap();
    assert_eq!(
        produce_result(&response(&mut s, 9)).0,
        error_code::UNKNOWN_TOPIC_OR_PARTITION
    );
    s.write_all(&request(
        api_key::PRODUCE,
        0,
        10,
        &produce_v0_body("bad/name", 0, &message_set(b"x")),
    ))
    .unwrap();
    assert_eq!(
        produce_result(&response(&mut s, 10)).0,
        error_code::INVALID_TOPIC_EXCEPTION
    );
}

#[test]
fn acks_zero_gets_no_response_but_is_appended() {
    let b = broker();
    let mut s = connect(&b);
    let mut body = produce_v0_body("t", 0, &message_set(b"fire and forget"));
    body[..2].copy_from_slice(&0i16.to_be_bytes()); // acks = 0
    s.write_all(&request(api_key::PRODUCE, 0, 1, &body))
        .unwrap();
    // The next response on the connection is the ApiVersions one, not a produce answer.
    s.write_all(&request(api_key::API_VERSIONS, 0, 2, &[]))
        .unwrap();
    assert_eq!(
        api_versions_result(&response(&mut s, 2)).0,
        error_code::NONE
    );
    let mut c = consumer(&b.bootstrap(), "t", "g");
    assert_eq!(consume_n(&mut c, 1, true)[0].value, b"fire and forget");
}

fn api_versions_result(body: &[u8]) -> (i16, Vec<(i16, i16, i16)>) {
    let mut d = Decoder::new(body);
    let code = d.i16("error").unwrap();
    let n = d.i32("n").unwrap();
    let table = (0..n)
        .map(|_| {
            (
                d.i16("k").unwrap(),
                d.i16("min").unwrap(),
                d.i16("max").unwrap(),
            )
        })
        .collect();
    (code, table)
}

#[test]
fn api_versions_v0_and_a_newer_version_like_kafka() {
    let b = broker();
    let mut s = connect(&b);
    s.write_all(&request(api_key::API_VERSIONS, 0, 1, &[]))
        .unwrap();
    let (code, table) = api_versions_result(&response(&mut s, 1));
    assert_eq!(code, error_code::NONE);
    assert!(table.contains(&(api_key::PRODUCE, 0, 2)));
    assert!(table.contains(&(api_key::FETCH, 0, 3)));

    // v3 uses the flexible header (tagged fields) and compact strings in the body.
    let mut v3 = Encoder::new();
    v3.i16(api_key::API_VERSIONS)
        .i16(3)
        .i32(2)
        .string("librdkafka");
    let mut req = v3.into_bytes().to_vec();
    req.push(0); // header tagged fields
    req.extend_from_slice(&[11]);
    req.extend_from_slice(b"librdkafka");
    req.extend_from_slice(&[6]);
    req.extend_from_slice(b"2.0.2");
    req.push(0);
    let mut frame = (req.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&req);
    s.write_all(&frame).unwrap();
    let (code, table3) = api_versions_result(&response(&mut s, 2));
    assert_eq!(code, error_code::UNSUPPORTED_VERSION);
    assert_eq!(table3, table);
}

#[test]
fn fetch_errors_and_long_poll_timeout() {
    let b = broker();
    let mut s = connect(&b);
    let fetch = |topic: &str, offset: i64, wait_ms: i32| {
        let mut e = Encoder::new();
        e.i32(-1)
            .i32(wait_ms)
            .i32(1)
            .array_len(1)
            .string(topic)
            .array_len(1);
        e.i32(0).i64(offset).i32(1024);
        e.into_bytes().to_vec()
    };
    let result = |body: &[u8]| {
        let mut d = Decoder::new(body);
        d.i32("topics").unwrap();
        d.string("name").unwrap();
        d.i32("partitions").unwrap();
        d.i32("partition").unwrap();
        let code = d.i16("error").unwrap();
        let hw = d.i64("hw").unwrap();
        let len = d.i32("records").unwrap();
        (code, hw, len)
    };
    s.write_all(&request(api_key::FETCH, 0, 1, &fetch("nope", 0, 100)))
        .unwrap();
    assert_eq!(
        result(&response(&mut s, 1)).0,
        error_code::UNKNOWN_TOPIC_OR_PARTITION
    );
    s.write_all(&request(api_key::FETCH, 0, 2, &fetch("t", 5, 100)))
        .unwrap();
    assert_eq!(
        result(&response(&mut s, 2)).0,
        error_code::OFFSET_OUT_OF_RANGE
    );
    // Nothing arrives: the long poll ends at max_wait with an empty set.
    s.write_all(&request(api_key::FETCH, 0, 3, &fetch("t", 0, 200)))
        .unwrap();
    assert_eq!(result(&response(&mut s, 3)), (error_code::NONE, 0, 0));
}

#[test]
fn many_concurrent_connections() {
    let b = broker();
    let mut conns: Vec<TcpStream> = (0..300).map(|_| connect(&b)).collect();
    for (i, s) in conns.iter_mut().enumerate() {
        s.write_all(&request(api_key::METADATA, 0, i as i32, &[0, 0, 0, 0]))
            .unwrap();
    }
    for (i, s) in conns.iter_mut().enumerate() {
        let body = response(s, i as i32);
        let mut d = Decoder::new(&body);
        assert_eq!(d.i32("brokers").unwrap(), 1);
    }

    let bootstrap = b.bootstrap();
    let producers: Vec<_> = (0..8)
        .map(|t| {
            let bootstrap = bootstrap.clone();
            std::thread::spawn(move || {
                let mut p = producer(&bootstrap);
                for i in 0..50 {
                    p.send(&kafka::producer::Record::from_value(
                        "t",
                        format!("{t}-{i}"),
                    ))
                    .unwrap();
                }
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    let mut c = consumer(&bootstrap, "t", "g");
    assert_eq!(consume_n(&mut c, 400, true).len(), 400);
}
