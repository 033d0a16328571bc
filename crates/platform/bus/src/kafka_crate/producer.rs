//! The producer on the `kafka` crate (`KAFKA_CLIENT=kafka`) behind
//! [`Producer`](crate::Producer): acks from all in-sync replicas, a broker-side ack
//! timeout, transient failures retried with exponential backoff (on fresh connections),
//! cut short by the stop signal. It checks the brokers' protocol versions when it
//! connects.

use std::collections::{HashMap, HashSet};

use kafka::client::{KafkaClient as CrateClient, ProduceMessage, RequiredAcks};
use tokio_util::sync::CancellationToken;

use super::guarded;
use crate::compat;
use crate::error::BusError;
use crate::partitioner;
use crate::producer::api::{self, ProducerConfig, Record};

/// The producer on the `kafka` crate's client, with `RequiredAcks::All`.
///
/// Partitioning is Java's default (murmur2 of the key); records without a key go round
/// robin. Topics unknown at connect time are looked up (and auto-created by brokers that
/// allow it) on first use.
pub(crate) struct KafkaProducer {
    config: ProducerConfig,
    /// Cancelled: no further retries (the backoff sleep wakes at once).
    shutdown: CancellationToken,
    client: CrateClient,
    /// Partition counts of the topics seen so far.
    partitions: HashMap<String, u32>,
    round_robin: u32,
}

impl std::fmt::Debug for KafkaProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaProducer")
            .field("config", &self.config)
            .field("partitions", &self.partitions)
            .finish_non_exhaustive()
    }
}

fn new_client(config: &ProducerConfig) -> CrateClient {
    let mut client = CrateClient::new(config.brokers.clone());
    client.set_client_id(config.client_id.clone());
    client
}

impl KafkaProducer {
    /// Connects: the protocol-version check, then one metadata round trip, retried
    /// like a send.
    pub(crate) fn connect_with_shutdown(
        config: ProducerConfig,
        shutdown: CancellationToken,
    ) -> Result<KafkaProducer, BusError> {
        if config.brokers.is_empty() {
            return Err(BusError::Config("no brokers given".into()));
        }
        if config.ack_timeout.as_millis() > i32::MAX as u128 {
            return Err(BusError::Config("ack_timeout too large".into()));
        }
        let mut p = KafkaProducer {
            client: new_client(&config),
            config,
            shutdown,
            partitions: HashMap::new(),
            round_robin: 0,
        };
        api::with_retries(&mut p, |p| {
            compat::check_broker_versions(&p.config.brokers, compat::CHECK_TIMEOUT)?;
            let brokers = p.config.brokers.clone();
            guarded(|| {
                p.client.load_metadata_all().map_err(|e| match e {
                    kafka::Error::NoHostReachable => BusError::Unreachable {
                        brokers,
                        last: e.to_string(),
                    },
                    e => BusError::Kafka(e),
                })
            })
        })?;
        Ok(p)
    }

    /// Partition count of `topic`, asking the broker (which may create it) if unknown.
    fn partition_count(&mut self, topic: &str) -> Result<u32, BusError> {
        if let Some(&n) = self.partitions.get(topic) {
            return Ok(n);
        }
        let brokers = self.config.brokers.clone();
        let client = &mut self.client;
        let n = guarded(|| {
            client.load_metadata(&[topic]).map_err(|e| match e {
                kafka::Error::NoHostReachable => BusError::Unreachable {
                    brokers,
                    last: e.to_string(),
                },
                e => BusError::Kafka(e),
            })?;
            Ok(client.topics().partitions(topic).map_or(0, |p| p.len()))
        })?;
        let n = u32::try_from(n).unwrap_or(0);
        if n == 0 {
            return Err(BusError::NoPartitions(topic.to_owned()));
        }
        self.partitions.insert(topic.to_owned(), n);
        Ok(n)
    }
}

impl api::Attempts for KafkaProducer {
    const CLIENT: &'static str = "kafka";

    fn config(&self) -> &ProducerConfig {
        &self.config
    }

    fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }

    fn reset(&mut self) {
        // Start over with fresh connections and metadata: a broken socket or a moved
        // leader must not be reused.
        self.client = new_client(&self.config);
        self.partitions.clear();
    }

    /// Sends `pending` once; removes from it the records whose partition the broker
    /// acknowledged, and fails if any are left. A retry therefore re-sends only the
    /// partitions that were not acknowledged.
    fn try_send_all(&mut self, pending: &mut Vec<Record<'_>>) -> Result<(), BusError> {
        if pending.is_empty() {
            return Ok(());
        }
        let mut msgs = Vec::with_capacity(pending.len());
        for r in pending.iter() {
            let n = self.partition_count(r.topic)?;
            let partition = if r.key.is_empty() {
                self.round_robin = self.round_robin.wrapping_add(1);
                (self.round_robin % n) as i32
            } else {
                partitioner::for_key(r.key, n)
            };
            msgs.push(ProduceMessage::new(
                r.topic,
                partition,
                (!r.key.is_empty()).then_some(r.key),
                Some(r.value),
            ));
        }
        let ack_timeout = self.config.ack_timeout;
        let client = &mut self.client;
        let confirms = guarded(|| {
            client
                .produce_messages(RequiredAcks::All, ack_timeout, &msgs)
                .map_err(BusError::Kafka)
        })?;
        let mut acked: HashSet<(String, i32)> = HashSet::new();
        let mut refused = None;
        for c in confirms {
            for pc in c.partition_confirms {
                match pc.offset {
                    Ok(_) => {
                        acked.insert((c.topic.clone(), pc.partition));
                    }
                    Err(code) => {
                        refused.get_or_insert(BusError::Refused {
                            topic: c.topic.clone(),
                            partition: pc.partition,
                            code,
                        });
                    }
                }
            }
        }
        let partitions: Vec<(String, i32)> = msgs
            .iter()
            .map(|m| (m.topic.to_owned(), m.partition))
            .collect();
        let mut index = 0;
        pending.retain(|_| {
            let keep = !acked.contains(&partitions[index]);
            index += 1;
            keep
        });
        if pending.is_empty() {
            return Ok(());
        }
        // Not acknowledged: refused, or (no answer for the partition) unknown.
        Err(refused.unwrap_or(BusError::Kafka(kafka::Error::Kafka(
            kafka::error::KafkaCode::Unknown,
        ))))
    }
}
