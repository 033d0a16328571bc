//! How long one relay batch's `send_all` takes (enqueue to the last acknowledgement)
//! with each client, on a real Apache Kafka 3.9 broker: rounds of `--batches` batches
//! of `--records` records, the clients interleaved round by round, paced at
//! `--batches-per-second`.
//!
//! `cargo run --release -p bus --example send_round_trip -- [--batches 500] [--records 8] [--rounds 3] [--batches-per-second 200]`

use std::time::{Duration, Instant};

use bus::{KafkaClient, Producer, ProducerConfig, Record};
use testkit::{KafkaBroker, KafkaLine};

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn main() -> anyhow::Result<()> {
    let batches = arg("--batches", 500);
    let records = arg("--records", 8);
    let rounds = arg("--rounds", 3);
    let rate = arg("--batches-per-second", 200);
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
