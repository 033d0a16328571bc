//! A PostgreSQL outage under a running orders: UNAVAILABLE (never INTERNAL) for as
//! long as it lasts, health NOT_SERVING and `/readyz` 503, then recovery on its own.
#![allow(clippy::unwrap_used)]

mod common;

use common::{DEADLINE, Orders, config, item, request};
use testkit::{TcpProxy, TestDatabase, runtime, wait_until_async};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

async fn readyz(orders: &Orders) -> Option<u16> {
    let url = format!("http://{}/readyz", orders.health_addr);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    Some(http.get(url).send().await.ok()?.status().as_u16())
}

#[test]
fn database_outage_is_unavailable_and_recovers_without_restart() {
    let db = TestDatabase::new("orders");
    let proxy = TcpProxy::start("127.0.0.1:5432").unwrap();
    runtime().block_on(async {
        let orders = Orders::start_serving(config(db.dsn_via(&proxy.addr()))).await;
        let mut client = orders.client().await;
        client
            .create_order(request(1, vec![item(1, 1, 1)]))
            .await
            .unwrap();

        proxy.cut();
        for _ in 0..10 {
            let status = client
                .create_order(request(1, vec![item(1, 1, 1)]))
                .await
                .unwrap_err();
            assert_eq!(status.code(), Code::Unavailable, "{status:?}");
            assert_eq!(status.message(), "database unavailable, retry later");
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
    let db = TestDatabase::new("orders");
    let proxy = TcpProxy::start("127.0.0.1:5432").unwrap();
    proxy.cut();
    runtime().block_on(async {
        // The port answers at once, even though the database cannot be prepared yet.
        let orders = Orders::start(config(db.dsn_via(&proxy.addr()))).await;
        let mut client = orders.client().await;
        let status = client
            .create_order(request(1, vec![item(1, 1, 1)]))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert_eq!(status.message(), "database not ready yet, retry later");
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
