//! One gateway in front of several orders (`ORDERS_GRPC_ADDR` a list): calls spread
//! over the replicas; one orders killed with SIGKILL under load loses no read and
//! no keyed create, and an unkeyed create fails (503) only when it was in flight to
//! the dead one, never sent twice; the restarted replica takes calls again. And the
//! address forms: a name resolved into replicas, a bad list entry refused naming it.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use orders::testing::{DEADLINE, Orders, OrdersProcess, config as orders_config, get_status};
use reqwest::header::HeaderValue;
use settings::GoDuration;
use testkit::{TestDatabase, wait_until_async};

use crate::common::{self, Gateway, gateway_config};

/// Concurrent clients of the load.
const CLIENTS: usize = 6;
/// Unkeyed creates use user ids from here on, keyed ones from [`KEYED_USERS`]: one
/// user per request, so the database says whether each request was stored, and how
/// many times.
const UNKEYED_USERS: i64 = 1_000_000;
const KEYED_USERS: i64 = 2_000_000;

fn order(user_id: i64) -> String {
    format!(
        r#"{{"user_id": {user_id}, "items": [{{"product_id": 1, "quantity": 1, "price": 5}}]}}"#
    )
}

/// What the load saw.
#[derive(Default)]
struct Outcomes {
    /// Every answer that was not 200: (what, status, body).
    read_failures: Vec<String>,
    keyed_failures: Vec<String>,
    /// Unkeyed creates: (user id, the order id if 200, else the status).
    unkeyed: Vec<(i64, Result<i64, u16>)>,
    /// Keyed creates that succeeded: (user id, order id).
    keyed: Vec<(i64, i64)>,
}

/// `/metrics` of an orders process, from its `/readyz` URL.
async fn process_metric(ready_url: &str, series: &str) -> f64 {
    let url = ready_url.replace("/readyz", "/metrics");
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let Ok(response) = http.get(url).send().await else {
        return 0.0;
    };
    let prefix = format!("{series} ");
    response
        .text()
        .await
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix(&prefix)?.parse().ok())
        .unwrap_or(0.0)
}

/// The gateway's `gateway_orders_replica_up` for `replica`.
async fn replica_up(gateway: &Gateway, replica: &str) -> Option<f64> {
    let series = format!("gateway_orders_replica_up{{replica=\"{replica}\"}} ");
    gateway
        .text("/metrics")
        .await
        .lines()
        .find_map(|line| line.strip_prefix(&series)?.parse().ok())
}

async fn wait_replica_up(gateway: &Gateway, replica: &str, up: f64) {
    let what = format!("{replica} up = {up}");
    wait_until_async(DEADLINE, &what, || async {
        (replica_up(gateway, replica).await == Some(up)).then_some(())
    })
    .await;
}

/// Waits until the load has made `more` requests past `done`.
async fn wait_requests(done: &AtomicUsize, more: usize) {
    let target = done.load(Ordering::Relaxed) + more;
    wait_until_async(DEADLINE, "the load to go on", || async {
        (done.load(Ordering::Relaxed) >= target).then_some(())
    })
    .await;
}

