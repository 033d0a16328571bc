//! `GET /readyz`: ready while at least one orders replica's
//! `grpc.health.v1.Health/Check` says SERVING, for orders' service name or, where
//! orders does not know that name (the Go orders), for the server as a whole
//! ([`crate::balance::check_health`]). Every replica is asked now, at once, not the
//! rotation's last view: `/readyz` says what is true at the probe. With one replica
//! the answer is the Go gateway's; with several, `checks` also says how many serve
//! and each one's state.
use serde_json::json;
use warp::{Reply, http::StatusCode, reply::Response};

use super::Gateway;
use crate::balance;

pub use crate::balance::{ORDERS_SERVICE, SERVER_WIDE};
/// `error` and `code` of `/readyz`'s 503, as the Go gateway answers it.
pub const NOT_READY_ERROR: &str = "orders service is not ready";
pub const NOT_READY_CODE: &str = "ORDERS_UNAVAILABLE";

impl Gateway {
    /// Ready when at least one replica's health says SERVING.
    pub(crate) async fn readiness(self) -> Response {
        let replicas = self.pool.replicas();
        let mut checks = tokio::task::JoinSet::new();
        for (index, replica) in replicas.iter().enumerate() {
            let channel = replica.channel.clone();
            let timeout = self.timeout;
            checks.spawn(async move { (index, balance::check_health(&channel, timeout).await) });
        }
        let mut results: Vec<Result<(), String>> =
            vec![Err("not checked".to_owned()); replicas.len()];
        while let Some(joined) = checks.join_next().await {
            match joined {
                Ok((index, result)) => {
                    if let Some(slot) = results.get_mut(index) {
                        *slot = result;
                    }
                }
                Err(err) => tracing::error!(error = %err, "orders health check task failed"),
            }
        }
        let serving = results.iter().filter(|result| result.is_ok()).count();
        let (ready, checks) = match results.as_slice() {
            // The Go gateway's `checks`.
            [only] => (
                only.is_ok(),
                json!({"orders": only.as_ref().map_or_else(Clone::clone, |()| "ok".to_owned())}),
            ),
            [] => (
                false,
                json!({"orders": "ORDERS_GRPC_ADDR resolves to no address"}),
            ),
            many => {
                let each: serde_json::Map<String, serde_json::Value> = replicas
                    .iter()
                    .zip(many)
                    .map(|(replica, result)| {
                        let state = result
                            .as_ref()
                            .map_or_else(Clone::clone, |()| "ok".to_owned());
                        (replica.label.clone(), state.into())
                    })
                    .collect();
                let summary = if serving > 0 {
                    "ok"
                } else {
                    "no replica serving"
                };
                (
                    serving > 0,
                    json!({"orders": summary,
                           "orders_serving": format!("{serving} of {}", many.len()),
                           "orders_replicas": each}),
                )
            }
        };
        // The Go gateway's bodies, plus `checks` (and `status` in the 503) as detail.
        let (status, body) = if ready {
            (StatusCode::OK, json!({"status": "ready", "checks": checks}))
        } else {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": NOT_READY_ERROR, "code": NOT_READY_CODE,
                       "status": "not ready", "checks": checks}),
            )
        };
        warp::reply::with_status(warp::reply::json(&body), status).into_response()
    }
}
