//! A Go deployment's env files run this platform: the four service binaries, each
//! started with ONLY the variables of the Go repository's file for it
//! (`tests/fixtures/go-env/*.env`, read as written but for where the test's servers
//! are, as each file's header says), on devbroker, carry an order from `POST /orders`
//! to its notification in Redis, and the order to its final status. Each service
//! names the Go-only variables it accepted in one info line, and none warns of
//! another service's variable (each file is its own service's).

use std::{
    collections::BTreeMap,
    fs::File,
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use testkit::{
    BrokerKind, KillOnDrop, TestBroker, TestDatabase, binary, free_port, http_request, unique_name,
    wait_http_ok, wait_until,
};

const READY: Duration = Duration::from_secs(60);
const SETTLE: Duration = Duration::from_secs(90);

/// Replaces `from` by `to` in `vars[name]`, which must contain it (a changed fixture
/// fails here instead of silently running on something else).
fn substitute(vars: &mut BTreeMap<String, String>, name: &str, from: &str, to: &str) {
    let value = vars.get_mut(name).unwrap();
    assert!(value.contains(from), "{name}={value:?} has no {from:?}");
    *value = value.replacen(from, to, 1);
}

/// Go's env file for `service` (orders, payments or notifications) with the servers
/// every one of them names replaced by the test's: its database (`<SERVICE>_PG_DSN`),
/// where it has one; its health port (`<SERVICE>_HEALTH_ADDR`, `go_health` in Go's
/// file); the broker (`KAFKA_BROKERS`).
fn go_env_on_test_servers(
    service: &str,
    database: Option<&TestDatabase>,
    (go_health, health_port): (&str, u16),
    broker: &TestBroker,
) -> BTreeMap<String, String> {
    let prefix = service.to_ascii_uppercase();
    let mut vars = testkit::go_env(service);
    if let Some(database) = database {
        substitute(
            &mut vars,
            &format!("{prefix}_PG_DSN"),
            &format!("postgres://postgres:postgres@postgres:5432/{service}_db"),
            &format!("{}/{}", testkit::pg_base_url(), database.name),
        );
    }
    substitute(
        &mut vars,
        &format!("{prefix}_HEALTH_ADDR"),
        go_health,
        &format!(":{health_port}"),
    );
    substitute(
        &mut vars,
        "KAFKA_BROKERS",
        "kafka_produce:29092",
        &broker.bootstrap(),
    );
    vars
}

/// A service binary started with exactly `vars` as its environment; its output goes
/// to a log file, whose tail is printed when the test fails.
struct GoEnvService {
    name: &'static str,
    log_path: PathBuf,
    process: KillOnDrop,
}

impl GoEnvService {
    fn start(name: &'static str, vars: &BTreeMap<String, String>) -> Self {
        let log_dir = std::env::temp_dir().join("order-platform-test-logs");
        std::fs::create_dir_all(&log_dir).unwrap();
        let log_path = log_dir.join(format!("{}.log", unique_name(name)));
        let log = File::create(&log_path).unwrap();
        let child = Command::new(binary(name))
            .env_clear()
            .envs(vars)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {name}: {err}"));
        Self {
            name,
            log_path,
            process: KillOnDrop(child),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// SIGTERM; the service must stop with exit status 0.
    fn stop(&mut self) {
        let status = self.process.terminate(Duration::from_secs(30));
        assert!(status.success(), "{}: {status}\n{}", self.name, self.log());
    }
}

impl Drop for GoEnvService {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(40)..].join("\n");
            eprintln!("--- {} ({}):\n{tail}", self.name, self.log_path.display());
        }
    }
}