#[test]
fn a_killed_orders_costs_no_read_and_no_keyed_create_and_comes_back() {
    let db = TestDatabase::new("gateway_replicas");
    // Real binaries, so one can be killed with SIGKILL: its connections die with it.
    let mut a = OrdersProcess::spawn(db.dsn());
    let b = OrdersProcess::spawn(db.dsn());
    let list = format!("{},{}", a.uri, b.uri);
    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    testkit::runtime().block_on(async {
        let gateway = Arc::new(Gateway::start(gateway_config(&list, Duration::from_secs(5))).await);
        wait_replica_up(&gateway, &a.uri, 1.0).await;
        wait_replica_up(&gateway, &b.uri, 1.0).await;
        let ready = gateway.get("/readyz").await;
        assert_eq!(ready.status, 200, "{ready:?}");
        assert_eq!(
            ready.body["checks"]["orders_serving"], "2 of 2",
            "{ready:?}"
        );
        let seeded: Vec<i64> = {
            let mut ids = Vec::new();
            for user in 1..=4 {
                ids.push(gateway.create_order(&order(user)).await);
            }
            ids
        };

        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicUsize::new(0));
        let next_user = Arc::new(AtomicUsize::new(0));
        let mut clients = Vec::new();
        for client in 0..CLIENTS {
            let (gateway, stop, done, next_user, outcomes, seeded) = (
                gateway.clone(),
                stop.clone(),
                done.clone(),
                next_user.clone(),
                outcomes.clone(),
                seeded.clone(),
            );
            clients.push(tokio::spawn(async move {
                let mut turn = client;
                while !stop.load(Ordering::Relaxed) {
                    let n = next_user.fetch_add(1, Ordering::Relaxed) as i64;
                    match turn % 3 {
                        0 => {
                            let id = seeded[turn % seeded.len()];
                            let got = gateway.get(&format!("/orders/{id}")).await;
                            if got.status != 200 {
                                let mut outcomes = outcomes.lock().unwrap();
                                outcomes.read_failures.push(format!("{got:?}"));
                            }
                        }
                        1 => {
                            let user = KEYED_USERS + n;
                            let key = HeaderValue::from_str(&format!("replicas-{n}")).unwrap();
                            let created = gateway
                                .send_with_headers(
                                    "POST",
                                    "/orders",
                                    Some(order(user).into_bytes()),
                                    &[("idempotency-key", key)],
                                )
                                .await;
                            let mut outcomes = outcomes.lock().unwrap();
                            match created.body["order_id"].as_i64() {
                                Some(id) if created.status == 200 => {
                                    outcomes.keyed.push((user, id));
                                }
                                _ => outcomes.keyed_failures.push(format!("{created:?}")),
                            }
                        }
                        _ => {
                            let user = UNKEYED_USERS + n;
                            let created = gateway.post("/orders", &order(user)).await;
                            let result = match created.body["order_id"].as_i64() {
                                Some(id) if created.status == 200 => Ok(id),
                                _ => Err(created.status),
                            };
                            outcomes.lock().unwrap().unkeyed.push((user, result));
                        }
                    }
                    turn += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }

        // Both replicas take calls before the kill.
        wait_requests(&done, 300).await;
        wait_until_async(DEADLINE, "both replicas to store orders", || async {
            let created_a = process_metric(&a.ready_url, "orders_created_total").await;
            let created_b = process_metric(&b.ready_url, "orders_created_total").await;
            (created_a > 0.0 && created_b > 0.0).then_some(())
        })
        .await;

        a.process.kill9();
        wait_requests(&done, 300).await;
        wait_replica_up(&gateway, &a.uri, 0.0).await;
        let not_ready_one = gateway.get("/readyz").await;
        assert_eq!(not_ready_one.status, 200, "{not_ready_one:?}");
        assert_eq!(
            not_ready_one.body["checks"]["orders_serving"], "1 of 2",
            "{not_ready_one:?}"
        );
        wait_requests(&done, 300).await;

        // The same binary on the same ports: back in rotation once SERVING, and it
        // stores orders again (its counter starts from 0 in the new process).
        a.process.restart();
        let ready_url = a.ready_url.clone();
        wait_until_async(DEADLINE, "the restarted orders /readyz 200", || {
            let url = ready_url.clone();
            async move { (get_status(&url).await == Some(200)).then_some(()) }
        })
        .await;
        wait_replica_up(&gateway, &a.uri, 1.0).await;
        wait_until_async(DEADLINE, "the restarted orders to store orders", || async {
            (process_metric(&a.ready_url, "orders_created_total").await > 0.0).then_some(())
        })
        .await;
        wait_requests(&done, 100).await;

        stop.store(true, Ordering::Relaxed);
        for client in clients {
            client.await.unwrap();
        }
        let metrics = gateway.text("/metrics").await;
        let retries: Vec<&str> = metrics
            .lines()
            .filter(|line| line.starts_with("gateway_orders_retries_total"))
            .collect();
        eprintln!("after the kill: {retries:?}");
    });

    let outcomes = outcomes.lock().unwrap();
    assert_eq!(outcomes.read_failures, Vec::<String>::new());
    assert_eq!(outcomes.keyed_failures, Vec::<String>::new());
    // Every stored order by its user, read once.
    let mut by_user: HashMap<i64, Vec<i64>> = HashMap::new();
    for row in db
        .client()
        .query("SELECT user_id, order_id FROM orders", &[])
        .unwrap()
    {
        by_user.entry(row.get(0)).or_default().push(row.get(1));
    }
    let stored = |user: i64| by_user.get(&user).cloned().unwrap_or_default();
    for &(user, id) in &outcomes.keyed {
        assert_eq!(stored(user), [id], "keyed create of user {user}");
    }
    let mut failed = 0;
    let mut failed_but_stored = Vec::new();
    for &(user, result) in &outcomes.unkeyed {
        match result {
            Ok(id) => assert_eq!(stored(user), [id], "unkeyed create of user {user}"),
            Err(status) => {
                failed += 1;
                assert_eq!(status, 503, "an unkeyed create failed otherwise than 503");
                // Never sent twice. A create whose connection broke after orders
                // committed it and before the answer reached the gateway is stored
                // once, and its client got 503: the ambiguity an unkeyed request
                // has (the Idempotency-Key resolves it).
                match stored(user).len() {
                    0 => {}
                    1 => failed_but_stored.push(user),
                    n => panic!("unkeyed create of user {user} stored {n} times"),
                }
            }
        }
    }
    eprintln!(
        "reads and keyed creates: no failure; {} keyed, {} unkeyed creates, {failed} unkeyed \
         failed (503), of which committed before the connection broke: {failed_but_stored:?}",
        outcomes.keyed.len(),
        outcomes.unkeyed.len()
    );
    assert!(
        failed_but_stored.len() <= CLIENTS,
        "at most the creates in flight at the kill: {failed_but_stored:?}"
    );
    // Nothing else was stored: the seeds, the successes, and those ambiguous ones.
    let successes = outcomes.keyed.len()
        + outcomes
            .unkeyed
            .iter()
            .filter(|(_, result)| result.is_ok())
            .count();
    let all: usize = by_user.values().map(Vec::len).sum();
    assert_eq!(all, 4 + successes + failed_but_stored.len());
}

#[test]
fn a_name_is_resolved_into_replicas_and_a_bad_list_entry_is_refused() {
    let db = TestDatabase::new("gateway_replicas_dns");
    testkit::runtime().block_on(async {
        let orders = Orders::start(orders_config(db.dsn())).await;
        orders.wait_ready().await;
        let port = orders.grpc_addr.port();
        let gateway = Gateway::start(gateway::Config {
            gateway_orders_resolve_interval: GoDuration::from_secs(1),
            ..gateway_config(&format!("localhost:{port}"), Duration::from_secs(5))
        })
        .await;
        // localhost resolves to 127.0.0.1 (and, where the machine says so, ::1,
        // where nothing listens: a replica out of rotation).
        let replica = format!("http://127.0.0.1:{port}");
        wait_replica_up(&gateway, &replica, 1.0).await;
        let order_id = gateway.create_order(&order(7)).await;
        let got = gateway.get_order(order_id).await;
        assert_eq!(got["order"]["user_id"], 7, "{got}");
        let ready = gateway.get("/readyz").await;
        assert_eq!(ready.status, 200, "{ready:?}");
        assert!(orders.metric("orders_created_total").await >= 1.0);
    });
    common::assert_settings_refused(&[
        ("ORDERS_GRPC_ADDR", "127.0.0.1:50051,orders", "\"orders\""),
        (
            "ORDERS_GRPC_ADDR",
            "127.0.0.1:50051,ftp://orders:1",
            "unsupported scheme",
        ),
        (
            "ORDERS_GRPC_ADDR",
            "127.0.0.1:50051,,127.0.0.1:50052",
            "empty entry",
        ),
        (
            "ORDERS_GRPC_ADDR",
            "127.0.0.1:50051,https://orders:50051",
            "https is not supported",
        ),
        (
            "GATEWAY_ORDERS_RESOLVE_INTERVAL",
            "soon",
            "expected a Go duration",
        ),
    ]);
}
