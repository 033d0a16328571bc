//! A PostgreSQL outage under a running orders and gateway: UNAVAILABLE over gRPC,
//! 503 over HTTP, both `/readyz` go 503, and everything recovers on its own when the
//! database is back.

use crate::common::{Gateway, gateway_config};
use orders::testing::{DEADLINE, Orders, config as orders_config, get_status, row_counts};
use proto::v1::{CreateOrderRequest, Money, OrderItem};
use testkit::{TcpProxy, TestDatabase, runtime, wait_until_async};
use tonic::Code;

const ORDER: &str = r#"{"user_id": 2, "items": [{"product_id": 1, "quantity": 1, "price": 10}]}"#;

fn grpc_order() -> CreateOrderRequest {
    CreateOrderRequest {
        user_id: 2,
        items: vec![OrderItem {
            product_id: 1,
            quantity: 1,
            price: Some(Money { money: 10 }),
        }],
    }
}

#[test]
fn database_outage_is_unavailable_then_recovers_without_restart() {
    let db = TestDatabase::new("gateway");
    let proxy = TcpProxy::start("127.0.0.1:5432").unwrap();
    runtime().block_on(async {
        // The service's defaults (ORDERS_DB_TIMEOUT, GATEWAY_ORDERS_TIMEOUT), except
        // that orders reaches PostgreSQL through the proxy.
        let orders = Orders::start(orders_config(db.dsn_via(&proxy.addr()))).await;
        orders.wait_ready().await;
        let gateway = Gateway::start(gateway_config(
            &orders.grpc_addr.to_string(),
            gateway::Config::default().gateway_orders_timeout.get(),
        ))
        .await;
        let mut client = orders.client().await;
        client.create_order(grpc_order()).await.unwrap();
        assert_eq!(gateway.post("/orders", ORDER).await.status, 200);
        assert_eq!(gateway.get("/readyz").await.status, 200);

        proxy.cut();

        let status = client.create_order(grpc_order()).await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert_eq!(status.message(), "database unavailable, retry later");
        let status = client
            .get_order(proto::v1::GetOrderRequest { order_id: 1 })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");

        let message = "orders service unavailable, retry later";
        gateway
            .assert_order_routes_error(ORDER, 503, "Unavailable", message)
            .await;
        // However long the outage lasts, orders answers before the gateway's
        // deadline: 503, not 504.
        for _ in 0..8 {
            gateway
                .post("/orders", ORDER)
                .await
                .assert_error(503, "Unavailable", message);
        }

        let orders_readyz = orders.ops_url("/readyz");
        wait_until_async(DEADLINE, "orders /readyz 503 during the outage", || {
            let url = orders_readyz.clone();
            async move { (get_status(&url).await == Some(503)).then_some(()) }
        })
        .await;
        wait_until_async(
            DEADLINE,
            "gateway /readyz 503 during the outage",
            || async { (gateway.get("/readyz").await.status == 503).then_some(()) },
        )
        .await;

        proxy.restore();

        let mut client = orders.client().await;
        wait_until_async(DEADLINE, "CreateOrder to succeed after the outage", || {
            let mut client = client.clone();
            async move { client.create_order(grpc_order()).await.ok() }
        })
        .await;
        let order_id = gateway.create_order(ORDER).await;
        gateway.get_order(order_id).await;
        wait_until_async(DEADLINE, "gateway /readyz 200 after the outage", || async {
            (gateway.get("/readyz").await.status == 200).then_some(())
        })
        .await;
        assert_eq!(get_status(&orders.ops_url("/readyz")).await, Some(200));
        let _ = client
            .get_order(proto::v1::GetOrderRequest { order_id })
            .await
            .unwrap();
        // Every order that was accepted is stored with its outbox row; the refused
        // ones left nothing.
        let (orders_rows, _, events) = row_counts(&db.dsn()).await;
        assert_eq!(orders_rows, events);
        assert!(orders_rows >= 4, "{orders_rows}");
    });
}