#[test]
fn the_go_env_files_carry_an_order_to_its_notification() {
    let broker = TestBroker::start(BrokerKind::Devbroker);
    // The topics the files name; this broker is the test's own.
    broker.create_topic("order-topic", 3);
    broker.create_topic("status-topic", 3);
    let orders_db = TestDatabase::new("go_env_orders");
    let payments_db = TestDatabase::new("go_env_payments");
    let redis = testkit::redis_url();
    let redis_addr = redis.trim_start_matches("redis://").trim_end_matches('/');
    let [
        grpc,
        orders_health,
        payments_health,
        notifications_health,
        gateway_http,
    ] = [(); 5].map(|_| free_port());

    let mut orders = go_env_on_test_servers(
        "orders",
        Some(&orders_db),
        (":8081", orders_health),
        &broker,
    );
    substitute(&mut orders, "ORDERS_GRPC_ADDR", "50051", &grpc.to_string());
    let payments = go_env_on_test_servers(
        "payments",
        Some(&payments_db),
        (":8082", payments_health),
        &broker,
    );
    let mut notifications = go_env_on_test_servers(
        "notifications",
        None,
        (":8083", notifications_health),
        &broker,
    );
    substitute(&mut notifications, "REDIS_ADDR", "redis:6379", redis_addr);

    let mut gateway = testkit::go_env("gateway");
    substitute(
        &mut gateway,
        "ORDERS_GRPC_ADDR",
        "orders-service:50051",
        &format!("127.0.0.1:{grpc}"),
    );
    // Go's gateway listens on :8080, hard-coded; this one is told where.
    gateway.insert(
        "GATEWAY_HTTP_ADDR".to_owned(),
        format!("127.0.0.1:{gateway_http}"),
    );

    let mut services = [
        GoEnvService::start("orders", &orders),
        GoEnvService::start("payments", &payments),
        GoEnvService::start("notifications", &notifications),
        GoEnvService::start("gateway", &gateway),
    ];
    for port in [
        orders_health,
        payments_health,
        notifications_health,
        gateway_http,
    ] {
        wait_http_ok(&format!("http://127.0.0.1:{port}/readyz"), READY);
    }

    // A user of this run only: the notification's key is the bare order id (no
    // REDIS_KEY_PREFIX in Go's file), which an earlier run may have left behind.
    let user_id = i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_micros()
            % 1_000_000_000_000,
    )
    .unwrap()
        + 1;
    let gateway_url = format!("http://127.0.0.1:{gateway_http}");
    let body = format!(
        r#"{{"user_id": {user_id}, "items": [{{"product_id": 3, "quantity": 2, "price": 250}}]}}"#
    );
    let (status, response) =
        http_request("POST", &format!("{gateway_url}/orders"), Some(&body)).unwrap();
    assert_eq!(status, 200, "POST /orders: {response}");
    let order_id = serde_json::from_str::<serde_json::Value>(&response).unwrap()["order_id"]
        .as_i64()
        .unwrap();

    // REDIS_DB=0 as in Go's file.
    let mut redis = redis::Client::open(redis.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let key = order_id.to_string();
    let notification = wait_until(SETTLE, "the order's notification in Redis", || {
        let value: Option<String> = redis::cmd("GET").arg(&key).query(&mut redis).unwrap();
        value
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .filter(|json| json["user_id"] == user_id)
    });
    let ttl_ms: i64 = redis::cmd("PTTL").arg(&key).query(&mut redis).unwrap();
    let _: i64 = redis::cmd("DEL").arg(&key).query(&mut redis).unwrap();
    let outcome = if order_id % 2 == 0 {
        ("succeeded", "paid")
    } else {
        ("failed", "payment_failed")
    };
    assert_eq!(
        notification,
        serde_json::json!({"order_id": order_id, "user_id": user_id, "order_status": outcome.0})
    );
    // REDIS_TTL=48h.
    assert!(
        (47 * 3_600_000..=48 * 3_600_000).contains(&ttl_ms),
        "PTTL {ttl_ms}"
    );
    // orders followed the payment on the status topic, in its own consumer group.
    wait_until(SETTLE, &format!("order {order_id} {}", outcome.1), || {
        let (status, body) =
            http_request("GET", &format!("{gateway_url}/orders/{order_id}"), None)?;
        let json: serde_json::Value = serde_json::from_str(&body).ok()?;
        (status == 200 && json["order"]["status"] == outcome.1).then_some(())
    });

    for service in &mut services {
        service.stop();
    }
    let accepted: [(&str, &[&str]); 3] = [
        (
            "orders",
            &[
                "env",
                "ORDERS_PG_DSN_TEST",
                "ORDERS_PG_MIN_CONNS",
                "ORDERS_PG_MAX_CONN_IDLE_TIME",
                "ORDERS_PG_HEALTH_CHECK_PERIOD",
            ],
        ),
        (
            "payments",
            &[
                "ENV",
                "KAFKA_EVENT_TYPE",
                "KAFKA_TEST_BROKERS",
                "PAYMENTS_PG_MIN_CONNS",
            ],
        ),
        (
            "notifications",
            &[
                "ENV",
                "SESSION_TIMEOUT",
                "READ_TIMEOUT",
                "REDIS_ADDR_TEST",
                "REDIS_MAX_RETRIES",
            ],
        ),
    ];
    for (service, names) in accepted {
        let log = services.iter().find(|s| s.name == service).unwrap().log();
        let line = log
            .lines()
            .find(|line| line.contains("accepted, only the Go service uses:"))
            .unwrap_or_else(|| panic!("{service} named no Go-only variable:\n{log}"));
        testkit::assert_mentions(line, names);
    }
    for service in &services {
        let log = service.log();
        assert!(
            !log.contains("does not read it"),
            "{}: warned of another service's variable:\n{log}",
            service.name
        );
    }
}
