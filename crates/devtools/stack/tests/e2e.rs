//! End to end, with every part a real process: the broker, orders, payments,
//! notifications and the gateway binaries, the local PostgreSQL and Redis, orders
//! placed over HTTP. Each test has its own broker, databases and Redis key prefix,
//! and runs twice: on devbroker and on Apache Kafka 3.9 (3-partition topics created
//! as compose's kafka-init creates them), see `testkit::on_each_broker!`.
#![allow(clippy::unwrap_used)]

use std::{collections::BTreeMap, time::Duration};

use testkit::{
    BrokerKind, ServiceProcess, TcpProxy, TestBroker, TestDatabase, free_port, http_request,
    on_each_broker, unique_name, wait_http_ok, wait_until,
};

const READY: Duration = Duration::from_secs(60);
const SETTLE: Duration = Duration::from_secs(90);

/// The platform as five processes.
struct Platform {
    orders_db: TestDatabase,
    payments_db: TestDatabase,
    redis_prefix: String,
    broker_addr: String,
    order_topic: String,
    status_topic: String,
    gateway_url: String,
    broker: TestBroker,
    orders: ServiceProcess,
    payments: ServiceProcess,
    notifications: ServiceProcess,
    _gateway: ServiceProcess,
    _payments_db_proxy: Option<TcpProxy>,
}

#[derive(Default)]
struct Options {
    /// Put payments' PostgreSQL connection behind a proxy the test can cut.
    payments_db_proxy: bool,
}

impl Platform {
    fn start(kind: BrokerKind, options: Options) -> Self {
        let orders_db = TestDatabase::new("e2e_orders");
        let payments_db = TestDatabase::new("e2e_payments");
        let redis_prefix = format!("{}:", unique_name("e2e"));
        let broker = TestBroker::start(kind);
        let broker_addr = broker.bootstrap();
        let order_topic = broker.unique_topic("order-topic", 3);
        let status_topic = broker.unique_topic("status-topic", 3);
        let topics = [
            ("KAFKA_TOPIC_ORDER", order_topic.clone()),
            ("KAFKA_TOPIC_STATUS", status_topic.clone()),
        ];
        let [
            orders_grpc,
            orders_health,
            payments_health,
            notifications_health,
            gateway_http,
        ] = [(); 5].map(|_| format!("127.0.0.1:{}", free_port()));

        let payments_db_proxy = options
            .payments_db_proxy
            .then(|| TcpProxy::start("127.0.0.1:5432").unwrap());
        let payments_dsn = match &payments_db_proxy {
            Some(proxy) => payments_db.dsn_via(&proxy.addr()),
            None => payments_db.dsn(),
        };

        let orders = ServiceProcess::spawn(
            "orders",
            &[],
            &[
                ("ORDERS_PG_DSN", orders_db.dsn()),
                ("ORDERS_GRPC_ADDR", orders_grpc.clone()),
                ("ORDERS_HEALTH_ADDR", orders_health.clone()),
                ("KAFKA_BROKERS", broker_addr.clone()),
                // Short, so rows claimed by a relay that was killed go out again soon.
                ("OUTBOX_LEASE", "2s".to_owned()),
                topics[0].clone(),
            ],
        );
        let payments = ServiceProcess::spawn(
            "payments",
            &[],
            &[
                ("PAYMENTS_PG_DSN", payments_dsn),
                ("PAYMENTS_HEALTH_ADDR", payments_health.clone()),
                ("KAFKA_BROKERS", broker_addr.clone()),
                ("OUTBOX_LEASE", "2s".to_owned()),
                topics[0].clone(),
                topics[1].clone(),
            ],
        );
        let notifications = ServiceProcess::spawn(
            "notifications",
            &[],
            &[
                ("NOTIFICATIONS_HEALTH_ADDR", notifications_health.clone()),
                ("KAFKA_BROKERS", broker_addr.clone()),
                ("REDIS_ADDR", redis_host_port()),
                ("REDIS_KEY_PREFIX", redis_prefix.clone()),
                ("REDIS_TTL", "10m".to_owned()),
                topics[1].clone(),
            ],
        );
        let gateway = ServiceProcess::spawn(
            "gateway",
            &[],
            &[
                ("GATEWAY_HTTP_ADDR", gateway_http.clone()),
                ("ORDERS_GRPC_ADDR", format!("http://{orders_grpc}")),
            ],
        );
        for health in [
            &orders_health,
            &payments_health,
            &notifications_health,
            &gateway_http,
        ] {
            wait_http_ok(&format!("http://{health}/readyz"), READY);
        }
        let mut platform = Self {
            orders_db,
            payments_db,
            redis_prefix,
            broker_addr,
            order_topic,
            status_topic,
            gateway_url: format!("http://{gateway_http}"),
            broker,
            orders,
            payments,
            notifications,
            _gateway: gateway,
            _payments_db_proxy: payments_db_proxy,
        };
        // The ready answers must have come from these processes, not from something
        // else on their ports.
        for process in [
            &mut platform.orders,
            &mut platform.payments,
            &mut platform.notifications,
            &mut platform._gateway,
        ] {
            process.assert_running();
        }
        platform
    }

