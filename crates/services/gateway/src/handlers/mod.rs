//! The handlers behind the routes ([`crate::routes`]): what each request does once
//! routed. They never reject: each answers with its result or an [`ApiError`].
//!
//! - this module: [`Gateway`], what the handlers share, and its deadline-bound call to
//!   orders, sent to a replica of [`crate::balance`] and, where safe, to another one
//!   after a failure;
//! - [`orders`]: `POST /orders` and `GET /orders/{id}`, each counted against
//!   `GATEWAY_MAX_IN_FLIGHT` ([`crate::overload`]), and the body limit;
//! - [`readiness`]: `/readyz`, from orders' gRPC health.

pub mod orders;
pub mod readiness;

use std::{sync::Arc, time::Duration};

use proto::v1::{orders_service_client::OrdersServiceClient, orders_service_server::SERVICE_NAME};
use telemetry::{TraceHeaders, spans};
use tokio::time::Instant;
use tonic::{metadata::MetadataMap, transport::Channel};
use tracing::Instrument;

use crate::{
    balance::{self, Pool, Repeat},
    errors::ApiError,
    overload::InFlight,
};

pub use crate::balance::OrdersChannel;

/// What the handlers share: the orders replicas ([`crate::balance`]), the deadline
/// and the bound on requests in flight.
#[derive(Clone)]
pub struct Gateway {
    pool: Arc<Pool>,
    timeout: Duration,
    in_flight: InFlight,
}

impl Gateway {
    pub fn new(pool: Arc<Pool>, timeout: Duration, in_flight: InFlight) -> Self {
        Self {
            pool,
            timeout,
            in_flight,
        }
    }

    /// One call to orders (`name`, for the retry metric) with the configured
    /// deadline: sent as `grpc-timeout` so orders can give up too, and enforced here
    /// so a silent orders answers 504. The deadline covers every attempt: after a
    /// failure the call goes to another replica only as [`balance::after_failure`]
    /// allows (`repeat`), each replica at most once. The request is `message` with
    /// `metadata`; the whole answer is returned.
    async fn call_with<Req, Resp, F, Fut>(
        &self,
        name: &'static str,
        repeat: Repeat,
        message: Req,
        metadata: MetadataMap,
        call: F,
    ) -> Result<tonic::Response<Resp>, ApiError>
    where
        Req: Clone,
        F: Fn(OrdersServiceClient<Channel>, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        let deadline = Instant::now() + self.timeout;
        let mut tried: Vec<String> = Vec::new();
        let mut last: Option<tonic::Status> = None;
        while let Some(replica) = self.pool.next_replica(&tried) {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            if !tried.is_empty() {
                self.pool.count_retry(name);
            }
            tried.push(replica.label.clone());
            let mut request = tonic::Request::from_parts(
                metadata.clone(),
                tonic::Extensions::default(),
                message.clone(),
            );
            request.set_timeout(remaining);
            // One client span per attempt, its context in the call's metadata.
            let attempt = spans::rpc_client(SERVICE_NAME, name, &replica.label);
            if let Some(trace) = TraceHeaders::of(&attempt) {
                trace.insert_into(request.metadata_mut());
            }
            let client = OrdersServiceClient::new(replica.channel.current());
            let answer = tokio::time::timeout(remaining, call(client, request))
                .instrument(attempt.clone())
                .await;
            let status = match answer {
                Ok(Ok(response)) => {
                    spans::record_grpc_status(&attempt, tonic::Code::Ok, false);
                    return Ok(response);
                }
                Ok(Err(status)) => status,
                Err(_elapsed) => tonic::Status::deadline_exceeded("no answer in time"),
            };
            spans::record_grpc_status(&attempt, status.code(), false);
            let verdict = balance::after_failure(&status, repeat);
            if verdict.replica_down {
                self.pool.mark_down(&replica, status.message());
            }
            let status = balance::answer_of(status, verdict);
            if !verdict.try_another {
                return Err(ApiError::from_grpc(&status, self.timeout));
            }
            tracing::debug!(
                call = name,
                replica = %replica.label,
                message = status.message(),
                "orders call failed; trying another replica"
            );
            last = Some(status);
        }
        let status = last.unwrap_or_else(|| {
            if tried.is_empty() {
                tonic::Status::unavailable("no orders replica (ORDERS_GRPC_ADDR resolves to none)")
            } else {
                tonic::Status::deadline_exceeded("no answer in time")
            }
        });
        Err(ApiError::from_grpc(&status, self.timeout))
    }
}
