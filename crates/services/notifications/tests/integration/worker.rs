//! The notifications worker against the real Redis and an in-process devbroker:
//! each test has its own topic, consumer group and Redis key prefix, so tests run
//! in parallel.

use std::{
    net::SocketAddr,
    process::{Command, Stdio},
    time::Duration,
};

use contracts::{PaymentOutcome, PaymentStatus};
use notifications::Config;
use settings::GoDuration;
use testkit::{
    KillOnDrop, TcpProxy, unique_name, wait_until,
    worker::{Worker, producer},
};

const DEADLINE: Duration = Duration::from_secs(30);

/// Where the test Redis is, as `host:port`.
fn redis_host_port() -> String {
    let url = testkit::redis_url();
    let rest = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    rest.split('/').next().unwrap_or(rest).to_owned()
}

fn redis() -> redis::Connection {
    redis::Client::open(testkit::redis_url())
        .unwrap()
        .get_connection()
        .unwrap()
}

/// The worker running against an in-process broker ([`Worker`]: its own runtime,
/// the test bodies are synchronous) and the test Redis, under its own key prefix.
struct Harness {
    worker: Worker<notifications::StartError>,
    config: Config,
}

impl Harness {
    fn start(configure: impl FnOnce(&mut Config)) -> Self {
        let (worker, config) = Worker::start(
            "notifications-test",
            |broker| {
                let mut config = Config {
                    notifications_health_addr: "127.0.0.1:0".parse().unwrap(),
                    kafka: settings::KafkaConnection {
                        brokers: broker.bootstrap().parse().unwrap(),
                        ..Default::default()
                    },
                    kafka_topic_status: unique_name("statuses"),
                    kafka_consumer_group: unique_name("notifications"),
                    redis_addr: redis_host_port(),
                    redis_ttl: GoDuration::from_secs(3600),
                    redis_key_prefix: format!("{}:", unique_name("test_notifications")),
                    ..Config::default()
                };
                configure(&mut config);
                config
            },
            notifications::start,
        );
        Self { worker, config }
    }

    fn produce(&mut self, key: &str, value: &[u8]) {
        self.worker.produce(self.config.topic(), key, value);
    }

    fn produce_status(&mut self, status: &PaymentStatus) {
        let key = contracts::message_key(status.order_id);
        self.produce(&key, contracts::encode(status).as_bytes());
    }

    fn key(&self, order_id: i64) -> String {
        format!("{}{order_id}", self.config.redis_key_prefix)
    }

    fn wait_for_notification(&self, order_id: i64) -> String {
        let key = self.key(order_id);
        let mut redis = redis();
        wait_until(DEADLINE, &format!("Redis key {key}"), || {
            redis::cmd("GET")
                .arg(&key)
                .query::<Option<String>>(&mut redis)
                .unwrap()
        })
    }

    fn health_addr(&self) -> SocketAddr {
        self.worker.health_addr()
    }

    fn stop(mut self) {
        self.worker.stop();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.config.redis_key_prefix))
            .query(&mut redis())
            .unwrap();
        if !keys.is_empty() {
            redis::cmd("DEL")
                .arg(&keys)
                .query::<()>(&mut redis())
                .unwrap();
        }
    }
}

fn status(event_id: i64, order_id: i64, outcome: PaymentOutcome) -> PaymentStatus {
    PaymentStatus {
        event_id,
        order_id,
        user_id: 7,
        order_status: outcome,
    }
}

#[test]
fn a_payment_status_becomes_the_notification_with_its_ttl() {
    let mut h = Harness::start(|_| {});
    h.produce_status(&status(1, 42, PaymentOutcome::Succeeded));
    h.produce_status(&status(2, 43, PaymentOutcome::Failed));
    assert_eq!(
        h.wait_for_notification(42),
        r#"{"order_id":42,"user_id":7,"order_status":"succeeded"}"#
    );
    assert_eq!(
        h.wait_for_notification(43),
        r#"{"order_id":43,"user_id":7,"order_status":"failed"}"#
    );
    let ttl_ms: i64 = redis::cmd("PTTL")
        .arg(h.key(42))
        .query(&mut redis())
        .unwrap();
    // Set to one hour; some of it has passed since.
    assert!(
        (3_000_000..=3_600_000).contains(&ttl_ms),
        "PTTL {ttl_ms} ms, expected close to 1h"
    );
    wait_until(DEADLINE, "/readyz to report ready", || {
        (testkit::http_get_status(&format!("http://{}/readyz", h.health_addr())) == Some(200))
            .then_some(())
    });
    assert_eq!(
        testkit::metric(h.health_addr(), "notifications_dead_letters_total"),
        Some(0)
    );
    h.stop();
}

