//! The adapter against real brokers, on both clients: each behaviour test runs on
//! (devbroker, kafka), (Apache Kafka 3.9, kafka), (Apache Kafka 3.9, rdkafka) and
//! (Apache Kafka 4.x, rdkafka), see `testkit::on_each_client!`: keyed produce, the
//! consumer loop, commit-after-success, retries of a failing handler, shutdown,
//! broker outages, lag. Group membership (rdkafka only): a second member takes
//! partitions over, and the first commits before giving them up.

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use bus::{
    BusError, ConsumerConfig, ConsumerHandle, Handler, Message, Producer, ProducerConfig, Record,
    spawn_consumer,
};
use kafka::client::{GroupOffsetStorage, KafkaClient};
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use testkit::{BrokerKind, Setup, TestBroker, on_each_broker, on_each_client, on_rdkafka};
use tokio_util::sync::CancellationToken;

/// Bound on any wait; not a timing assertion.
const DEADLINE: Duration = Duration::from_secs(30);

/// One record per (key, value) pair, to `topic`.
fn records<'a>(topic: &'a str, pairs: &'a [(String, String)]) -> Vec<Record<'a>> {
    pairs
        .iter()
        .map(|(k, v)| Record {
            topic,
            key: k.as_bytes(),
            value: v.as_bytes(),
            headers: &[],
        })
        .collect()
}

fn producer(setup: Setup, brokers: Vec<String>) -> Producer {
    Producer::connect(ProducerConfig {
        brokers,
        ack_timeout: Duration::from_secs(5),
        max_retries: 5,
        client_id: "bus-test".into(),
        client: setup.client,
        security: bus::KafkaSecurity::plaintext(),
        rdkafka_properties: bus::RdkafkaProperties::none(),
    })
    .unwrap()
}

