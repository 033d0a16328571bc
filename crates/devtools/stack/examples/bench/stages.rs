//! Where the paced phase's latency goes: every order's times at each hop, from the
//! load generator (sent, answered, notification in Redis) and from the databases
//! (`orders.created_at`, the `OrderCreated` outbox row's `sent_at`, payments'
//! `processed_events.processed_at`, the payment event's `sent_at`), as p50 / p99 per
//! stage. PostgreSQL's `now()` is its transaction's start, so a stage ending at one
//! includes the wait before that transaction began, not its commit. With
//! `track_commit_timestamp = on` (as `scripts/setup-test-tools.sh` sets it) the orders'
//! and the payments' commit records split each transaction from the relay after it.
//! PostgreSQL takes that timestamp as it writes the commit record, before the WAL
//! flush: the flush (and the NOTIFY, delivered after it) counts in the stage after.

use std::{
    collections::HashMap,
    io::Write as _,
    path::Path,
    time::{Instant, SystemTime, UNIX_EPOCH},
};

/// Turns the bench's `Instant`s into the wall-clock seconds the databases use.
#[derive(Clone, Copy)]
pub struct Clock {
    wall: f64,
    instant: Instant,
}

impl Clock {
    pub fn start() -> Self {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |since| since.as_secs_f64());
        Self {
            wall,
            instant: Instant::now(),
        }
    }

    fn epoch_secs(&self, at: Instant) -> f64 {
        if at >= self.instant {
            self.wall + (at - self.instant).as_secs_f64()
        } else {
            self.wall - (self.instant - at).as_secs_f64()
        }
    }
}

/// One paced order as the load generator saw it.
#[derive(Clone, Copy)]
pub struct Sent {
    pub sent: Instant,
    pub accepted: Instant,
}

/// The database side of each order (epoch seconds): created, committed, its event
/// sent; payment processed, committed, payment event sent. A commit time is NaN
/// without `track_commit_timestamp`.
type Hops = HashMap<i64, [f64; 6]>;

/// `(order id, start, commit, event sent)` of each of `ids`, from one side's database:
/// `table`'s `started` column is the transaction start; the commit time is that of
/// the row `committed_row` names (one no later transaction updates).
async fn side(
    dsn: &str,
    table: &'static str,
    started: &'static str,
    committed_row: &'static str,
    ids: Vec<i64>,
) -> HashMap<i64, [f64; 3]> {
    testkit::with_db(dsn, move |client| {
        let commits_tracked = client
            .query_one("SHOW track_commit_timestamp", &[])
            .is_ok_and(|row| row.get::<_, String>(0) == "on");
        let committed = if commits_tracked {
            // NULL for a transaction that committed before tracking was on.
            format!(
                "COALESCE(extract(epoch FROM pg_xact_commit_timestamp({committed_row}))::float8, 'NaN')"
            )
        } else {
            "'NaN'::float8".to_owned()
        };
        client
            .query(
                &format!(
                    "SELECT t.order_id, extract(epoch FROM t.{started})::float8, {committed},
                            extract(epoch FROM e.sent_at)::float8
                     FROM {table} t JOIN events e ON (e.payload->>'order_id')::bigint = t.order_id
                     WHERE t.order_id = ANY($1) AND e.sent_at IS NOT NULL"
                ),
                &[&ids],
            )
            .map(|rows| {
                rows.iter()
                    .map(|row| (row.get(0), [row.get(1), row.get(2), row.get(3)]))
                    .collect()
            })
            .unwrap_or_else(|err| {
                println!("latency by stage: cannot read {table}: {err}");
                HashMap::new()
            })
    })
    .await
}

async fn hops(orders_dsn: &str, payments_dsn: &str, ids: Vec<i64>) -> Hops {
    // `orders` rows are updated later (payment status), their items never are.
    let orders_side = side(
        orders_dsn,
        "orders",
        "created_at",
        "(SELECT i.xmin FROM order_items i WHERE i.order_id = t.order_id LIMIT 1)",
        ids.clone(),
    )
    .await;
    let payments_side = side(
        payments_dsn,
        "processed_events",
        "processed_at",
        "t.xmin",
        ids,
    )
    .await;
    orders_side
        .into_iter()
        .filter_map(|(order_id, [created, order_committed, order_sent])| {
            let [processed, payment_committed, payment_sent] = payments_side.get(&order_id)?;
            Some((
                order_id,
                [
                    created,
                    order_committed,
                    order_sent,
                    *processed,
                    *payment_committed,
                    *payment_sent,
                ],
            ))
        })
        .collect()
}

