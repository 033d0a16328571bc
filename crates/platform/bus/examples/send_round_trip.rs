//! How long one relay batch's `send_all` takes (enqueue to the last acknowledgement)
//! with each client, on a real Apache Kafka 3.9 broker: rounds of `--batches` batches
//! of `--records` records, the clients interleaved round by round, paced at
//! `--batches-per-second`.
//!
//! `cargo run --release -p bus --example send_round_trip -- [--batches 500] [--records 8] [--rounds 3] [--batches-per-second 200]`

use std::time::{Duration, Instant};

use bus::{KafkaClient, Producer, ProducerConfig, Record};
use testkit::{KafkaBroker, KafkaLine};

/// The flags, each a positive number: `--batches`, `--records`, `--rounds`,
/// `--batches-per-second`.
struct Args {
    batches: u64,
    records: u64,
    rounds: u64,
    rate: u64,
}

impl Args {
    fn parse() -> anyhow::Result<Args> {
        let mut args = Args {
            batches: 500,
            records: 8,
            rounds: 3,
            rate: 200,
        };
        let mut given = std::env::args().skip(1);
        while let Some(flag) = given.next() {
            let slot = match flag.as_str() {
                "--batches" => &mut args.batches,
                "--records" => &mut args.records,
                "--rounds" => &mut args.rounds,
                "--batches-per-second" => &mut args.rate,
                other => anyhow::bail!(
                    "unknown flag {other:?}; the flags are --batches, --records, --rounds, --batches-per-second"
                ),
            };
            let value = given
                .next()
                .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))?;
            *slot = match value.parse::<u64>() {
                Ok(n) if n > 0 => n,
                _ => anyhow::bail!("{flag} must be a positive number, got {value:?}"),
            };
        }
        Ok(args)
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn main() -> anyhow::Result<()> {
    let Args {
        batches,
        records,
        rounds,
        rate,
    } = Args::parse()?;
    let broker = KafkaBroker::start(KafkaLine::V3_9);
    broker.create_topic("round-trip", 3);
    let config = |client| ProducerConfig {
        brokers: vec![broker.bootstrap()],
        ack_timeout: Duration::from_secs(5),
        max_retries: 3,
        client_id: "send-round-trip".into(),
        client,
        security: bus::KafkaSecurity::plaintext(),
        rdkafka_properties: bus::RdkafkaProperties::none(),
    };
    let mut producers = vec![
        ("kafka", Producer::connect(config(KafkaClient::Kafka))?),
        ("rdkafka", Producer::connect(config(KafkaClient::Rdkafka))?),
    ];
    let values: Vec<String> = (0..records)
        .map(|i| format!("{{\"order_id\":{i}}}"))
        .collect();
    let keys: Vec<String> = (0..records).map(|i| i.to_string()).collect();
    let batch: Vec<Record<'_>> = (0..records as usize)
        .map(|i| Record {
            topic: "round-trip",
            key: keys[i].as_bytes(),
            value: values[i].as_bytes(),
            headers: &[],
        })
        .collect();
    let period = Duration::from_secs_f64(1.0 / rate as f64);
    for round in 1..=rounds {
        for (name, producer) in &mut producers {
            let mut took = Vec::new();
            let mut next = Instant::now();
            for _ in 0..batches {
                let started = Instant::now();
                producer.send_all(&batch)?;
                took.push(started.elapsed());
                next += period;
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
            took.sort();
            println!(
                "round {round} {name:8}: send_all of {records} records, p50 {:.2} ms, p90 {:.2}, p99 {:.2}, max {:.2}",
                percentile(&took, 0.5),
                percentile(&took, 0.9),
                percentile(&took, 0.99),
                percentile(&took, 1.0)
            );
        }
    }
    Ok(())
}
