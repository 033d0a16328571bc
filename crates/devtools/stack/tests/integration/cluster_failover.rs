//! Partition leaders moving in a 3-node Apache Kafka cluster (`testkit::KafkaCluster`:
//! KRaft, replication factor 3, `min.insync.replicas=2`, no unclean leader election),
//! end to end with every service a process, as in `e2e`. Orders keep arriving through
//! the gateway while the node leading the most partitions of the two topics is
//! SIGKILLed; once its partitions have new leaders, orders placed meanwhile are paid
//! and notified with the node still down; it is restarted and every replica is back in
//! sync; then a second node, leading partitions too, gets the same. In the end every
//! accepted order has exactly one payment, one PaymentStatus, one notification and its
//! final status (the `e2e` checks).
//!
//! With two of the three nodes down (fewer in-sync replicas than
//! `min.insync.replicas`), orders are still accepted and wait in the outbox until a
//! second node is back.
//!
//! Both clients: the `kafka` crate on Apache Kafka 3.9 (the last line serving its
//! protocol versions) and librdkafka on 4.x.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use testkit::{Setup, on_setups, wait_until};

use crate::e2e::{Options, Platform, place_order};

const SETTLE: Duration = Duration::from_secs(120);
/// Orders that must be paid and notified while a node is down.
const DURING_OUTAGE: usize = 5;