/// Prints p50 / p99 of each stage of the paced orders that went all the way; with
/// `dump` (a file and the run's name, `--dump-orders`), appends each order's times
/// to that file.
pub async fn print(
    clock: Clock,
    orders_dsn: &str,
    payments_dsn: &str,
    paced: &HashMap<i64, Sent>,
    arrivals: &HashMap<i64, Instant>,
    dump: Option<(&Path, &str)>,
) {
    let hops = hops(orders_dsn, payments_dsn, paced.keys().copied().collect()).await;
    const STAGES: [&str; 11] = [
        "request sent -> orders.created_at (gateway, group-commit queue, ids)",
        "orders.created_at -> answer received (insert, commit, answer)",
        "orders.created_at -> orders commit record (insert)",
        "orders commit record -> OrderCreated sent_at (WAL flush, notify, relay: claim, publish, ack)",
        "orders.created_at -> OrderCreated sent_at (orders commit, relay)",
        "OrderCreated sent_at -> payment processed_at (payments fetch, look-up, statement start)",
        "payment processed_at -> payments commit record (the payments statement)",
        "payments commit record -> payment event sent_at (WAL flush, notify, payments relay)",
        "payment processed_at -> payment event sent_at (payments commit, relay)",
        "payment event sent_at -> notification in Redis (notifications)",
        "answer received -> notification in Redis (the reported latency)",
    ];
    // One row per order: its spans, stage by stage (the last is the reported latency).
    let mut orders: Vec<[f64; STAGES.len()]> = Vec::new();
    let mut dumped = String::new();
    for (order_id, sent) in paced {
        let (
            Some(arrived),
            Some(
                &[
                    created,
                    order_committed,
                    order_sent,
                    processed,
                    payment_committed,
                    payment_sent,
                ],
            ),
        ) = (arrivals.get(order_id), hops.get(order_id))
        else {
            continue;
        };
        let (sent_at, accepted, arrived) = (
            clock.epoch_secs(sent.sent),
            clock.epoch_secs(sent.accepted),
            clock.epoch_secs(*arrived),
        );
        let spans = [
            created - sent_at,
            accepted - created,
            order_committed - created,
            order_sent - order_committed,
            order_sent - created,
            processed - order_sent,
            payment_committed - processed,
            payment_sent - payment_committed,
            payment_sent - processed,
            arrived - payment_sent,
            arrived - accepted,
        ];
        if dump.is_some() {
            dumped.push_str(&format!(
                "{order_id} {sent_at:.6} {accepted:.6} {created:.6} {order_committed:.6} {order_sent:.6} {processed:.6} {payment_committed:.6} {payment_sent:.6} {arrived:.6}\n"
            ));
        }
        orders.push(spans.map(|span| span * 1e3));
    }
    if let Some((path, run)) = dump {
        // One line per order, epoch seconds: id, request sent, answer received,
        // orders.created_at, orders commit, OrderCreated sent_at, payment processed_at,
        // payments commit, payment event sent_at, notification in Redis.
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut file| write!(file, "# {run}\n{dumped}"));
        match written {
            Ok(()) => println!("paced orders' times appended to {}", path.display()),
            Err(err) => println!(
                "cannot append the paced orders to {}: {err}",
                path.display()
            ),
        }
    }
    // The slowest 1% by reported latency: where their time went, which the per-stage
    // p99s (each from other orders) cannot tell.
    if orders.is_empty() {
        println!("latency by stage: no paced order found in both databases");
        return;
    }
    orders.sort_by(|a, b| a[STAGES.len() - 1].total_cmp(&b[STAGES.len() - 1]));
    let tail = &orders[orders.len() - orders.len().div_ceil(100).min(orders.len())..];
    println!(
        "latency by stage, {} paced orders, ms (p50 / p99 / median of the slowest {}):",
        orders.len(),
        tail.len()
    );
    for (stage, name) in STAGES.into_iter().enumerate() {
        let sorted = |rows: &[[f64; STAGES.len()]]| {
            let mut spans: Vec<f64> = rows.iter().map(|row| row[stage]).collect();
            spans.sort_by(f64::total_cmp);
            spans
        };
        let (all, slowest) = (sorted(&orders), sorted(tail));
        if all.iter().all(|span| span.is_nan()) {
            continue; // a commit time, not tracked by this PostgreSQL
        }
        println!(
            "  {:>7.1} / {:>7.1} / {:>7.1}  {name}",
            quantile(&all, 0.5),
            quantile(&all, 0.99),
            quantile(&slowest, 0.5)
        );
    }
}

/// How many updates of each `(database, table)` were HOT (no new index entry), so far
/// (PostgreSQL's statistics, a second or so behind): `orders` moving to its final
/// status, the outbox `events` rows being claimed and marked sent.
pub async fn print_hot_updates(tables: &[(&str, &str, &str)]) {
    for &(label, dsn, table) in tables {
        let table = table.to_owned();
        let counts: Option<(i64, i64)> = testkit::with_db(dsn, move |client| {
            client
                .query_opt(
                    "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = $1",
                    &[&table],
                )
                .ok()
                .flatten()
                .map(|row| (row.get(0), row.get(1)))
        })
        .await;
        if let Some((updated, hot)) = counts {
            println!(
                "{label} updated {updated} times, {hot} HOT ({:.0}%)",
                hot as f64 * 100.0 / updated.max(1) as f64
            );
        }
    }
}

/// The paced phase second by second: p50 / p99 / max of the reported latency (answer
/// -> Redis) of the orders sent in each second, to tell a steady tail from a transient
/// one (the burst's aftermath at the start, a checkpoint or autovacuum in the middle).
pub fn print_by_second(paced: &HashMap<i64, Sent>, arrivals: &HashMap<i64, Instant>) {
    let Some(start) = paced.values().map(|sent| sent.sent).min() else {
        return;
    };
    let mut seconds: Vec<Vec<f64>> = Vec::new();
    for (id, sent) in paced {
        let Some(arrived) = arrivals.get(id) else {
            continue;
        };
        let second = sent.sent.saturating_duration_since(start).as_secs() as usize;
        if seconds.len() <= second {
            seconds.resize(second + 1, Vec::new());
        }
        seconds[second].push(
            arrived
                .saturating_duration_since(sent.accepted)
                .as_secs_f64()
                * 1e3,
        );
    }
    println!("latency by second of the paced phase, ms (p50 / p99 / max, orders):");
    for (second, latencies) in seconds.iter_mut().enumerate() {
        latencies.sort_by(f64::total_cmp);
        println!(
            "  {:>2}: {:>6.1} / {:>6.1} / {:>6.1}  ({})",
            second + 1,
            quantile(latencies, 0.5),
            quantile(latencies, 0.99),
            latencies.last().copied().unwrap_or(f64::NAN),
            latencies.len()
        );
    }
}

/// The `q` quantile of `sorted` (ascending), NaN for none.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or(f64::NAN)
}