    /// `POST /orders` with one item; returns the order id.
    fn place_order(&self, user_id: i64) -> i64 {
        let body = format!(
            r#"{{"user_id": {user_id}, "items": [{{"product_id": 7, "quantity": 2, "price": 150}}]}}"#
        );
        let (status, response) =
            http_request("POST", &format!("{}/orders", self.gateway_url), Some(&body))
                .expect("gateway reachable");
        assert_eq!(status, 200, "POST /orders answered {status}: {response}");
        let json: serde_json::Value = serde_json::from_str(&response).unwrap();
        json["order_id"].as_i64().unwrap()
    }

    fn notification(
        &self,
        redis: &mut redis::Connection,
        order_id: i64,
    ) -> Option<serde_json::Value> {
        let value: Option<String> = redis::cmd("GET")
            .arg(format!("{}{order_id}", self.redis_prefix))
            .query(redis)
            .unwrap();
        value.map(|text| serde_json::from_str(&text).unwrap())
    }

    /// Waits until every order has its notification; returns them.
    fn wait_for_notifications(&self, order_ids: &[i64]) -> BTreeMap<i64, serde_json::Value> {
        let mut redis = redis_connection();
        let mut found = BTreeMap::new();
        wait_until(
            SETTLE,
            &format!("notifications for {} orders", order_ids.len()),
            || {
                for id in order_ids {
                    if !found.contains_key(id)
                        && let Some(value) = self.notification(&mut redis, *id)
                    {
                        found.insert(*id, value);
                    }
                }
                (found.len() == order_ids.len()).then_some(())
            },
        );
        found
    }

    /// Per order: (payments rows, PaymentStatus outbox rows); and checks that
    /// `processed_events` holds one row per payment.
    fn payment_counts(&self) -> BTreeMap<i64, (i64, i64)> {
        let mut client = self.payments_db.client();
        let mut counts: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
        for row in client
            .query(
                "SELECT order_id, count(*) FROM payments GROUP BY order_id",
                &[],
            )
            .unwrap()
        {
            counts.entry(row.get(0)).or_default().0 = row.get(1);
        }
        for row in client
            .query(
                "SELECT message_key::bigint, count(*) FROM events GROUP BY message_key",
                &[],
            )
            .unwrap()
        {
            counts.entry(row.get(0)).or_default().1 = row.get(1);
        }
        let processed: i64 = client
            .query_one("SELECT count(*) FROM processed_events", &[])
            .unwrap()
            .get(0);
        let total_payments: i64 = counts.values().map(|c| c.0).sum();
        assert_eq!(
            processed, total_payments,
            "one processed_events row per payment"
        );
        counts
    }

