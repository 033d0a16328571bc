//! The handlers behind the routes ([`crate::routes`]): what each request does once
//! routed. They never reject: each answers with its result or an [`ApiError`].
//!
//! - this module: [`Gateway`], what the handlers share, and its deadline-bound call to
//!   orders;
//! - [`orders`]: `POST /orders` and `GET /orders/{id}`, each counted against
//!   `GATEWAY_MAX_IN_FLIGHT` ([`crate::overload`]), and the body limit;
//! - [`readiness`]: `/readyz`, from orders' gRPC health.

pub mod orders;
pub mod readiness;

use std::time::Duration;

use proto::v1::orders_service_client::OrdersServiceClient;
use tonic::transport::Channel;

use crate::{errors::ApiError, overload::InFlight};

/// The channel to orders, read anew for each call: with TLS to orders it is rebuilt
/// when the TLS files change or on SIGHUP (calls in progress finish on the channel
/// they began on); in plaintext it never changes.
pub type OrdersChannel = grpc_tls::Reloading<Channel>;

/// What the handlers share: the lazily connected channel to orders, the deadline and
/// the bound on requests in flight.
#[derive(Clone)]
pub struct Gateway {
    channel: OrdersChannel,
    timeout: Duration,
    in_flight: InFlight,
}

impl Gateway {
    pub fn new(channel: OrdersChannel, timeout: Duration, in_flight: InFlight) -> Self {
        Self {
            channel,
            timeout,
            in_flight,
        }
    }

    /// One call to orders with the configured deadline: sent as `grpc-timeout` so
    /// orders can give up too, and enforced here so a silent orders answers 504. The
    /// request may carry metadata; the whole answer is returned.
    async fn call_with<Req, Resp, F, Fut>(
        &self,
        mut request: tonic::Request<Req>,
        call: F,
    ) -> Result<tonic::Response<Resp>, ApiError>
    where
        F: FnOnce(OrdersServiceClient<Channel>, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        request.set_timeout(self.timeout);
        let client = OrdersServiceClient::new(self.channel.current());
        let status = match tokio::time::timeout(self.timeout, call(client, request)).await {
            Ok(Ok(response)) => return Ok(response),
            Ok(Err(status)) => status,
            Err(_elapsed) => tonic::Status::deadline_exceeded("no answer in time"),
        };
        Err(ApiError::from_grpc(&status, self.timeout))
    }
}
