//! `docs/configuration.md` tells the truth: its table lists exactly the variables
//! each service reads, accepts for its Go twin and warns of, and every variable of
//! Go's env files (`tests/fixtures/go-env/`) under the Go service that has it. And
//! one env file shared by the Go services (all of Go's files in one) gives each Rust
//! service its own settings, never another service's.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    time::Duration,
};

const SERVICES: [&str; 4] = ["orders", "payments", "notifications", "gateway"];

fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

/// One row of the table: the variable and its "Go reads" and "Rust reads" cells.
struct Row {
    name: String,
    go: Vec<String>,
    rust: Vec<String>,
}

fn table() -> Vec<Row> {
    let text = std::fs::read_to_string(repository_root().join("docs/configuration.md")).unwrap();
    let cells = |line: &str| -> Vec<String> {
        line.trim()
            .trim_matches('|')
            .split(" | ")
            .map(|cell| cell.trim().to_owned())
            .collect()
    };
    let entries = |cell: &str| -> Vec<String> {
        if cell == "—" {
            return Vec::new();
        }
        cell.split(", ").map(str::to_owned).collect()
    };
    let rows: Vec<Row> = text
        .lines()
        .filter(|line| line.starts_with("| `"))
        .map(|line| {
            let cells = cells(line);
            assert_eq!(cells.len(), 6, "not six cells: {line}");
            Row {
                name: cells[0].trim_matches('`').to_owned(),
                go: entries(&cells[1]),
                rust: entries(&cells[2]),
            }
        })
        .collect();
    assert!(rows.len() > 50, "the table was not found");
    rows
}

/// The variables whose "Rust reads" cell has `entry` (e.g. `orders (accepted)`).
fn documented(rows: &[Row], entry: &str) -> BTreeSet<String> {
    rows.iter()
        .filter(|row| row.rust.iter().any(|cell| cell == entry))
        .map(|row| row.name.clone())
        .collect()
}

/// (read, accepted, warned of) as `service`'s code lists them: its [`settings::EnvSpec`],
/// the Kafka connection's variables but for the gateway, which has none, and the
/// logging and tracing (`OTEL_*`) variables every service reads.
fn in_code(service: &str) -> [BTreeSet<String>; 3] {
    let kafka = settings::KafkaConnection::ENV_VARS.as_slice();
    let (spec, kafka) = match service {
        "orders" => (orders::config::ENV_SPEC, kafka),
        "payments" => (payments::config::ENV_SPEC, kafka),
        "notifications" => (notifications::config::ENV_SPEC, kafka),
        _ => (gateway::config::ENV_SPEC, &[][..]),
    };
    let names = |list: &[&str]| list.iter().map(|name| name.to_string()).collect();
    let mut read: BTreeSet<String> = names(spec.read);
    read.extend(names(kafka));
    read.extend(names(lifecycle::ENV_VARS));
    read.extend(names(telemetry::ENV_VARS));
    read.insert(spec.config_file_var.to_owned());
    [
        read,
        names(spec.go_only),
        spec.not_read
            .iter()
            .map(|other| other.name.to_owned())
            .collect(),
    ]
}

#[test]
fn the_table_lists_what_each_service_reads_accepts_and_warns_of() {
    let rows = table();
    let mut seen = BTreeSet::new();
    for row in &rows {
        assert!(seen.insert(&row.name), "{} has two rows", row.name);
        assert!(
            !(row.go.is_empty() && row.rust.is_empty()),
            "{}: read by no service",
            row.name
        );
        for entry in &row.rust {
            let service = entry.split(' ').next().unwrap();
            assert!(
                SERVICES.contains(&service)
                    && [
                        service.to_owned(),
                        format!("{service} (accepted)"),
                        format!("{service} (not read)")
                    ]
                    .contains(entry),
                "{}: unknown Rust entry {entry:?}",
                row.name
            );
        }
    }
    for service in SERVICES {
        let [read, accepted, not_read] = in_code(service);
        for (entry, expected) in [
            (service.to_owned(), read),
            (format!("{service} (accepted)"), accepted),
            (format!("{service} (not read)"), not_read),
        ] {
            assert_eq!(
                documented(&rows, &entry),
                expected,
                "docs/configuration.md rows with {entry:?} in \"Rust reads\" differ from the code"
            );
        }
    }
}