    /// Every order: exactly one payment, one PaymentStatus, one notification with the
    /// right user and the Go rule's status (even order id succeeds, odd fails).
    fn assert_exactly_once(&self, orders: &[(i64, i64)]) {
        let ids: Vec<i64> = orders.iter().map(|(id, _)| *id).collect();
        let notifications = self.wait_for_notifications(&ids);
        // Notifications come after the payments commit; the counts are final now.
        let counts = self.payment_counts();
        for (order_id, user_id) in orders {
            let note = &notifications[order_id];
            let expected = if order_id % 2 == 0 {
                "succeeded"
            } else {
                "failed"
            };
            assert_eq!(
                note,
                &serde_json::json!({"order_id": order_id, "user_id": user_id, "order_status": expected}),
                "notification of order {order_id}"
            );
            assert_eq!(
                counts.get(order_id),
                Some(&(1, 1)),
                "payment rows of order {order_id}"
            );
        }
        assert_eq!(
            counts.len(),
            orders.len(),
            "no payment for an order that was not placed"
        );
    }

    fn place_orders(&self, count: i64) -> Vec<(i64, i64)> {
        (0..count)
            .map(|i| {
                let user_id = 100 + i;
                (self.place_order(user_id), user_id)
            })
            .collect()
    }

    fn unsent_order_events(&self) -> i64 {
        self.orders_db
            .client()
            .query_one("SELECT count(*) FROM events WHERE sent_at IS NULL", &[])
            .unwrap()
            .get(0)
    }
}

fn redis_host_port() -> String {
    testkit::redis_url()
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_owned()
}

fn redis_connection() -> redis::Connection {
    redis::Client::open(testkit::redis_url())
        .unwrap()
        .get_connection()
        .unwrap()
}

fn an_order_placed_over_http_ends_as_a_notification_in_redis(kind: BrokerKind) {
    let platform = Platform::start(kind, Options::default());
    let orders = platform.place_orders(10);
    platform.assert_exactly_once(&orders);

    let mut redis = redis_connection();
    let key = format!("{}{}", platform.redis_prefix, orders[0].0);
    let ttl: i64 = redis::cmd("TTL").arg(&key).query(&mut redis).unwrap();
    assert!(
        (1..=600).contains(&ttl),
        "notification expires after REDIS_TTL, ttl={ttl}"
    );
}

fn kill_9_of_payments_mid_flight_loses_and_duplicates_nothing(kind: BrokerKind) {
    let mut platform = Platform::start(kind, Options::default());
    let orders = platform.place_orders(40);
    wait_until(SETTLE, "payments to be part-way through", || {
        let done: i64 = platform
            .payments_db
            .client()
            .query_one("SELECT count(*) FROM payments", &[])
            .unwrap()
            .get(0);
        (done >= 1).then_some(())
    });
    platform.payments.kill9();
    let more = platform.place_orders(10);
    platform.payments.restart();
    platform.assert_exactly_once(&[orders, more].concat());
}

fn kill_9_of_orders_and_its_relay_loses_nothing(kind: BrokerKind) {
    let mut platform = Platform::start(kind, Options::default());
    let orders = platform.place_orders(30);
    platform.orders.kill9();
    platform.orders.restart();
    wait_until(READY, "orders back behind the gateway", || {
        http_request(
            "GET",
            &format!("{}/orders/{}", platform.gateway_url, orders[0].0),
            None,
        )
        .filter(|(status, _)| *status == 200)
        .map(|_| ())
    });
    let more = platform.place_orders(5);
    platform.assert_exactly_once(&[orders, more].concat());
    // Rows the killed relay had claimed are published again once its lease expires
    // (consumers deduplicate them); in the end nothing is left unsent.
    wait_until(SETTLE, "the orders outbox to drain", || {
        (platform.unsent_order_events() == 0).then_some(())
    });
}

fn kill_9_of_notifications_loses_nothing(kind: BrokerKind) {
    let mut platform = Platform::start(kind, Options::default());
    let orders = platform.place_orders(30);
    platform.notifications.kill9();
    let more = platform.place_orders(5);
    platform.notifications.restart();
    platform.assert_exactly_once(&[orders, more].concat());
}

