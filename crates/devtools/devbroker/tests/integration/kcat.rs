//! kcat (librdkafka) against devbroker: produce and consume, with ApiVersion
//! negotiation, with `api.version.request=false` and fallbacks 0.10.0 and 0.9.0 (see
//! [`Negotiation`]), plain, gzip and snappy; the bytes come back unchanged. Also across
//! clients: kcat's message format v1 read by the `kafka` crate and the reverse.
//!
//! kcat must be installed (`apt-get install -y kcat`); a missing kcat fails these tests.

use crate::common::*;
use kafka::producer::Record;

/// How kcat (librdkafka) learns which protocol versions the broker speaks.
#[derive(Debug, Clone, Copy)]
enum Negotiation {
    /// An ApiVersions request (librdkafka's default).
    ApiVersions,
    /// `api.version.request=false` with `broker.version.fallback=0.10.0`, the flags
    /// old-broker guides give. librdkafka 2.x still sends ApiVersions when the fallback
    /// is 0.10 or later, so this differs from the default only in the configuration.
    Fallback0_10,
    /// `broker.version.fallback=0.9.0`: really no ApiVersions; Metadata v0, Produce v1,
    /// Fetch v1 and ListOffsets v0, as a pre-0.10 client speaks.
    Fallback0_9,
}

impl Negotiation {
    const ALL: [Negotiation; 3] = [Self::ApiVersions, Self::Fallback0_10, Self::Fallback0_9];

    fn args(self) -> &'static [&'static str] {
        match self {
            Self::ApiVersions => &[],
            Self::Fallback0_10 => &[
                "-X",
                "api.version.request=false",
                "-X",
                "broker.version.fallback=0.10.0",
            ],
            Self::Fallback0_9 => &[
                "-X",
                "api.version.request=false",
                "-X",
                "broker.version.fallback=0.9.0",
            ],
        }
    }
}

/// Payloads with every byte value, newlines, NULs, and one larger than kcat's batches.
fn payloads() -> Vec<Vec<u8>> {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rnd = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 24) as u8
            })
            .collect()
    };
    vec![
        (0..=255u8).collect(),
        b"line one\nline two\n\0tail".to_vec(),
        b"{\"event_id\":1,\"order_id\":42}".to_vec(),
        rnd(200_000),
        b"a".repeat(5000),
    ]
}

/// Parses `-f '%o %S %s'` output: offset, size, then exactly size bytes.
fn parse_values(mut out: &[u8]) -> Vec<(i64, Vec<u8>)> {
    let mut v = Vec::new();
    while !out.is_empty() {
        let sp = out.iter().position(|&b| b == b' ').unwrap();
        let offset: i64 = std::str::from_utf8(&out[..sp]).unwrap().parse().unwrap();
        out = &out[sp + 1..];
        let sp = out.iter().position(|&b| b == b' ').unwrap();
        let size: usize = std::str::from_utf8(&out[..sp]).unwrap().parse().unwrap();
        out = &out[sp + 1..];
        v.push((offset, out[..size].to_vec()));
        out = &out[size..];
    }
    v
}

fn consume_with_kcat(bootstrap: &str, topic: &str, how: Negotiation) -> Vec<(i64, Vec<u8>)> {
    let mut extra = vec!["-f", "%o %S %s"];
    extra.extend_from_slice(how.args());
    parse_values(&kcat_read(bootstrap, topic, 0, &extra))
}

#[test]
fn kcat_round_trip_plain_gzip_snappy_with_and_without_api_version_request() {
    let cases: Vec<(Negotiation, Option<&str>)> = Negotiation::ALL
        .into_iter()
        .flat_map(|how| [(how, None), (how, Some("gzip")), (how, Some("snappy"))])
        .collect();
    let topics: Vec<String> = (0..cases.len()).map(|i| format!("kcat-{i}")).collect();
    let b = broker_with_topics(&topics.iter().map(|t| (t.as_str(), 1)).collect::<Vec<_>>());
    let bootstrap = b.bootstrap();
    let dir = tempfile::tempdir().unwrap();
    let payloads = payloads();
    let files: Vec<String> = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let path = dir.path().join(format!("msg{i}"));
            std::fs::write(&path, p).unwrap();
            path.to_str().unwrap().to_owned()
        })
        .collect();

    for ((how, codec), topic) in cases.iter().zip(&topics) {
        let what = format!("{how:?} codec={codec:?}");
        // Each file argument is sent as one message.
        let mut args = vec!["-P", "-b", &bootstrap, "-t", topic, "-p", "0"];
        if let Some(c) = codec {
            args.extend_from_slice(&["-z", c]);
        }
        args.extend_from_slice(how.args());
        args.extend(files.iter().map(String::as_str));
        kcat(&args, b"");

        for read_how in Negotiation::ALL {
            let got = consume_with_kcat(&bootstrap, topic, read_how);
            let offsets: Vec<_> = got.iter().map(|g| g.0).collect();
            assert_eq!(
                offsets,
                (0..payloads.len() as i64).collect::<Vec<_>>(),
                "{what}, read with {read_how:?}"
            );
            for (g, want) in got.iter().zip(&payloads) {
                assert!(
                    g.1 == *want,
                    "{what}, read with {read_how:?}: bytes differ at offset {}",
                    g.0
                );
            }
        }

        // The kafka crate (Fetch v0, message format v0) reads what kcat wrote.
        let mut c = consumer(&bootstrap, topic, "rust");
        let got = consume_n(&mut c, payloads.len(), true);
        for (g, want) in got.iter().zip(&payloads) {
            assert!(
                g.value == *want,
                "{what}: kafka crate sees different bytes at {}",
                g.offset
            );
        }
    }
}

#[test]
fn kcat_keyed_lines_and_kafka_crate_records_read_by_kcat() {
    let b = broker_with_topics(&[("lines", 1), ("from-rust", 1)]);
    let bootstrap = b.bootstrap();
    kcat(
        &["-P", "-b", &bootstrap, "-t", "lines", "-p", "0", "-K", ":"],
        b"1:{\"a\":1}\n2:{\"b\":2}\n1:{\"c\":3}\n",
    );
    let out = kcat(
        &[
            "-C",
            "-b",
            &bootstrap,
            "-t",
            "lines",
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            "%p %o %k=%s\n",
        ],
        b"",
    );
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "0 0 1={\"a\":1}\n0 1 2={\"b\":2}\n0 2 1={\"c\":3}\n"
    );

    let mut p = producer(&bootstrap);
    p.send(&Record::from_key_value("from-rust", "k", "v1".to_owned()))
        .unwrap();
    p.send(&Record::from_key_value("from-rust", "k", "v2".to_owned()))
        .unwrap();
    for how in Negotiation::ALL {
        let got = consume_with_kcat(&bootstrap, "from-rust", how);
        assert_eq!(
            got,
            vec![(0, b"v1".to_vec()), (1, b"v2".to_vec())],
            "{how:?}"
        );
    }
}

#[test]
fn kcat_metadata_lists_the_broker_at_its_bound_address() {
    let b = broker_with_topics(&[("listed", 2)]);
    let bootstrap = b.bootstrap();
    let out = String::from_utf8(kcat(&["-L", "-b", &bootstrap, "-t", "listed"], b"")).unwrap();
    assert!(out.contains(&format!("at {bootstrap}")), "{out}");
    assert!(out.contains("with 2 partitions"), "{out}");
}