#[test]
fn every_variable_of_gos_env_files_is_in_the_table_under_its_go_service_and_known_to_ours() {
    let rows = table();
    for service in SERVICES {
        let [read, accepted, _] = in_code(service);
        for name in testkit::go_env(service).keys() {
            let row = rows
                .iter()
                .find(|row| &row.name == name)
                .unwrap_or_else(|| panic!("Go's {service} env file sets {name}, not in the table"));
            assert!(
                row.go
                    .iter()
                    .any(|entry| entry.split(' ').next() == Some(service)),
                "{name}: \"Go reads\" does not name {service}"
            );
            assert!(
                read.contains(name) || accepted.contains(name),
                "Go's {service} env file sets {name}, which {service} neither reads nor accepts"
            );
        }
    }
}

/// All of Go's service env files as one file (they agree where they overlap), with
/// the two relay ticks told apart.
fn shared_go_env() -> BTreeMap<String, String> {
    let mut shared = BTreeMap::new();
    for service in ["orders", "payments", "notifications"] {
        for (name, value) in testkit::go_env(service) {
            if let Some(earlier) = shared.insert(name.clone(), value.clone()) {
                assert_eq!(earlier, value, "Go's files disagree on {name}");
            }
        }
    }
    shared.insert("KAFKA_PERIOD".into(), "250ms".into());
    shared.insert("KAFKA_SENDER_PERIOD".into(), "2s".into());
    shared
}

#[test]
fn one_shared_go_env_file_gives_each_service_its_own_settings() {
    let env = shared_go_env();
    let (orders, orders_notes) = orders::Config::from_vars(&env).unwrap();
    let (payments, payments_notes) = payments::Config::from_vars(&env).unwrap();
    let (notifications, notifications_notes) = notifications::Config::from_vars(&env).unwrap();

    // Topics: orders publishes where payments consumes; notifications and orders
    // consume where payments publishes, never orders' topic.
    assert_eq!(orders.topic(), "order-topic");
    assert_eq!(payments.kafka_topic_order, "order-topic");
    assert_eq!(payments.kafka_topic_status, "status-topic");
    assert_eq!(notifications.topic(), "status-topic");
    assert_eq!(orders.kafka_topic_status, "status-topic");
    // Each relay its own tick.
    assert_eq!(orders.outbox().poll_interval, Duration::from_millis(250));
    assert_eq!(payments.outbox().poll_interval, Duration::from_secs(2));
    // orders never joins notifications' group on the status topic.
    assert_eq!(notifications.kafka_consumer_group, "my-group");
    assert_eq!(payments.kafka_consumer_group, "my-group");
    assert_eq!(orders.orders_consumer_group, "orders");

    // What each says at start-up: Go's variables of its own twin accepted; another
    // service's variable it could be mistaken to read, warned of.
    let go_only = |notes: &settings::Notes| notes.go_only.join(" ");
    assert_eq!(
        go_only(&orders_notes),
        "env ENV ORDERS_PG_DSN_TEST ORDERS_PG_MIN_CONNS ORDERS_PG_MAX_CONN_IDLE_TIME \
         ORDERS_PG_HEALTH_CHECK_PERIOD"
    );
    assert_eq!(
        go_only(&payments_notes),
        "env ENV KAFKA_EVENT_TYPE KAFKA_TEST_BROKERS PAYMENTS_PG_MIN_CONNS \
         PAYMENTS_PG_MAX_CONN_IDLE_TIME PAYMENTS_PG_HEALTH_CHECK_PERIOD"
    );
    assert_eq!(
        go_only(&notifications_notes),
        "env ENV SESSION_TIMEOUT READ_TIMEOUT REDIS_ADDR_TEST REDIS_MAX_RETRIES"
    );
    let warned = |notes: &settings::Notes| -> Vec<String> {
        notes
            .not_read
            .iter()
            .map(|line| line.split(' ').next().unwrap().to_owned())
            .collect()
    };
    assert_eq!(warned(&orders_notes), ["KAFKA_CONSUMER_GROUP"]);
    // Both ticks and both topics are set: nothing to say.
    assert!(payments_notes.not_read.is_empty(), "{payments_notes:?}");
    assert!(
        notifications_notes.not_read.is_empty(),
        "{notifications_notes:?}"
    );
    // Without the status topic, notifications says it did not take orders' topic.
    let mut without_status = env.clone();
    without_status.remove("KAFKA_TOPIC_STATUS");
    let (notifications, notes) = notifications::Config::from_vars(&without_status).unwrap();
    assert_eq!(notifications.topic(), "status-topic");
    assert_eq!(warned(&notes), ["KAFKA_TOPIC"]);
}