/// Places an order through the gateway every 100 ms from its own thread, until stopped.
struct Feeder {
    accepted: Arc<Mutex<Vec<(i64, i64)>>>,
    refused: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Feeder {
    fn start(gateway_url: &str) -> Self {
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let refused = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (accepted, refused, stop) = (accepted.clone(), refused.clone(), stop.clone());
            let url = format!("{gateway_url}/orders");
            std::thread::spawn(move || {
                let mut user_id = 10_000;
                while !stop.load(Ordering::SeqCst) {
                    user_id += 1;
                    match place_order(&url, user_id) {
                        Ok(order_id) => accepted.lock().unwrap().push((order_id, user_id)),
                        Err(answer) => refused.lock().unwrap().push(answer),
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        };
        Self {
            accepted,
            refused,
            stop,
            thread: Some(thread),
        }
    }

    fn accepted_so_far(&self) -> usize {
        self.accepted.lock().unwrap().len()
    }

    /// Waits until `count` more orders than `since` were accepted; returns them.
    fn next_accepted(&self, since: usize, count: usize) -> Vec<(i64, i64)> {
        wait_until(SETTLE, &format!("{count} more orders accepted"), || {
            let accepted = self.accepted.lock().unwrap();
            (accepted.len() >= since + count).then(|| accepted[since..since + count].to_vec())
        })
    }

    /// Stops the feeder; returns every order accepted and every refusal.
    fn stop(mut self) -> (Vec<(i64, i64)>, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
        let accepted = self.accepted.lock().unwrap().clone();
        let refused = self.refused.lock().unwrap().clone();
        (accepted, refused)
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn ids(orders: &[(i64, i64)]) -> Vec<i64> {
    orders.iter().map(|(id, _)| *id).collect()
}

/// Two partition leaders SIGKILLed in turn and restarted, orders arriving throughout;
/// every accepted order paid, notified and final exactly once.
fn orders_keep_flowing_while_partition_leaders_are_killed(setup: Setup) {
    let mut platform = Platform::start(setup.broker, Options::on_cluster(setup));
    let topics = [
        platform.wiring.order_topic.clone(),
        platform.wiring.status_topic.clone(),
    ];
    let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
    let first = platform.place_orders(5);
    platform.wait_for_notifications(&ids(&first));

    let feeder = Feeder::start(&platform.gateway_url);
    let mut killed = Vec::new();
    for round in 1..=2 {
        let cluster = platform.broker.cluster_mut().unwrap();
        let candidates: Vec<i32> = cluster
            .node_ids()
            .into_iter()
            .filter(|id| !killed.contains(id))
            .collect();
        let (victim, led) = cluster
            .busiest_leader(&topics, &candidates)
            .unwrap_or_else(|| panic!("none of nodes {candidates:?} leads a partition"));
        eprintln!(
            "round {round}: SIGKILL of node {victim}, leader of {led} of the {} partitions: {:?}",
            3 * topics.len(),
            topics
                .iter()
                .map(|topic| cluster.leaders(topic))
                .collect::<Vec<_>>()
        );
        cluster.kill9(victim);
        let moved = cluster.wait_led_without(victim, &topics);
        eprintln!("round {round}: node {victim} down, new leaders: {moved:?}");

        // With the node still down, orders placed now are paid and notified: the
        // producers and consumers of every service found the new leaders.
        let during = feeder.next_accepted(feeder.accepted_so_far(), DURING_OUTAGE);
        platform.wait_for_notifications(&ids(&during));

        let cluster = platform.broker.cluster_mut().unwrap();
        cluster.restart(victim);
        cluster.wait_in_sync(&topics);
        eprintln!("round {round}: node {victim} restarted, every replica in sync");
        killed.push(victim);
    }
    // Orders placed after both rounds go through as well.
    let after = feeder.next_accepted(feeder.accepted_so_far(), DURING_OUTAGE);
    platform.wait_for_notifications(&ids(&after));
    let (fed, refused) = feeder.stop();
    assert!(
        refused.is_empty(),
        "the gateway refused orders while brokers died (orders need no broker to accept \
         one): {refused:?}"
    );
    let last = platform.place_orders(5);
    platform.assert_exactly_once(&[first, fed, last].concat());
    wait_until(SETTLE, "the orders outbox to drain", || {
        (platform.unsent_order_events() == 0).then_some(())
    });
    report_client_trouble(&platform);
}

/// Two of three brokers down: fewer in-sync replicas than `min.insync.replicas=2`
/// (and no controller quorum, every node being a voter), so no produce is
/// acknowledged. Orders are still accepted and their OrderCreated rows wait in the
/// outbox, unsent, while the relay keeps trying; once one broker is back, everything
/// they held goes out, and once the third is back too, every order is paid, notified
/// and final exactly once.
fn two_brokers_down_hold_orders_in_the_outbox_until_one_is_back(setup: Setup) {
    let mut platform = Platform::start(setup.broker, Options::on_cluster(setup));
    let topics = [
        platform.wiring.order_topic.clone(),
        platform.wiring.status_topic.clone(),
    ];
    let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
    let before = platform.place_orders(5);
    platform.wait_for_notifications(&ids(&before));

    let cluster = platform.broker.cluster_mut().unwrap();
    let all = cluster.node_ids();
    let (first, _) = cluster.busiest_leader(&topics, &all).unwrap();
    cluster.kill9(first);
    cluster.wait_led_without(first, &topics);
    let rest: Vec<i32> = all.iter().copied().filter(|&id| id != first).collect();
    let (second, _) = cluster.busiest_leader(&topics, &rest).unwrap();
    let failed_attempts = relay_failures(&platform);
    platform.broker.cluster_mut().unwrap().kill9(second);
    eprintln!("nodes {first} and {second} SIGKILLed, one of three left");

    let during = platform.place_orders(10);
    // The relay has tried, and failed, since the second node died ...
    wait_until(SETTLE, "the orders relay to fail an attempt", || {
        (relay_failures(&platform) > failed_attempts).then_some(())
    });
    // ... and holds every row of the orders placed since: none was acknowledged.
    assert_eq!(
        platform.unsent_order_events(),
        during.len() as i64,
        "the OrderCreated rows of the orders placed with two brokers down wait in the outbox"
    );

    // One broker back: two replicas, a controller quorum; the outbox empties.
    let cluster = platform.broker.cluster_mut().unwrap();
    cluster.restart(second);
    eprintln!("node {second} restarted, node {first} still down");
    platform.wait_for_notifications(&ids(&during));
    wait_until(SETTLE, "the orders outbox to drain", || {
        (platform.unsent_order_events() == 0).then_some(())
    });

    let cluster = platform.broker.cluster_mut().unwrap();
    cluster.restart(first);
    cluster.wait_in_sync(&topics);
    let after = platform.place_orders(5);
    platform.assert_exactly_once(&[before, during, after].concat());
    report_client_trouble(&platform);
}

/// How many relay attempts orders has logged as failed.
fn relay_failures(platform: &Platform) -> usize {
    platform
        .orders
        .log()
        .matches("outbox relay attempt failed")
        .count()
}

/// What the services logged while leaders moved, on stderr (shown with
/// `--no-capture` or on failure): per service, the WARN and ERROR lines counted by
/// their source (the retry loops of `bus` and the outbox relay, librdkafka), and the
/// first few.
fn report_client_trouble(platform: &Platform) {
    for (name, process) in [
        ("orders", &platform.orders),
        ("payments", &platform.payments),
        ("notifications", &platform.notifications),
    ] {
        let log = process.log();
        let trouble: Vec<&str> = log
            .lines()
            .filter(|line| line.contains(" WARN ") || line.contains(" ERROR "))
            .collect();
        let mut by_source: std::collections::BTreeMap<String, usize> = Default::default();
        for line in &trouble {
            // `<time>  WARN <target>: <message>`
            let mut words = line.split_whitespace().skip(1);
            let level = words.next().unwrap_or("?");
            let target = words.next().unwrap_or("?").trim_end_matches(':');
            *by_source.entry(format!("{level} {target}")).or_default() += 1;
        }
        eprintln!("{name}: {} WARN/ERROR lines: {by_source:?}", trouble.len());
        // The producers' and relays' lines first (what a send ran into), then the rest.
        let (sends, others): (Vec<&str>, Vec<&str>) = trouble
            .iter()
            .partition(|line| line.contains("producer") || line.contains("outbox::relay"));
        for line in sends.iter().take(6).chain(others.iter().take(4)) {
            eprintln!("  {line}");
        }
    }
}

on_setups!(
    [apache_kafka_3_9_kafka, apache_kafka_4_rdkafka]
    orders_keep_flowing_while_partition_leaders_are_killed,
    two_brokers_down_hold_orders_in_the_outbox_until_one_is_back,
);