fn a_broker_restart_with_data_dir_loses_nothing(kind: BrokerKind) {
    let mut platform = Platform::start(kind, Options::default());
    let before = platform.place_orders(10);
    platform.wait_for_notifications(&before.iter().map(|(id, _)| *id).collect::<Vec<_>>());
    platform.broker.kill9();
    // Orders are still accepted: they wait in the outbox.
    let during = platform.place_orders(10);
    std::thread::sleep(Duration::from_millis(500));
    platform.broker.restart();
    let after = platform.place_orders(10);
    platform.assert_exactly_once(&[before, during, after].concat());
}

fn a_postgres_outage_under_payments_loses_nothing(kind: BrokerKind) {
    let platform = Platform::start(
        kind,
        Options {
            payments_db_proxy: true,
        },
    );
    let before = platform.place_orders(5);
    platform.wait_for_notifications(&before.iter().map(|(id, _)| *id).collect::<Vec<_>>());
    let proxy = platform._payments_db_proxy.as_ref().unwrap();
    proxy.cut();
    let during = platform.place_orders(10);
    std::thread::sleep(Duration::from_secs(2));
    proxy.restore();
    platform.assert_exactly_once(&[before, during].concat());
}

fn poison_messages_on_both_topics_do_not_stop_the_next_order(kind: BrokerKind) {
    let platform = Platform::start(kind, Options::default());
    let mut producer = bus::Producer::connect(bus::ProducerConfig {
        brokers: vec![platform.broker_addr.clone()],
        ack_timeout: Duration::from_secs(5),
        max_retries: 3,
        client_id: "e2e-poison".to_owned(),
    })
    .unwrap();
    for topic in [&platform.order_topic, &platform.status_topic] {
        for (key, value) in [
            ("1", "not json".as_bytes()),
            ("2", br#"{"event_id": 1}"#.as_slice()),
            (
                "3",
                br#"{"event_id":5,"order_id":3,"user_id":1,"order_status":"maybe"}"#.as_slice(),
            ),
        ] {
            // Poison on every partition: one per key, keys spread over partitions.
            producer
                .send(bus::Record {
                    topic,
                    key: key.as_bytes(),
                    value,
                })
                .unwrap();
        }
    }
    let orders = platform.place_orders(6);
    platform.assert_exactly_once(&orders);
    let dead_letters: i64 = platform
        .payments_db
        .client()
        .query_one("SELECT count(*) FROM dead_letters", &[])
        .unwrap()
        .get(0);
    assert_eq!(
        dead_letters, 3,
        "payments kept each poison message for an operator"
    );
}

fn the_same_order_created_delivered_twice_is_paid_once(kind: BrokerKind) {
    let platform = Platform::start(kind, Options::default());
    let orders = platform.place_orders(3);
    platform.assert_exactly_once(&orders);
    // Deliver every OrderCreated again, byte for byte, as a relay retry would.
    let mut producer = bus::Producer::connect(bus::ProducerConfig {
        brokers: vec![platform.broker_addr.clone()],
        ack_timeout: Duration::from_secs(5),
        max_retries: 3,
        client_id: "e2e-duplicates".to_owned(),
    })
    .unwrap();
    let rows = platform
        .orders_db
        .client()
        .query("SELECT message_key, payload::text FROM events", &[])
        .unwrap();
    for row in &rows {
        let (key, value): (String, String) = (row.get(0), row.get(1));
        producer
            .send(bus::Record {
                topic: &platform.order_topic,
                key: key.as_bytes(),
                value: value.as_bytes(),
            })
            .unwrap();
    }
    // A fresh order after the duplicates: once it is through, so are they.
    let later = platform.place_orders(1);
    platform.assert_exactly_once(&[orders, later].concat());
}

on_each_broker!(
    an_order_placed_over_http_ends_as_a_notification_in_redis,
    kill_9_of_payments_mid_flight_loses_and_duplicates_nothing,
    kill_9_of_orders_and_its_relay_loses_nothing,
    kill_9_of_notifications_loses_nothing,
    a_broker_restart_with_data_dir_loses_nothing,
    a_postgres_outage_under_payments_loses_nothing,
    poison_messages_on_both_topics_do_not_stop_the_next_order,
    the_same_order_created_delivered_twice_is_paid_once,
);