fn consumer_config(setup: Setup, brokers: Vec<String>, topic: &str, group: &str) -> ConsumerConfig {
    ConsumerConfig {
        fetch_max_wait: Duration::from_millis(200),
        retry_backoff_initial: Duration::from_millis(20),
        retry_backoff_max: Duration::from_millis(200),
        client: setup.client,
        ..ConsumerConfig::new(brokers, topic, group, "bus-test")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Got {
    partition: i32,
    offset: i64,
    key: String,
    value: String,
}

impl Got {
    fn from(m: &Message<'_>) -> Self {
        Got {
            partition: m.partition,
            offset: m.offset,
            key: String::from_utf8_lossy(m.key).into_owned(),
            value: String::from_utf8_lossy(m.value).into_owned(),
        }
    }
}

/// Forwards every message to a channel; fails while `fail(message)` says so.
struct TestHandler<F> {
    tx: mpsc::Sender<Got>,
    fail: F,
}

impl<F: FnMut(&Got) -> bool + Send + 'static> Handler for TestHandler<F> {
    type Error = std::io::Error;
    fn handle(&mut self, message: &Message<'_>) -> Result<(), std::io::Error> {
        let got = Got::from(message);
        if (self.fail)(&got) {
            return Err(std::io::Error::other(format!(
                "refusing offset {}",
                got.offset
            )));
        }
        let _ = self.tx.send(got);
        Ok(())
    }
}

/// Spawns a consumer on `config`, which must be refused before it starts
/// (`Spawn` with `InvalidInput`); the error, for a test to look into.
fn assert_refused_up_front(config: ConsumerConfig) -> bus::ConsumerError {
    let handler = TestHandler {
        tx: mpsc::channel().0,
        fail: |_: &Got| false,
    };
    let e = spawn_consumer(config, handler, CancellationToken::new()).unwrap_err();
    assert!(
        matches!(&e, bus::ConsumerError::Spawn(e) if e.kind() == std::io::ErrorKind::InvalidInput),
        "{e:?}"
    );
    e
}

/// A consumer thread running a [`TestHandler`], with what a test needs to watch and
/// stop it.
struct Consuming {
    rx: mpsc::Receiver<Got>,
    shutdown: CancellationToken,
    handle: ConsumerHandle,
}

impl Consuming {
    fn start(config: ConsumerConfig, fail: impl FnMut(&Got) -> bool + Send + 'static) -> Self {
        let (tx, rx) = mpsc::channel();
        let shutdown = CancellationToken::new();
        let handle = spawn_consumer(config, TestHandler { tx, fail }, shutdown.clone()).unwrap();
        Consuming {
            rx,
            shutdown,
            handle,
        }
    }

    /// Never fails a message.
    fn healthy(config: ConsumerConfig) -> Self {
        Self::start(config, |_| false)
    }

    /// Triggers shutdown and waits for the consumer's last commit; returns what is
    /// left in the channel.
    fn stop(self) -> mpsc::Receiver<Got> {
        self.shutdown.cancel();
        self.handle.join().unwrap();
        self.rx
    }
}

fn recv_n(rx: &mpsc::Receiver<Got>, n: usize) -> Vec<Got> {
    let start = Instant::now();
    let mut out = Vec::new();
    while out.len() < n {
        let left = DEADLINE.saturating_sub(start.elapsed());
        match rx.recv_timeout(left) {
            Ok(g) => out.push(g),
            Err(_) => panic!("only {} of {n} messages: {out:?}", out.len()),
        }
    }
    out
}

/// The group's committed offsets of `topic`, by partition (-1: none), asked with a
/// client the broker serves: the `kafka` crate on devbroker, librdkafka on Apache Kafka.
fn committed(b: &TestBroker, group: &str, topic: &str) -> Vec<(i32, i64)> {
    if b.kind() != BrokerKind::Devbroker {
        let consumer = admin_consumer(b, group);
        let partitions = partition_count(&consumer, topic);
        let mut list = TopicPartitionList::new();
        for p in 0..partitions {
            list.add_partition(topic, p);
        }
        let got = consumer
            .committed_offsets(list, Duration::from_secs(10))
            .unwrap();
        let mut v: Vec<(i32, i64)> = got
            .elements_for_topic(topic)
            .iter()
            .map(|e| match e.offset() {
                Offset::Offset(o) => (e.partition(), o),
                _ => (e.partition(), -1),
            })
            .collect();
        v.sort();
        return v;
    }
    let mut client = KafkaClient::new(vec![b.bootstrap()]);
    client.set_group_offset_storage(Some(GroupOffsetStorage::Kafka));
    client.load_metadata_all().unwrap();
    let mut v: Vec<_> = client
        .fetch_group_topic_offset(group, topic)
        .unwrap()
        .into_iter()
        .map(|o| (o.partition, o.offset))
        .collect();
    v.sort();
    v
}

/// How many records of `topic` `group` has committed, over all partitions (a
/// partition without a commit counts 0).
fn committed_in_all(b: &TestBroker, group: &str, topic: &str) -> i64 {
    committed(b, group, topic).iter().map(|o| o.1.max(0)).sum()
}

/// The log end offset of each partition of `topic`.
fn log_end(b: &TestBroker, topic: &str) -> Vec<(i32, i64)> {
    let mut v: Vec<(i32, i64)> = if b.kind() != BrokerKind::Devbroker {
        let consumer = admin_consumer(b, "bus-test-admin");
        (0..partition_count(&consumer, topic))
            .map(|p| {
                let (_, high) = consumer
                    .fetch_watermarks(topic, p, Duration::from_secs(10))
                    .unwrap();
                (p, high)
            })
            .collect()
    } else {
        let mut client = KafkaClient::new(vec![b.bootstrap()]);
        client.load_metadata_all().unwrap();
        client
            .fetch_topic_offsets(topic, kafka::client::FetchOffset::Latest)
            .unwrap()
            .into_iter()
            .map(|o| (o.partition, o.offset))
            .collect()
    };
    v.sort();
    v
}

/// A librdkafka consumer that never subscribes: for offset and watermark queries.
fn admin_consumer(b: &TestBroker, group: &str) -> BaseConsumer {
    rdkafka::ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .set("group.id", group)
        .create()
        .unwrap()
}

fn partition_count(consumer: &BaseConsumer, topic: &str) -> i32 {
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    metadata.topics()[0].partitions().len() as i32
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn keyed_records_are_consumed_and_shutdown_commits(setup: Setup) {
    let b = setup.start_broker();
    let topic = b.unique_topic("order-topic", 3);
    let brokers = vec![b.bootstrap()];
    let mut p = producer(setup, brokers.clone());
    let values: Vec<(String, String)> = (0..20)
        .map(|i| ((i % 4).to_string(), format!("{{\"event_id\":{i}}}")))
        .collect();
    let recs = records(&topic, &values);
    p.send_all(&recs[..10]).unwrap();
    for r in &recs[10..] {
        p.send(*r).unwrap();
    }

    let consumer = Consuming::healthy(consumer_config(setup, brokers, &topic, "payments"));
    // At least once: a record may arrive twice (a producer retry after a lost ack),
    // so receive until every one of the 20 has arrived.
    let mut got: Vec<Got> = Vec::new();
    let start = Instant::now();
    while got
        .iter()
        .map(|g| g.value.as_str())
        .collect::<std::collections::HashSet<_>>()
        .len()
        < values.len()
    {
        let left = DEADLINE.saturating_sub(start.elapsed());
        match consumer.rx.recv_timeout(left) {
            Ok(g) => got.push(g),
            Err(_) => panic!("only {} messages: {got:?}", got.len()),
        }
    }
    let mut partition_of = std::collections::HashMap::new();
    for g in &got {
        let prev = partition_of.insert(g.key.clone(), g.partition);
        assert!(
            prev.is_none() || prev == Some(g.partition),
            "key moved partitions"
        );
    }
    let mut seen: Vec<_> = got
        .iter()
        .map(|g| (g.key.clone(), g.value.clone()))
        .collect();
    seen.sort();
    seen.dedup();
    let mut want = values.clone();
    want.sort();
    assert_eq!(seen, want);

    consumer.stop();
    // Shutdown committed everything in the log (-1: an empty partition, nothing to
    // commit).
    let offsets: Vec<(i32, i64)> = committed(&b, "payments", &topic)
        .into_iter()
        .map(|(partition, offset)| (partition, offset.max(0)))
        .collect();
    let log_end = log_end(&b, &topic);
    assert_eq!(offsets, log_end);
    let total: i64 = log_end.iter().map(|o| o.1).sum();
    assert!(total >= 20, "{log_end:?}");
}

fn failing_handler_is_retried_and_its_offset_not_committed(setup: Setup) {
    let b = setup.start_broker();
    let topic = b.unique_topic("retry", 1);
    let brokers = vec![b.bootstrap()];
    let mut p = producer(setup, brokers.clone());
    for v in ["a", "b", "c"] {
        p.send(Record {
            topic: &topic,
            key: b"k",
            value: v.as_bytes(),
            headers: &[],
        })
        .unwrap();
    }

    let attempts = Arc::new(AtomicUsize::new(0));
    let counter = attempts.clone();
    let consumer = Consuming::start(
        consumer_config(setup, brokers.clone(), &topic, "g"),
        move |g: &Got| {
            if g.offset == 1 {
                counter.fetch_add(1, Ordering::SeqCst);
                true
            } else {
                false
            }
        },
    );
    assert_eq!(recv_n(&consumer.rx, 1)[0].offset, 0);
    wait_until("the failing message to be retried", || {
        attempts.load(Ordering::SeqCst) >= 3
    });
    // Offset 0 is done (committed as 1); offset 1 keeps failing and is not committed.
    wait_until("offset 0 to be committed", || {
        committed(&b, "g", &topic) == vec![(0, 1)]
    });
    assert!(!consumer.handle.is_finished());
    assert!(
        consumer.rx.try_recv().is_err(),
        "nothing after the failing message was handled"
    );

    consumer.stop();
    assert_eq!(committed(&b, "g", &topic), vec![(0, 1)]);

    // A healthy consumer of the same group resumes at the failed message.
    let consumer = Consuming::healthy(consumer_config(setup, brokers, &topic, "g"));
    let got = recv_n(&consumer.rx, 2);
    assert_eq!(
        got.iter()
            .map(|g| (g.offset, g.value.as_str()))
            .collect::<Vec<_>>(),
        vec![(1, "b"), (2, "c")]
    );
    consumer.stop();
    assert_eq!(committed(&b, "g", &topic), vec![(0, 3)]);
}

/// Produces one record `p<N>` to each partition N of `partitions`, in that order, each
/// acknowledged by all in-sync replicas before the next.
fn produce_to_partitions(b: &TestBroker, topic: &str, partitions: &[i32]) {
    let mut client = KafkaClient::new(vec![b.bootstrap()]);
    client.load_metadata_all().unwrap();
    for &p in partitions {
        let confirms = client
            .produce_messages(
                kafka::client::RequiredAcks::All,
                Duration::from_secs(5),
                vec![kafka::client::ProduceMessage::new(
                    topic,
                    p,
                    None,
                    Some(format!("p{p}").as_bytes()),
                )],
            )
            .unwrap();
        // The crate reports a refused partition in the confirm, not as an error.
        for confirm in confirms {
            for partition in confirm.partition_confirms {
                assert!(
                    partition.offset.is_ok(),
                    "produce to {topic}: {partition:?}"
                );
            }
        }
    }
}

/// `kafka` client only: the partitions given in configuration (`KAFKA_PARTITIONS`).
fn configured_partitions_only(kind: BrokerKind) {
    let b = TestBroker::start(kind);
    let topic = b.unique_topic("parts", 2);
    produce_to_partitions(&b, &topic, &[0, 1, 0, 1]);
    let mut config = consumer_config(Setup::DEVBROKER_KAFKA, vec![b.bootstrap()], &topic, "g");
    config.partitions = Some(vec![1]);
    let consumer = Consuming::healthy(config);
    let got = recv_n(&consumer.rx, 2);
    assert!(
        got.iter().all(|g| g.partition == 1 && g.value == "p1"),
        "{got:?}"
    );
    // Give it a chance to (wrongly) deliver partition 0 before stopping.
    std::thread::sleep(Duration::from_millis(300));
    let rx = consumer.stop();
    assert!(rx.try_recv().is_err());
}

/// Records the (partition, offset) of every batch the consumer hands over.
struct BatchRecorder {
    tx: mpsc::Sender<Vec<(i32, i64)>>,
}

impl Handler for BatchRecorder {
    type Error = std::io::Error;
    fn handle(&mut self, message: &Message<'_>) -> Result<(), std::io::Error> {
        let _ = self.tx.send(vec![(message.partition, message.offset)]);
        Ok(())
    }

    fn handle_batch(
        &mut self,
        messages: &[Message<'_>],
    ) -> Result<(), bus::BatchFailure<std::io::Error>> {
        let _ = self
            .tx
            .send(messages.iter().map(|m| (m.partition, m.offset)).collect());
        Ok(())
    }
}

/// `kafka` client: a poll that brought messages of several partitions is ONE batch
/// (one transaction in the workers), partitions ascending, offsets ascending in each.
fn a_poll_of_several_partitions_is_one_batch(kind: BrokerKind) {
    let b = TestBroker::start(kind);
    let topic = b.unique_topic("whole-poll", 3);
    // Produced before the consumer starts, the last partition first: its first
    // poll finds all three partitions with data.
    produce_to_partitions(&b, &topic, &[2, 0, 1, 2, 0, 1]);
    let (tx, rx) = mpsc::channel();
    let shutdown = CancellationToken::new();
    let config = consumer_config(Setup::DEVBROKER_KAFKA, vec![b.bootstrap()], &topic, "g");
    let handle = spawn_consumer(config, BatchRecorder { tx }, shutdown.clone()).unwrap();
    let mut batches: Vec<Vec<(i32, i64)>> = Vec::new();
    while batches.iter().map(Vec::len).sum::<usize>() < 6 {
        match rx.recv_timeout(DEADLINE) {
            Ok(batch) => batches.push(batch),
            Err(_) => panic!("not all six messages: {batches:?}"),
        }
    }
    shutdown.cancel();
    handle.join().unwrap();
    // The first poll found every partition with data: one batch for all of them.
    let partitions_in_first: std::collections::BTreeSet<i32> =
        batches[0].iter().map(|&(partition, _)| partition).collect();
    assert_eq!(partitions_in_first.len(), 3, "{batches:?}");
    for batch in &batches {
        let mut sorted = batch.clone();
        sorted.sort();
        assert_eq!(
            batch, &sorted,
            "partitions ascending, offsets ascending in each"
        );
    }
}

fn free_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn consumer_and_producer_ride_out_a_broker_outage(setup: Setup) {
    let mut b = setup.start_broker();
    let topic = b.unique_topic("outage", 1);
    let brokers = vec![b.bootstrap()];
    b.kill9();

    // Broker down at start: the consumer keeps trying instead of exiting.
    let consumer = Consuming::healthy(consumer_config(setup, brokers.clone(), &topic, "g"));
    std::thread::sleep(Duration::from_millis(300));
    assert!(!consumer.handle.is_finished());

    b.restart();
    let mut p = producer(setup, brokers.clone());
    let rec = |v: &'static str| Record {
        topic: &topic,
        key: b"1",
        value: v.as_bytes(),
        headers: &[],
    };
    p.send(rec("first")).unwrap();
    assert_eq!(recv_n(&consumer.rx, 1)[0].value, "first");
    // Let the commit land first; otherwise "first" is (correctly) redelivered.
    wait_until("the commit of the first message", || {
        committed_in_all(&b, "g", &topic) == 1
    });

    // Down mid-run (SIGKILL), then back on the same port and data.
    b.kill9();
    std::thread::sleep(Duration::from_millis(300));
    assert!(!consumer.handle.is_finished());
    b.restart();
    // The producer's old connection is dead: its retry reconnects.
    p.send(rec("second")).unwrap();
    assert_eq!(recv_n(&consumer.rx, 1)[0].value, "second");

    consumer.stop();
}

fn probe_and_connect_report_unreachable_brokers(setup: Setup) {
    let b = setup.start_broker();
    let client = setup.client;
    bus::probe_for(client, &[b.bootstrap()], Duration::from_secs(5)).unwrap();
    // One dead and one live broker: ready.
    let dead = free_port().to_string();
    bus::probe_for(
        client,
        &[dead.clone(), b.bootstrap()],
        Duration::from_secs(5),
    )
    .unwrap();

    let err =
        bus::probe_for(client, std::slice::from_ref(&dead), Duration::from_secs(2)).unwrap_err();
    assert!(matches!(err, BusError::Unreachable { .. }), "{err}");

    let err = Producer::connect(ProducerConfig {
        brokers: vec![dead],
        ack_timeout: Duration::from_secs(1),
        max_retries: 1,
        client_id: "t".into(),
        client,
        security: bus::KafkaSecurity::plaintext(),
        rdkafka_properties: bus::RdkafkaProperties::none(),
    })
    .unwrap_err();
    assert!(
        matches!(err, BusError::RetriesExhausted { attempts: 2, .. }),
        "{err}"
    );

    // A config that cannot work is refused up front.
    let mut config = consumer_config(setup, vec![b.bootstrap()], "x", "");
    config.group = String::new();
    assert_refused_up_front(config);
}

fn messages_produced_before_the_first_commit_are_not_lost(setup: Setup) {
    let b = setup.start_broker();
    let topic = b.unique_topic("early", 1);
    let mut p = producer(setup, vec![b.bootstrap()]);
    let seen = Arc::new(Mutex::new(Vec::new()));
    p.send(Record {
        topic: &topic,
        key: b"",
        value: b"before any consumer",
        headers: &[],
    })
    .unwrap();
    let s2 = seen.clone();
    let consumer = Consuming::start(
        consumer_config(setup, vec![b.bootstrap()], &topic, "new-group"),
        move |g: &Got| {
            s2.lock().unwrap().push(g.offset);
            false
        },
    );
    assert_eq!(recv_n(&consumer.rx, 1)[0].value, "before any consumer");
    consumer.stop();
    assert_eq!(seen.lock().unwrap().len(), 1);
}

fn lag_is_the_log_end_minus_the_committed_offset(setup: Setup) {
    let b = setup.start_broker();
    let topic = b.unique_topic("lag", 1);
    let mut p = producer(setup, vec![b.bootstrap()]);
    for v in ["a", "b", "c", "d", "e"] {
        p.send(Record {
            topic: &topic,
            key: b"k",
            value: v.as_bytes(),
            headers: &[],
        })
        .unwrap();
    }
    let lags: Arc<Mutex<Vec<(String, i32, i64)>>> = Arc::default();
    let seen = lags.clone();
    let mut config = consumer_config(setup, vec![b.bootstrap()], &topic, "lagging");
    config.lag_observer = Some(bus::LagObserver::new(move |topic, partition, lag| {
        seen.lock()
            .unwrap()
            .push((topic.to_owned(), partition, lag));
    }));
    // Offsets 0 and 1 are handled and committed; offset 2 keeps failing.
    let consumer = Consuming::start(config, |g: &Got| g.offset >= 2);
    // Measured while the failing message is retried: 5 in the log, 2 committed.
    wait_until("lag 3 to be reported", || {
        lags.lock().unwrap().last() == Some(&(topic.clone(), 0, 3))
    });
    assert_eq!(committed(&b, "lagging", &topic), vec![(0, 2)]);
    consumer.stop();

    // A healthy consumer of the group reads the rest and reports lag 0 once it has
    // committed everything (5 messages, committed offset 5).
    let lags: Arc<Mutex<Vec<i64>>> = Arc::default();
    let seen = lags.clone();
    let mut config = consumer_config(setup, vec![b.bootstrap()], &topic, "lagging");
    config.lag_observer = Some(bus::LagObserver::new(move |_, _, lag| {
        seen.lock().unwrap().push(lag);
    }));
    let consumer = Consuming::healthy(config);
    assert_eq!(recv_n(&consumer.rx, 3).len(), 3);
    wait_until("lag 0 to be reported", || {
        lags.lock().unwrap().last() == Some(&0)
    });
    consumer.stop();
}

/// With rdkafka the group assigns partitions: a partition list is refused up front,
/// before any broker is asked.
#[test]
fn configured_partitions_are_refused_with_rdkafka() {
    let mut config = consumer_config(Setup::KAFKA_4_RDKAFKA, vec!["127.0.0.1:1".into()], "t", "g");
    config.partitions = Some(vec![0]);
    let e = assert_refused_up_front(config);
    let message = lifecycle::ErrorChain(&e).to_string();
    assert!(message.contains("KAFKA_PARTITIONS"), "{message}");
}

/// Group membership: a second member of the group takes some partitions over (the
/// broker rebalances), the first commits what it handled before giving them up, and
/// when the second stops the first gets them back: every record is handled, none is
/// lost, and the group's offsets end at the log end.
fn a_second_member_takes_partitions_over_and_revocation_commits(setup: Setup) {
    let b = setup.start_broker();
    let topic = b.unique_topic("members", 4);
    let brokers = vec![b.bootstrap()];
    let mut p = producer(setup, brokers.clone());
    let mut sent: Vec<String> = Vec::new();
    let mut send = |p: &mut Producer, n: usize| {
        let from = sent.len();
        let batch: Vec<(String, String)> = (from..from + n)
            .map(|i| ((i % 8).to_string(), format!("v{i}")))
            .collect();
        let recs = records(&topic, &batch);
        p.send_all(&recs).unwrap();
        sent.extend(batch.into_iter().map(|(_, v)| v));
    };
    send(&mut p, 20);
    let first = Consuming::healthy(consumer_config(setup, brokers.clone(), &topic, "members"));
    let mut seen: std::collections::HashSet<String> =
        recv_n(&first.rx, 20).into_iter().map(|g| g.value).collect();
    wait_until("the first member to commit everything", || {
        committed_in_all(&b, "members", &topic) == 20
    });

    // The second member gets partitions once the group has rebalanced; records sent
    // from then on are shared between the two.
    let second = Consuming::healthy(consumer_config(setup, brokers.clone(), &topic, "members"));
    let start = Instant::now();
    let mut second_got = 0;
    while second_got == 0 {
        assert!(
            start.elapsed() < DEADLINE,
            "the second member never got a record"
        );
        send(&mut p, 4);
        std::thread::sleep(Duration::from_millis(300));
        for g in second.rx.try_iter() {
            second_got += 1;
            seen.insert(g.value);
        }
    }
    send(&mut p, 8);
    // Every record arrives at one member or the other.
    let start = Instant::now();
    while seen.len() < sent.len() {
        assert!(
            start.elapsed() < DEADLINE,
            "only {} of {} records handled",
            seen.len(),
            sent.len()
        );
        for g in first.rx.try_iter().chain(second.rx.try_iter()) {
            seen.insert(g.value);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // The second leaves (its partitions go back to the first), then the first: the
    // group's offsets end at the log end.
    second.stop();
    first.stop();
    let offsets: Vec<(i32, i64)> = committed(&b, "members", &topic)
        .into_iter()
        .map(|(partition, offset)| (partition, offset.max(0)))
        .collect();
    assert_eq!(offsets, log_end(&b, &topic));
}

on_each_broker!(
    configured_partitions_only,
    a_poll_of_several_partitions_is_one_batch
);

on_each_client!(
    lag_is_the_log_end_minus_the_committed_offset,
    keyed_records_are_consumed_and_shutdown_commits,
    failing_handler_is_retried_and_its_offset_not_committed,
    consumer_and_producer_ride_out_a_broker_outage,
    probe_and_connect_report_unreachable_brokers,
    messages_produced_before_the_first_commit_are_not_lost,
);

on_rdkafka!(a_second_member_takes_partitions_over_and_revocation_commits);
