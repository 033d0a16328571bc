//! `GET /readyz`: ready only while orders' `grpc.health.v1.Health/Check` says
//! SERVING, for orders' service name or, where orders does not know that name (the
//! Go orders), for the server as a whole.

use serde_json::json;
use tonic::{Code, transport::Channel};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use warp::{Reply, http::StatusCode, reply::Response};

use super::Gateway;
use crate::errors;

/// The service name our orders reports its health under.
pub const ORDERS_SERVICE: &str = "orders.v1.OrdersService";
/// The gRPC health name of the server as a whole, the only one the Go orders reports.
pub const SERVER_WIDE: &str = "";
/// `error` and `code` of `/readyz`'s 503, as the Go gateway answers it.
pub const NOT_READY_ERROR: &str = "orders service is not ready";
pub const NOT_READY_CODE: &str = "ORDERS_UNAVAILABLE";

impl Gateway {
    /// Ready only when orders' gRPC health says SERVING ([`Gateway::orders_health`]).
    pub(crate) async fn readiness(self) -> Response {
        // The Go gateway's bodies, plus `checks` (and `status` in the 503) as detail.
        let (status, body) = match self.orders_health().await {
            Ok(()) => (
                StatusCode::OK,
                json!({"status": "ready", "checks": {"orders": "ok"}}),
            ),
            Err(reason) => (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": NOT_READY_ERROR, "code": NOT_READY_CODE,
                       "status": "not ready", "checks": {"orders": reason}}),
            ),
        };
        warp::reply::with_status(warp::reply::json(&body), status).into_response()
    }

    /// Whether orders' `grpc.health.v1.Health/Check` says SERVING, within the
    /// deadline; the error says why not.
    async fn orders_health(&self) -> Result<(), String> {
        let answer = tokio::time::timeout(self.timeout, self.orders_serving_status()).await;
        match answer {
            Ok(Ok(ServingStatus::Serving)) => Ok(()),
            Ok(Ok(other)) => Err(format!("orders reports {}", other.as_str_name())),
            Ok(Err(status)) if errors::effective_code(&status) != Code::DeadlineExceeded => {
                Err(format!(
                    "orders health check failed: {}: {}",
                    errors::code_name(status.code()),
                    status.message()
                ))
            }
            Ok(Err(_)) | Err(_) => Err(format!(
                "orders health check got no answer within {:?}",
                self.timeout
            )),
        }
    }

    /// Orders' health status for [`ORDERS_SERVICE`] or, only if orders has no status
    /// under that name (NOT_FOUND), for the server as a whole ([`SERVER_WIDE`]): the
    /// Go orders registers only the server-wide name, ours both. A NOT_SERVING, an
    /// error or no answer is not asked again under the other name.
    async fn orders_serving_status(&self) -> Result<ServingStatus, tonic::Status> {
        // The channel the order calls use, so readiness tests their path (TLS too).
        let mut client = HealthClient::new(self.channel.current());
        // `/readyz` is probed often, so this stays cheap: one call in front of our
        // orders; in front of the Go one a second, after a NOT_FOUND that orders
        // answers at once, on the same connection and within the same deadline.
        match self.health_check(&mut client, ORDERS_SERVICE).await {
            Err(status) if status.code() == Code::NotFound => {
                self.health_check(&mut client, SERVER_WIDE).await
            }
            other => other,
        }
    }

    /// One `Health/Check` for `service`, with the deadline sent as `grpc-timeout`.
    async fn health_check(
        &self,
        client: &mut HealthClient<Channel>,
        service: &str,
    ) -> Result<ServingStatus, tonic::Status> {
        let mut request = tonic::Request::new(HealthCheckRequest {
            service: service.to_owned(),
        });
        request.set_timeout(self.timeout);
        let response = client.check(request).await?;
        Ok(response.into_inner().status())
    }
}
