//! The HTTP routes and their handlers.
//!
//! | route              | handler                                                     |
//! |--------------------|-------------------------------------------------------------|
//! | `POST /orders`     | body (at most [`MAX_BODY`] bytes) -> `CreateOrder`          |
//! | `GET /orders/{id}` | `GetOrder`                                                  |
//! | `GET /orders/`     | an empty id: 400, as the Go gateway answers                 |
//! | `GET /healthz`     | 200 `{"status": "ok"}` while the process serves             |
//! | `GET /readyz`      | orders' `grpc.health.v1.Health/Check`: 200 only if SERVING  |
//! | `GET /metrics`     | Prometheus text: requests by status class, order latency,   |
//! |                    | the Go families ([`crate::request_metrics`])                |
//! | `GET /openapi.yaml`| this API's OpenAPI 3.0 description ([`OPENAPI`])            |
//! | `GET /swagger/...` | Swagger UI on the same description ([`swagger`])            |
//!
//! `POST /orders` and `GET /orders/{id}` count against `GATEWAY_MAX_IN_FLIGHT`
//! ([`crate::overload`]): past it they are 503 at once. The others do not.
//!
//! Handlers never reject: they answer with the result or an [`ApiError`]. A known
//! path with another method is 405 with the `Allow` header ([`allowed_methods`]);
//! an unknown path is rejected, and [`handle_rejection`] turns that into a 404 with
//! the same JSON error body.

use std::{convert::Infallible, pin::pin, sync::Arc, time::Duration};

use ops_http::Metrics;
use proto::v1::{CreateOrderRequest, GetOrderRequest, orders_service_client::OrdersServiceClient};
use serde_json::json;
use tokio_stream::StreamExt;
use tonic::{Code, transport::Channel};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use warp::{
    Buf, Filter, Rejection, Reply, Stream,
    http::{
        StatusCode,
        header::{self, HeaderValue},
    },
    reject::{InvalidHeader, MethodNotAllowed},
    reply::Response,
};

use crate::{
    errors::{self, ApiError},
    overload::InFlight,
    request_metrics::RequestMetrics,
    rest::{self, CreateOrderAnswer, GetOrderAnswer, OrderBody},
    swagger,
};

/// Largest accepted request body: 1 MiB.
pub const MAX_BODY: u64 = 1024 * 1024;
/// How much of an oversized body is read (and discarded) before answering 413, so
/// the client, still sending, sees the answer instead of a reset connection.
const DRAIN_LIMIT: u64 = 16 * MAX_BODY;
/// The service name orders reports its health under.
pub const ORDERS_SERVICE: &str = "orders.v1.OrdersService";
/// `error` and `code` of `/readyz`'s 503, as the Go gateway answers it.
pub const NOT_READY_ERROR: &str = "orders service is not ready";
pub const NOT_READY_CODE: &str = "ORDERS_UNAVAILABLE";
/// The OpenAPI description of these routes, served at `GET /openapi.yaml`; the
/// schemathesis test checks real answers against it.
pub const OPENAPI: &str = include_str!("../openapi.yaml");

/// What the handlers share: the lazily connected channel to orders, the deadline and
/// the bound on requests in flight.
#[derive(Clone)]
pub struct Gateway {
    channel: Channel,
    timeout: Duration,
    in_flight: InFlight,
}

impl Gateway {
    pub fn new(channel: Channel, timeout: Duration, in_flight: InFlight) -> Self {
        Self {
            channel,
            timeout,
            in_flight,
        }
    }

