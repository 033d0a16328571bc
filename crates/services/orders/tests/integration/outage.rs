//! A PostgreSQL outage under a running orders: UNAVAILABLE (never INTERNAL) for as
//! long as it lasts, health NOT_SERVING and `/readyz` 503, then recovery on its own.
//! The operations server's bodies carry the Go services' fields (`status`; a 503's
//! `error` and `code`) and the `checks` detail.

use orders::testing::{DEADLINE, Orders, config, item, request};
use proto::v1::orders_service_client::OrdersServiceClient;
use serde_json::{Value, json};
use testkit::{TcpProxy, TestDatabase, runtime, wait_until_async};
use tonic::{Code, transport::Channel};
use tonic_health::pb::health_check_response::ServingStatus;

/// Status and JSON body of a GET on orders' operations server (`/readyz`, `/healthz`).
async fn ops_get(orders: &Orders, path: &str) -> Option<(u16, Value)> {
    let url = format!("http://{}{path}", orders.health_addr);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let response = http.get(url).send().await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.json().await.ok()?))
}

async fn readyz(orders: &Orders) -> Option<u16> {
    ops_get(orders, "/readyz").await.map(|(status, _)| status)
}

/// A new database, a proxy to PostgreSQL for a test to cut and restore, and orders'
/// test settings that reach the database through the proxy.
fn database_behind_a_proxy() -> (TestDatabase, TcpProxy, orders::Config) {
    let db = TestDatabase::new("orders");
    let proxy = TcpProxy::start("127.0.0.1:5432").unwrap();
    let settings = config(db.dsn_via(&proxy.addr()));
    (db, proxy, settings)
}

/// CreateOrder (of a valid order), which must fail with UNAVAILABLE and `message`.
async fn assert_create_unavailable(client: &mut OrdersServiceClient<Channel>, message: &str) {
    let status = client
        .create_order(request(1, vec![item(1, 1, 1)]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(status.message(), message);
}

#[test]
fn database_outage_is_unavailable_and_recovers_without_restart() {
    let (_db, proxy, settings) = database_behind_a_proxy();
    runtime().block_on(async {
        let orders = Orders::start_serving(settings).await;
        let mut client = orders.client().await;
        client
            .create_order(request(1, vec![item(1, 1, 1)]))
            .await
            .unwrap();
        let healthz = ops_get(&orders, "/healthz").await;
        assert_eq!(healthz, Some((200, json!({"status": "ok"}))));
        wait_until_async(DEADLINE, "/readyz 200", || async {
            (readyz(&orders).await == Some(200)).then_some(())
        })
        .await;
        assert_eq!(
            ops_get(&orders, "/readyz").await,
            Some((
                200,
                json!({"status": "ready", "checks": {"database": "ok"}})
            ))
        );

        proxy.cut();
        for _ in 0..10 {
            assert_create_unavailable(&mut client, "database unavailable, retry later").await;
        }
        let health_addr = orders.health_addr;
        let failed = tokio::task::spawn_blocking(move || {
            testkit::metric(health_addr, "orders_calls_failed_total")
        })
        .await
        .unwrap();
        assert_eq!(failed, Some(10), "each UNAVAILABLE counts as a failed call");
        wait_until_async(DEADLINE, "health NOT_SERVING and /readyz 503", || async {
            (orders.health().await == Some(ServingStatus::NotServing)
                && readyz(&orders).await == Some(503))
            .then_some(())
        })
        .await;
        let (status, body) = ops_get(&orders, "/readyz").await.unwrap();
        let reason = body["checks"]["database"].as_str().unwrap_or_default();
        assert!(!reason.is_empty() && reason != "ok", "{body}");
        assert_eq!(
            (status, &body),
            (
                503,
                &json!({"error": format!("not ready: database: {reason}"), "code": "NOT_READY",
                        "status": "not ready", "checks": {"database": reason}})
            )
        );
        let healthz = ops_get(&orders, "/healthz").await;
        assert_eq!(
            healthz,
            Some((200, json!({"status": "ok"}))),
            "alive while the database is down"
        );

        proxy.restore();
        wait_until_async(DEADLINE, "CreateOrder to succeed again", || {
            let mut client = client.clone();
            async move {
                client
                    .create_order(request(1, vec![item(1, 1, 1)]))
                    .await
                    .ok()
            }
        })
        .await;
        orders.wait_serving().await;
        wait_until_async(DEADLINE, "/readyz 200 again", || async {
            (readyz(&orders).await == Some(200)).then_some(())
        })
        .await;
        orders.stop().await;
    });
}

#[test]
fn starting_while_the_database_is_down_answers_unavailable_until_it_is_up() {
    let (_db, proxy, settings) = database_behind_a_proxy();
    proxy.cut();
    runtime().block_on(async {
        // The port answers at once, even though the database cannot be prepared yet.
        let orders = Orders::start(settings).await;
        let mut client = orders.client().await;
        assert_create_unavailable(&mut client, "database not ready yet, retry later").await;
        assert_eq!(orders.health().await, Some(ServingStatus::NotServing));

        proxy.restore();
        orders.wait_serving().await;
        client
            .create_order(request(1, vec![item(1, 1, 1)]))
            .await
            .unwrap();
        orders.stop().await;
    });
}
