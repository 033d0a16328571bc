//! The Go platform's databases, for the tests of taking them over: created as its
//! goose migrations leave them (`fixtures/go/*.sql`, written from the Go
//! repository's `00001_init.sql` files) and filled the way the Go services write
//! (one order with its items and its `OrderCreated` outbox row per transaction, a
//! payment with its handled event and `PaymentStatus` row), plus a [`snapshot`] of
//! a whole database to show that a refused take-over changed nothing.

use postgres::Client;

use crate::TestDatabase;

/// Which Go service made the database.
#[derive(Debug, Clone, Copy)]
pub enum GoService {
    Orders,
    Payments,
}

impl GoService {
    /// The service's own tables; goose's table and the outbox are the same in both.
    fn own_tables_sql(self) -> &'static str {
        match self {
            GoService::Orders => include_str!("../fixtures/go/orders.sql"),
            GoService::Payments => include_str!("../fixtures/go/payments.sql"),
        }
    }
}

const GOOSE_SQL: &str = include_str!("../fixtures/go/goose.sql");
const OUTBOX_SQL: &str = include_str!("../fixtures/go/outbox.sql");

impl TestDatabase {
    /// Creates the database with `service`'s Go schema (goose version 1) and returns
    /// a connection to it.
    pub fn create_as_go(&self, service: GoService) -> Client {
        let mut maintenance = Client::connect(
            &format!("{}/postgres", crate::pg_base_url()),
            postgres::NoTls,
        )
        .unwrap();
        maintenance
            .batch_execute(&format!("CREATE DATABASE \"{}\"", self.name))
            .unwrap();
        let mut client = self.client();
        for sql in [GOOSE_SQL, service.own_tables_sql(), OUTBOX_SQL] {
            client.batch_execute(sql).unwrap();
        }
        client
    }
}

/// One order as the Go orders service wrote it.
#[derive(Debug, Clone)]
pub struct GoOrder {
    pub user_id: i64,
    /// As Go stored it (e.g. `StatusNew`).
    pub status: &'static str,
    /// `(product_id, quantity, price)`.
    pub items: Vec<(i64, i32, i64)>,
    /// Whether the Go relay published its `OrderCreated` already.
    pub sent: bool,
}

impl GoOrder {
    pub fn new(user_id: i64, items: Vec<(i64, i32, i64)>, sent: bool) -> Self {
        Self {
            user_id,
            status: "StatusNew",
            items,
            sent,
        }
    }

    pub fn total(&self) -> i64 {
        self.items
            .iter()
            .map(|(_, quantity, price)| i64::from(*quantity) * price)
            .sum()
    }
}

/// Writes `order` as Go's `CreateOrder` does (order, items, `OrderCreated` row with
/// `event_id: 0` in its payload, in one transaction); marks the row sent if the
/// order says so. Returns `(order_id, event_id)`.
pub fn insert_go_order(client: &mut Client, order: &GoOrder) -> (i64, i64) {
    let mut tx = client.transaction().unwrap();
    let row = tx
        .query_one(
            "INSERT INTO orders (user_id, status) VALUES ($1, $2) RETURNING id, created_at::text",
            &[&order.user_id, &order.status],
        )
        .unwrap();
    let (order_id, created_at): (i64, String) = (row.get(0), row.get(1));
    for (product_id, quantity, price) in &order.items {
        tx.execute(
            "INSERT INTO order_items (order_id, product_id, quantity, price) VALUES ($1, $2, $3, $4)",
            &[&order_id, product_id, quantity, price],
        )
        .unwrap();
    }
    // Go's time.Time JSON: RFC 3339 with nanoseconds; the server's local time is
    // UTC on the test server, as in the Go platform's compose file.
    let payload = serde_json::json!({
        "event_id": 0,
        "order_id": order_id,
        "user_id": order.user_id,
        "total_amount": order.total(),
        "created_at": format!("{}Z", created_at.replace(' ', "T")),
    });
    let event_id: i32 = tx
        .query_one(
            "INSERT INTO events (event_type, payload, aggregate_id, sent_at)
             VALUES ('order created', $1::text::jsonb, $2, CASE WHEN $3 THEN now() END)
             RETURNING id",
            &[&payload.to_string(), &order_id, &order.sent],
        )
        .unwrap()
        .get(0);
    tx.commit().unwrap();
    (order_id, i64::from(event_id))
}