    /// One call to orders with the configured deadline: sent as `grpc-timeout` so
    /// orders can give up too, and enforced here so a silent orders answers 504.
    async fn call<Req, Resp, F, Fut>(&self, message: Req, call: F) -> Result<Resp, ApiError>
    where
        F: FnOnce(OrdersServiceClient<Channel>, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.timeout);
        let client = OrdersServiceClient::new(self.channel.clone());
        let status = match tokio::time::timeout(self.timeout, call(client, request)).await {
            Ok(Ok(response)) => return Ok(response.into_inner()),
            Ok(Err(status)) => status,
            Err(_elapsed) => tonic::Status::deadline_exceeded("no answer in time"),
        };
        Err(ApiError::from_grpc(&status, self.timeout))
    }

    async fn create_order<S, B>(self, content_length: Option<u64>, body: S) -> Response
    where
        S: Stream<Item = Result<B, warp::Error>>,
        B: Buf,
    {
        // Before the body is read: a shed request costs next to nothing.
        let _admitted = match self.in_flight.try_admit() {
            Ok(admitted) => admitted,
            Err(shed) => return shed.into_response(),
        };
        let result = async {
            let body = read_body(content_length, body).await?;
            let request = CreateOrderRequest::from(rest::parse_create_order(&body)?);
            let response = self
                .call(request, |mut client, request| async move {
                    client.create_order(request).await
                })
                .await?;
            Ok(CreateOrderAnswer {
                order_id: response.order_id,
            })
        };
        answer(result.await)
    }

    async fn get_order(self, id: String) -> Response {
        let _admitted = match self.in_flight.try_admit() {
            Ok(admitted) => admitted,
            Err(shed) => return shed.into_response(),
        };
        let result = async {
            let order_id = rest::parse_order_id(&id)?;
            let response = self
                .call(
                    GetOrderRequest { order_id },
                    |mut client, request| async move { client.get_order(request).await },
                )
                .await?;
            let order = response.order.ok_or_else(|| {
                tracing::error!(order_id, "orders answered GetOrder without an order");
                ApiError::new(Code::Internal, "internal error")
            })?;
            Ok(GetOrderAnswer {
                order: OrderBody::from(order),
            })
        };
        answer(result.await)
    }

    /// Ready only when orders' health service says SERVING for its service name.
    async fn readiness(self) -> Response {
        let mut client = HealthClient::new(self.channel.clone());
        let mut request = tonic::Request::new(HealthCheckRequest {
            service: ORDERS_SERVICE.to_owned(),
        });
        request.set_timeout(self.timeout);
        let problem = match tokio::time::timeout(self.timeout, client.check(request)).await {
            Ok(Ok(response)) => match response.into_inner().status() {
                ServingStatus::Serving => None,
                other => Some(format!("orders reports {}", other.as_str_name())),
            },
            Ok(Err(status)) if errors::effective_code(&status) != Code::DeadlineExceeded => {
                Some(format!(
                    "orders health check failed: {}: {}",
                    errors::code_name(status.code()),
                    status.message()
                ))
            }
            Ok(Err(_)) | Err(_) => Some(format!(
                "orders health check got no answer within {:?}",
                self.timeout
            )),
        };
        // The Go gateway's bodies, plus `checks` (and `status` in the 503) as detail.
        let (status, body) = match problem {
            None => (
                StatusCode::OK,
                json!({"status": "ready", "checks": {"orders": "ok"}}),
            ),
            Some(reason) => (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": NOT_READY_ERROR, "code": NOT_READY_CODE,
                       "status": "not ready", "checks": {"orders": reason}}),
            ),
        };
        warp::reply::with_status(warp::reply::json(&body), status).into_response()
    }
}

fn answer<T: serde::Serialize>(result: Result<T, ApiError>) -> Response {
    match result {
        Ok(body) => warp::reply::json(&body).into_response(),
        Err(err) => err.into_response(),
    }
}

/// Reads at most [`MAX_BODY`] bytes. A larger body (by its `content-length`, or as
/// it streams in when chunked) is 413.
async fn read_body<S, B>(content_length: Option<u64>, body: S) -> Result<Vec<u8>, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let too_large = || {
        ApiError::with_status(
            StatusCode::PAYLOAD_TOO_LARGE,
            Code::ResourceExhausted,
            format!("request body is larger than {MAX_BODY} bytes (1 MiB)"),
        )
    };
    let declared = content_length.unwrap_or(0);
    if declared > DRAIN_LIMIT {
        return Err(too_large());
    }
    let mut over = declared > MAX_BODY;
    let capacity = usize::try_from(declared.min(MAX_BODY)).unwrap_or(0);
    let mut data = Vec::with_capacity(capacity);
    let mut read: u64 = 0;
    let mut body = pin!(body);
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|err| {
            ApiError::invalid_argument(format!("cannot read the request body: {err}"))
        })?;
        read = read.saturating_add(chunk.remaining() as u64);
        if read > MAX_BODY {
            over = true;
        }
        if read > DRAIN_LIMIT {
            break;
        }
        while !over && chunk.has_remaining() {
            let part = chunk.chunk();
            data.extend_from_slice(part);
            let len = part.len();
            chunk.advance(len);
        }
    }
    if over { Err(too_large()) } else { Ok(data) }
}

/// The methods a known path answers (the `Allow` header of its 405), or `None` for
/// a path no route serves.
pub fn allowed_methods(path: &str) -> Option<&'static str> {
    if path == "/orders/" {
        // POST creates an order (the trailing slash is ignored); GET is the order
        // route with an empty id (400).
        return Some("GET, POST");
    }
    // warp's routes also match with one trailing slash (`/healthz/`).
    let path = path.strip_suffix('/').unwrap_or(path);
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["orders"] => Some("POST"),
        ["orders", _] => Some("GET"),
        ["healthz"] | ["readyz"] | ["metrics"] | ["openapi.yaml"] => Some("GET"),
        swagger_path if swagger::serves(swagger_path) => Some("GET"),
        _ => None,
    }
}

/// `/orders/`: the order route with an empty id, which `path!("orders" / String)`
/// does not match; `GET` on it is a bad id (400), as the Go gateway answers, not 405.
fn empty_order_id() -> impl Filter<Extract = (String,), Error = Rejection> + Clone {
    warp::path::full().and_then(|path: warp::path::FullPath| async move {
        if path.as_str() == "/orders/" {
            Ok(String::new())
        } else {
            Err(warp::reject::not_found())
        }
    })
}

