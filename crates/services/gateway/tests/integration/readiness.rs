//! `/readyz` in front of an orders whose gRPC health (`grpc.health.v1`) reports only
//! the server-wide name `""`, as the Go orders does: ready on its SERVING, not ready
//! on NOT_SERVING or when it is down. A status under `orders.v1.OrdersService`, as our
//! orders reports, is the one that counts when there is one.

use std::{net::SocketAddr, time::Duration};

use crate::common::{Answer, Gateway, gateway_config};
use serde_json::json;
use testkit::runtime;
use tokio::{sync::oneshot, task::JoinHandle};
use tokio_stream::wrappers::TcpListenerStream;
use tonic_health::{ServingStatus, server::HealthReporter};

const ORDERS_SERVICE: &str = "orders.v1.OrdersService";

/// A real gRPC server serving only `grpc.health.v1.Health`, with tonic-health's
/// reporter: `""` SERVING from the start, nothing under any other name.
struct HealthOnlyServer {
    addr: SocketAddr,
    reporter: HealthReporter,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl HealthOnlyServer {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (reporter, health) = tonic_health::server::health_reporter();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(health)
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                    let _ = stopped.await;
                }),
        );
        Self {
            addr,
            reporter,
            stop,
            task,
        }
    }

    /// Stops serving and waits until the port is closed.
    async fn stop(self) {
        self.stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the health server stops")
            .unwrap()
            .unwrap();
    }
}

#[track_caller]
fn assert_ready(answer: &Answer) {
    assert_eq!(
        (answer.status, &answer.body),
        (200, &json!({"status": "ready", "checks": {"orders": "ok"}}))
    );
}

#[track_caller]
fn assert_not_ready(answer: &Answer, reason: &str) {
    assert_eq!(
        (answer.status, &answer.body),
        (
            503,
            &json!({"error": "orders service is not ready", "code": "ORDERS_UNAVAILABLE",
                    "status": "not ready", "checks": {"orders": reason}})
        )
    );
}

#[test]
fn ready_in_front_of_an_orders_reporting_only_the_server_wide_health() {
    runtime().block_on(async {
        let mut orders = HealthOnlyServer::start().await;
        let gateway = Gateway::start(gateway_config(
            &orders.addr.to_string(),
            Duration::from_secs(5),
        ))
        .await;

        // Nothing under the service name (NOT_FOUND): the server-wide SERVING.
        assert_ready(&gateway.get("/readyz").await);

        orders
            .reporter
            .set_service_status("", ServingStatus::NotServing)
            .await;
        assert_not_ready(&gateway.get("/readyz").await, "orders reports NOT_SERVING");
        orders
            .reporter
            .set_service_status("", ServingStatus::Serving)
            .await;
        assert_ready(&gateway.get("/readyz").await);

        // A status under the service name wins over the server-wide one.
        orders
            .reporter
            .set_service_status(ORDERS_SERVICE, ServingStatus::NotServing)
            .await;
        assert_not_ready(&gateway.get("/readyz").await, "orders reports NOT_SERVING");
        orders
            .reporter
            .set_service_status(ORDERS_SERVICE, ServingStatus::Serving)
            .await;
        assert_ready(&gateway.get("/readyz").await);
        orders.reporter.clear_service_status(ORDERS_SERVICE).await;
        assert_ready(&gateway.get("/readyz").await);

        // Down: nothing answers at all.
        orders.stop().await;
        let down = gateway.get("/readyz").await;
        let reason = down.body["checks"]["orders"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            reason.starts_with("orders health check failed: Unavailable"),
            "{down:?}"
        );
        assert_not_ready(&down, &reason);
    });
}