/// Writes what Go's payments does for one `OrderCreated` (`handled_event_id`): the
/// handled event, the decided payment (Go's rule: even order ids succeed), and its
/// `PaymentStatus` row, sent or not. Returns the `PaymentStatus` event id.
pub fn insert_go_payment(
    client: &mut Client,
    handled_event_id: i32,
    order_id: i64,
    user_id: i64,
    amount: i64,
    sent: bool,
) -> i64 {
    let status = if order_id % 2 == 0 {
        "succeeded"
    } else {
        "failed"
    };
    let mut tx = client.transaction().unwrap();
    tx.execute(
        "INSERT INTO processed_events (event_id, processed_at) VALUES ($1, NOW())",
        &[&handled_event_id],
    )
    .unwrap();
    tx.execute(
        "INSERT INTO payments (order_id, user_id, total_amount, status) VALUES ($1, $2, $3, $4)",
        &[&order_id, &user_id, &amount, &status],
    )
    .unwrap();
    let payload = serde_json::json!({
        "event_id": 0,
        "order_id": order_id,
        "user_id": user_id,
        "order_status": status,
    });
    let event_id: i32 = tx
        .query_one(
            "INSERT INTO events (event_type, payload, aggregate_id, sent_at)
             VALUES ('event-status', $1::text::jsonb, $2, CASE WHEN $3 THEN now() END)
             RETURNING id",
            &[&payload.to_string(), &order_id, &sent],
        )
        .unwrap()
        .get(0);
    tx.commit().unwrap();
    i64::from(event_id)
}

/// Every schema, table, column, index, constraint, sequence position and row of the
/// database, as text: equal snapshots mean nothing changed.
pub fn snapshot(client: &mut Client) -> Vec<String> {
    let mut lines: Vec<String> = client
        .query(
            "SELECT 'schema ' || nspname FROM pg_namespace
             WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'
             UNION ALL
             SELECT 'column ' || table_schema || '.' || table_name || '.' || column_name || ' '
                    || data_type || ' ' || is_nullable || ' ' || coalesce(column_default, '')
             FROM information_schema.columns
             WHERE table_schema NOT IN ('pg_catalog', 'information_schema')
             UNION ALL
             SELECT 'index ' || schemaname || ' ' || indexdef FROM pg_indexes
             WHERE schemaname NOT IN ('pg_catalog', 'information_schema')
             UNION ALL
             SELECT 'constraint ' || conrelid::regclass::text || ' ' || pg_get_constraintdef(oid)
             FROM pg_constraint WHERE connamespace = 'public'::regnamespace
             UNION ALL
             SELECT 'function ' || proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace
             UNION ALL
             SELECT 'trigger ' || tgname FROM pg_trigger WHERE NOT tgisinternal",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let relations: Vec<(String, String)> = client
        .query(
            "SELECT n.nspname, c.relname || '|' || c.relkind::text FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'S')
               AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    for (schema, name_kind) in relations {
        let (name, kind) = name_kind.split_once('|').unwrap();
        let relation = format!("\"{schema}\".\"{name}\"");
        let contents: String = if kind == "S" {
            client
                .query_one(
                    &format!("SELECT last_value::text || ' ' || is_called::text FROM {relation}"),
                    &[],
                )
                .unwrap()
                .get(0)
        } else {
            client
                .query_one(
                    &format!(
                        "SELECT coalesce(json_agg(t ORDER BY t::text), '[]')::text FROM {relation} AS t"
                    ),
                    &[],
                )
                .unwrap()
                .get(0)
        };
        lines.push(format!("{kind} {relation} {contents}"));
    }
    lines.sort();
    lines
}