#[test]
fn a_zero_ttl_stores_without_expiry() {
    let mut h = Harness::start(|config| config.redis_ttl = GoDuration::from_secs(0));
    h.produce_status(&status(1, 5, PaymentOutcome::Failed));
    h.wait_for_notification(5);
    let ttl: i64 = redis::cmd("TTL").arg(h.key(5)).query(&mut redis()).unwrap();
    assert_eq!(ttl, -1, "no expiry");
    h.stop();
}

#[test]
fn a_redelivered_status_leaves_the_same_notification() {
    let mut h = Harness::start(|_| {});
    let event = status(3, 9, PaymentOutcome::Failed);
    h.produce_status(&event);
    h.produce_status(&event);
    testkit::wait_for_metric(h.health_addr(), "notifications_stored_total", 2, DEADLINE);
    assert_eq!(
        h.wait_for_notification(9),
        r#"{"order_id":9,"user_id":7,"order_status":"failed"}"#
    );
    h.stop();
}

#[test]
fn poison_messages_are_skipped_and_the_next_status_is_stored() {
    let mut h = Harness::start(|_| {});
    // One key, so one partition: the good message comes after the poison ones.
    h.produce("4", b"{not json");
    h.produce(
        "4",
        br#"{"event_id":1,"order_id":4,"user_id":7,"order_status":"maybe"}"#,
    );
    h.produce("4", br#"{"event_id":2,"order_id":4}"#);
    h.produce_status(&status(3, 4, PaymentOutcome::Succeeded));
    assert_eq!(
        h.wait_for_notification(4),
        r#"{"order_id":4,"user_id":7,"order_status":"succeeded"}"#
    );
    assert_eq!(
        testkit::metric(h.health_addr(), "notifications_dead_letters_total"),
        Some(3)
    );
    h.stop();
}

#[test]
fn a_status_arriving_during_a_redis_outage_is_stored_once_it_is_back() {
    let proxy = TcpProxy::start(&redis_host_port()).unwrap();
    let via = proxy.addr();
    let mut h = Harness::start(|config| config.redis_addr = via);
    h.produce_status(&status(1, 100, PaymentOutcome::Succeeded));
    h.wait_for_notification(100);

    proxy.cut();
    h.produce_status(&status(2, 101, PaymentOutcome::Failed));
    // The worker has tried, and failed, to store it.
    testkit::wait_for_metric(
        h.health_addr(),
        "notifications_store_failures_total",
        1,
        DEADLINE,
    );
    proxy.restore();

    assert_eq!(
        h.wait_for_notification(101),
        r#"{"order_id":101,"user_id":7,"order_status":"failed"}"#
    );
    h.stop();
}

#[test]
fn sigterm_finishes_and_exits_zero() {
    let broker = devbroker::spawn_background(devbroker::BrokerConfig::default()).unwrap();
    let topic = unique_name("statuses");
    let prefix = format!("{}:", unique_name("test_notifications_bin"));
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_notifications"))
            .env("NOTIFICATIONS_HEALTH_ADDR", "127.0.0.1:0")
            .env("KAFKA_BROKERS", broker.bootstrap())
            .env("KAFKA_TOPIC_STATUS", &topic)
            .env("KAFKA_CONSUMER_GROUP", unique_name("notifications"))
            .env("REDIS_ADDR", redis_host_port())
            .env("REDIS_TTL", "10m")
            .env("REDIS_KEY_PREFIX", &prefix)
            .env_remove("NOTIFICATIONS_CONFIG")
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );

    let mut producer = producer(&broker, "notifications-test");
    producer
        .send(bus::Record {
            topic: &topic,
            key: b"6",
            value: contracts::encode(&status(1, 6, PaymentOutcome::Succeeded)).as_bytes(),
            headers: &[],
        })
        .unwrap();
    let key = format!("{prefix}6");
    let mut redis = redis();
    wait_until(DEADLINE, "the binary to store order 6", || {
        redis::cmd("GET")
            .arg(&key)
            .query::<Option<String>>(&mut redis)
            .unwrap()
    });
    let _: () = redis::cmd("DEL").arg(&key).query(&mut redis).unwrap();

    let status = child.terminate(DEADLINE);
    assert!(status.success(), "exit status {status:?}");
}