/// 405 for a known path asked with a method it does not answer, naming the ones it
/// does in `Allow` (RFC 9110 requires it). Other requests pass on as not found.
async fn method_not_allowed(
    path: warp::path::FullPath,
    method: warp::http::Method,
) -> Result<Response, Rejection> {
    match allowed_methods(path.as_str()) {
        Some(allow) if !allow.split(", ").any(|allowed| allowed == method.as_str()) => {
            let mut response = ApiError::with_status(
                StatusCode::METHOD_NOT_ALLOWED,
                Code::Unimplemented,
                "method not allowed on this path",
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
            Ok(response)
        }
        // The method is allowed: an earlier route refused the request for another
        // reason (a bad header), which warp reports in preference to "not found".
        _ => Err(warp::reject::not_found()),
    }
}

/// Routing failures as JSON errors: 404 for an unknown path, 405 for a known path
/// with another method. Anything else is a bug in the routes: 500, logged.
pub async fn handle_rejection(rejection: Rejection) -> Result<Response, Infallible> {
    let error = if rejection.is_not_found() {
        ApiError::with_status(StatusCode::NOT_FOUND, Code::NotFound, "no such endpoint")
    } else if rejection.find::<MethodNotAllowed>().is_some() {
        ApiError::with_status(
            StatusCode::METHOD_NOT_ALLOWED,
            Code::Unimplemented,
            "method not allowed on this path",
        )
    } else if let Some(header) = rejection.find::<InvalidHeader>() {
        ApiError::invalid_argument(format!("invalid {} header", header.name()))
    } else {
        tracing::error!(?rejection, "unhandled rejection");
        ApiError::new(Code::Internal, "internal error")
    };
    Ok(error.into_response())
}

/// Every route, with rejections recovered and responses counted.
pub fn routes(
    gateway: Gateway,
    metrics: Arc<Metrics>,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone + Send + Sync + 'static {
    let with_gateway = warp::any().map(move || gateway.clone());

    let create = warp::path!("orders")
        .and(warp::post())
        .and(warp::header::optional::<u64>("content-length"))
        .and(warp::body::stream())
        .and(with_gateway.clone())
        .then(|length, body, gateway: Gateway| gateway.create_order(length, body));
    let get = warp::path!("orders" / String)
        .or(empty_order_id())
        .unify()
        .and(warp::get())
        .and(with_gateway.clone())
        .then(|id, gateway: Gateway| gateway.get_order(id));
    let healthz = warp::path!("healthz")
        .and(warp::get())
        .map(|| warp::reply::json(&json!({"status": "ok"})).into_response());
    let readyz = warp::path!("readyz")
        .and(warp::get())
        .and(with_gateway)
        .then(|gateway: Gateway| gateway.readiness());
    let openapi = warp::path!("openapi.yaml").and(warp::get()).map(|| {
        warp::reply::with_header(OPENAPI, "content-type", "application/yaml").into_response()
    });
    let other_methods = warp::path::full()
        .and(warp::method())
        .and_then(method_not_allowed);
    let render = metrics.clone();
    let metrics_route = warp::path!("metrics").and(warp::get()).map(move || {
        warp::reply::with_header(render.render(), "content-type", "text/plain; version=0.0.4")
            .into_response()
    });

    let requests = metrics.counter("gateway_http_requests_total", "HTTP requests answered.");
    let ok = metrics.counter(
        "gateway_http_responses_2xx_total",
        "HTTP responses with a 2xx status.",
    );
    let client_errors = metrics.counter(
        "gateway_http_responses_4xx_total",
        "HTTP responses with a 4xx status (client mistakes).",
    );
    let server_errors = metrics.counter(
        "gateway_http_responses_5xx_total",
        "HTTP responses with a 5xx status (orders unavailable, slow or failing).",
    );
    let order_latency = metrics.histogram(
        "gateway_order_request_duration_seconds",
        "Time to answer requests under /orders (POST /orders, GET /orders/{id}), the call to orders included.",
    );
    let go_metrics = RequestMetrics::register(&metrics);
    let count = warp::log::custom(move |info| {
        go_metrics.observe(info.method(), info.path(), info.status(), info.elapsed());
        requests.inc();
        if info.path().starts_with("/orders") {
            order_latency.observe(info.elapsed());
        }
        match info.status().as_u16() / 100 {
            2 => ok.inc(),
            4 => client_errors.inc(),
            5 => server_errors.inc(),
            _ => {}
        }
        tracing::debug!(
            method = %info.method(),
            path = info.path(),
            status = info.status().as_u16(),
            elapsed = ?info.elapsed(),
            "request"
        );
    });

    create
        .or(get)
        .unify()
        .or(healthz)
        .unify()
        .or(readyz)
        .unify()
        .or(metrics_route)
        .unify()
        .or(openapi)
        .unify()
        .or(swagger::routes())
        .unify()
        .or(other_methods)
        .unify()
        .recover(handle_rejection)
        .unify()
        .with(count)
}
