//! The HTTP routes and their handlers.
//!
//! | route              | handler                                                     |
//! |--------------------|-------------------------------------------------------------|
//! | `POST /orders`     | body (at most [`MAX_BODY`] bytes) -> `CreateOrder`, with    |
//! |                    | `Idempotency-Key` forwarded as metadata                     |
//! | `GET /orders/{id}` | `GetOrder`                                                  |
//! | `GET /orders/`     | an empty id: 400, as the Go gateway answers                 |
//! | `GET /healthz`     | 200 `{"status": "ok"}` while the process serves             |
//! | `GET /readyz`      | orders' `grpc.health.v1.Health/Check`: 200 only if SERVING  |
//! |                    | (for its service name, else, if unknown, the server's `""`) |
//! | `GET /metrics`     | Prometheus text: requests by status class, order latency,   |
//! |                    | the Go families ([`crate::request_metrics`], which count    |
//! |                    | what the Go gateway counts: `/orders...`, `/swagger/...`)   |
//! | `GET /openapi.yaml`| this API's OpenAPI 3.0 description ([`OPENAPI`])            |
//! | `GET /swagger/...` | Swagger UI on the same description ([`swagger`])            |
//!
//! `POST /orders` and `GET /orders/{id}` count against `GATEWAY_MAX_IN_FLIGHT`
//! ([`crate::overload`]): past it they are 503 at once. The others do not.
//!
//! Handlers never reject: they answer with the result or an [`ApiError`]. A known
//! path with another method is 405 with the `Allow` header ([`allowed_methods`]);
//! an unknown path is rejected, and [`handle_rejection`] turns that into a 404 with
//! the same JSON error body. The routes and `Allow` are built from one table of path
//! patterns and methods (`ROUTES`; Swagger UI's paths are [`swagger::serves`]').

use std::{convert::Infallible, pin::pin, sync::Arc, time::Duration};

use ops_http::Metrics;
use proto::v1::{CreateOrderRequest, GetOrderRequest, orders_service_client::OrdersServiceClient};
use serde_json::json;
use tokio_stream::StreamExt;
use tonic::{Code, metadata::MetadataValue, transport::Channel};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use warp::{
    Buf, Filter, Rejection, Reply, Stream,
    filters::BoxedFilter,
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
/// The service name our orders reports its health under.
pub const ORDERS_SERVICE: &str = "orders.v1.OrdersService";
/// The gRPC health name of the server as a whole, the only one the Go orders reports.
pub const SERVER_WIDE: &str = "";
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
        self.call_with(tonic::Request::new(message), call)
            .await
            .map(tonic::Response::into_inner)
    }

    /// [`Gateway::call`] with a request that may carry metadata; the whole answer.
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
        let client = OrdersServiceClient::new(self.channel.clone());
        let status = match tokio::time::timeout(self.timeout, call(client, request)).await {
            Ok(Ok(response)) => return Ok(response),
            Ok(Err(status)) => status,
            Err(_elapsed) => tonic::Status::deadline_exceeded("no answer in time"),
        };
        Err(ApiError::from_grpc(&status, self.timeout))
    }

    /// `POST /orders`. `idempotency_key` is every value of the request's
    /// `Idempotency-Key` header: at most one valid key, forwarded to orders as the
    /// `idempotency-key` metadata. A replayed answer carries `Idempotent-Replayed:
    /// true`; the key reused for another request is 422 (orders' FAILED_PRECONDITION),
    /// the key's first request still in progress 409 (ABORTED).
    async fn create_order<S, B>(
        self,
        content_length: Option<u64>,
        idempotency_key: Vec<HeaderValue>,
        body: S,
    ) -> Response
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
            let key =
                rest::parse_idempotency_key(idempotency_key.iter().map(HeaderValue::as_bytes))?;
            let body = read_body(content_length, body).await?;
            let mut request =
                tonic::Request::new(CreateOrderRequest::from(rest::parse_create_order(&body)?));
            if let Some(key) = &key {
                // Checked above: visible ASCII, which is valid metadata.
                let value = MetadataValue::try_from(key.as_str()).map_err(|err| {
                    ApiError::invalid_argument(format!(
                        "{} header: {err}",
                        rest::IDEMPOTENCY_KEY_HEADER
                    ))
                })?;
                request
                    .metadata_mut()
                    .insert(rest::IDEMPOTENCY_KEY_METADATA, value);
            }
            let response = self
                .call_with(request, |mut client, request| async move {
                    client.create_order(request).await
                })
                .await
                .map_err(|err| match err.code {
                    // The only FAILED_PRECONDITION of CreateOrder: the key was used
                    // for another request (the draft's 422).
                    Code::FailedPrecondition if key.is_some() => ApiError::with_status(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        err.code,
                        err.message,
                    ),
                    _ => err,
                })?;
            let replayed = response
                .metadata()
                .get(rest::IDEMPOTENT_REPLAYED_METADATA)
                .is_some_and(|value| value == "true");
            Ok::<_, ApiError>((
                CreateOrderAnswer {
                    order_id: response.into_inner().order_id,
                },
                replayed,
            ))
        };
        match result.await {
            Ok((created, replayed)) => {
                let mut response = warp::reply::json(&created).into_response();
                if replayed {
                    response.headers_mut().insert(
                        rest::IDEMPOTENT_REPLAYED_HEADER,
                        HeaderValue::from_static("true"),
                    );
                }
                response
            }
            Err(err) => err.into_response(),
        }
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

    /// Ready only when orders' gRPC health says SERVING ([`Gateway::orders_health`]).
    async fn readiness(self) -> Response {
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
        let mut client = HealthClient::new(self.channel.clone());
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

/// A segment of a route's path pattern.
#[derive(Debug, Clone, Copy)]
enum Segment {
    /// Exactly this text.
    Literal(&'static str),
    /// Any one segment, passed to the handler (`{id}`).
    Param,
}

use Segment::{Literal, Param};

/// The methods the routes use.
#[derive(Debug, Clone, Copy)]
enum Verb {
    Get,
    Post,
}

impl Verb {
    fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Post => "POST",
        }
    }

    /// Another method is rejected as warp's own method filters reject it, so the
    /// rejection still combines into a 405.
    fn filter(self) -> BoxedFilter<()> {
        match self {
            Verb::Get => warp::get().boxed(),
            Verb::Post => warp::post().boxed(),
        }
    }
}

/// One route of this module: a path pattern and the method it answers. The routes
/// are built from these ([`Route::filter`]) and so is the 405's `Allow`
/// ([`allowed_methods`]), so the two cannot disagree.
#[derive(Debug)]
struct Route {
    path: &'static [Segment],
    verb: Verb,
}

impl Route {
    const fn new(verb: Verb, path: &'static [Segment]) -> Self {
        Self { path, verb }
    }
}

const CREATE_ORDER: Route = Route::new(Verb::Post, &[Literal("orders")]);
const GET_ORDER: Route = Route::new(Verb::Get, &[Literal("orders"), Param]);
const HEALTHZ: Route = Route::new(Verb::Get, &[Literal("healthz")]);
const READYZ: Route = Route::new(Verb::Get, &[Literal("readyz")]);
const METRICS: Route = Route::new(Verb::Get, &[Literal("metrics")]);
const OPENAPI_YAML: Route = Route::new(Verb::Get, &[Literal("openapi.yaml")]);

/// Every route of this module; Swagger UI's are [`swagger`]'s.
const ROUTES: [&Route; 6] = [
    &CREATE_ORDER,
    &GET_ORDER,
    &HEALTHZ,
    &READYZ,
    &METRICS,
    &OPENAPI_YAML,
];

impl Route {
    /// The path (one trailing slash allowed, as `warp::path!` allows it), then the
    /// method; extracts the [`Segment::Param`] segments in order.
    fn filter(&'static self) -> BoxedFilter<(Vec<String>,)> {
        self.path_filter().and(self.verb.filter()).boxed()
    }

    fn path_filter(&'static self) -> BoxedFilter<(Vec<String>,)> {
        let mut filter = warp::any().map(Vec::new).boxed();
        for segment in self.path {
            filter = match *segment {
                Literal(text) => filter.and(warp::path(text)).boxed(),
                Param => filter
                    .and(warp::path::param::<String>())
                    .map(|mut params: Vec<String>, param| {
                        params.push(param);
                        params
                    })
                    .boxed(),
            };
        }
        filter.and(warp::path::end()).boxed()
    }

    /// Whether a path split at `/` has this route's shape. A [`Segment::Param`]
    /// matches any segment here, even an empty one (`DELETE /orders//` is 405 too).
    fn matches(&self, segments: &[&str]) -> bool {
        segments.len() == self.path.len()
            && self
                .path
                .iter()
                .zip(segments)
                .all(|(pattern, segment)| match pattern {
                    Literal(text) => text == segment,
                    Param => true,
                })
    }
}

/// A path split at `/`, without its leading slashes.
fn segments(path: &str) -> Vec<&str> {
    path.trim_start_matches('/').split('/').collect()
}

/// The methods a known path answers, sorted, or none for a path no route serves.
fn allowed(path: &str) -> Vec<&'static str> {
    // warp's routes also match with one trailing slash (`/healthz/`).
    let segments = segments(path.strip_suffix('/').unwrap_or(path));
    let mut methods: Vec<&'static str> = ROUTES
        .iter()
        .filter(|route| route.matches(&segments))
        .map(|route| route.verb.as_str())
        .collect();
    if path == EMPTY_ORDER_ID {
        methods.push(GET_ORDER.verb.as_str());
    }
    if swagger::serves(&segments) {
        methods.push(Verb::Get.as_str());
    }
    methods.sort_unstable();
    methods.dedup();
    methods
}

/// The methods a known path answers (the `Allow` header of its 405, e.g.
/// `GET, POST`), or `None` for a path no route serves.
pub fn allowed_methods(path: &str) -> Option<String> {
    let methods = allowed(path);
    (!methods.is_empty()).then(|| methods.join(", "))
}

/// The path of the order route with an empty id.
const EMPTY_ORDER_ID: &str = "/orders/";

/// `/orders/`: the order route with an empty id, which its `{id}` filter (a
/// non-empty segment) does not match; `GET` on it is a bad id (400), as the Go gateway answers, not 405.
fn empty_order_id() -> impl Filter<Extract = (String,), Error = Rejection> + Clone {
    warp::path::full().and_then(|path: warp::path::FullPath| async move {
        if path.as_str() == EMPTY_ORDER_ID {
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
    let allowed = allowed(path.as_str());
    if allowed.is_empty() || allowed.contains(&method.as_str()) {
        // Not a known path, or the method is allowed: an earlier route refused the
        // request for another reason (a bad header), which warp reports in preference
        // to "not found".
        return Err(warp::reject::not_found());
    }
    let mut response = ApiError::with_status(
        StatusCode::METHOD_NOT_ALLOWED,
        Code::Unimplemented,
        "method not allowed on this path",
    )
    .into_response();
    // Method names are tokens, valid in a header: the conversion cannot fail.
    if let Ok(allow) = HeaderValue::try_from(allowed.join(", ")) {
        response.headers_mut().insert(header::ALLOW, allow);
    }
    Ok(response)
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
    create_order(gateway.clone())
        .or(get_order(gateway.clone()))
        .unify()
        .or(healthz())
        .unify()
        .or(readyz(gateway))
        .unify()
        .or(metrics_text(metrics.clone()))
        .unify()
        .or(openapi())
        .unify()
        .or(swagger::routes())
        .unify()
        .or(other_methods())
        .unify()
        .recover(handle_rejection)
        .unify()
        .with(count_responses(&metrics))
}

/// The value every request's handler gets.
fn with_gateway(
    gateway: Gateway,
) -> impl Filter<Extract = (Gateway,), Error = Infallible> + Clone + Send + Sync + 'static {
    warp::any().map(move || gateway.clone())
}

/// `POST /orders`.
fn create_order(
    gateway: Gateway,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + Send + Sync + 'static {
    CREATE_ORDER
        .filter()
        .and(warp::header::optional::<u64>("content-length"))
        .and(idempotency_key_values())
        .and(warp::body::stream())
        .and(with_gateway(gateway))
        .then(|_: Vec<String>, length, key, body, gateway: Gateway| {
            gateway.create_order(length, key, body)
        })
}

/// Every value of the request's `Idempotency-Key` header (checked by the handler,
/// so a bad one is the usual JSON 400).
fn idempotency_key_values()
-> impl Filter<Extract = (Vec<HeaderValue>,), Error = Infallible> + Clone + Send + Sync + 'static {
    warp::header::headers_cloned().map(|headers: warp::http::HeaderMap| {
        headers
            .get_all(rest::IDEMPOTENCY_KEY_HEADER)
            .iter()
            .cloned()
            .collect()
    })
}

/// `GET /orders/{id}`, and `GET /orders/` (an empty id).
fn get_order(
    gateway: Gateway,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + Send + Sync + 'static {
    GET_ORDER
        .path_filter()
        .map(|params: Vec<String>| params.into_iter().next().unwrap_or_default())
        .or(empty_order_id())
        .unify()
        .and(GET_ORDER.verb.filter())
        .and(with_gateway(gateway))
        .then(|id, gateway: Gateway| gateway.get_order(id))
}

/// `GET /healthz`: the process serves.
fn healthz() -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + Send + Sync + 'static
{
    HEALTHZ
        .filter()
        .map(|_| warp::reply::json(&json!({"status": "ok"})).into_response())
}

/// `GET /readyz`: orders is ready.
fn readyz(
    gateway: Gateway,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + Send + Sync + 'static {
    READYZ
        .filter()
        .and(with_gateway(gateway))
        .then(|_, gateway: Gateway| gateway.readiness())
}

/// `GET /metrics`: every family of `metrics`, as Prometheus text.
fn metrics_text(
    metrics: Arc<Metrics>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + Send + Sync + 'static {
    METRICS.filter().map(move |_| {
        warp::reply::with_header(
            metrics.render(),
            "content-type",
            "text/plain; version=0.0.4",
        )
        .into_response()
    })
}

/// `GET /openapi.yaml`: [`OPENAPI`].
fn openapi() -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + Send + Sync + 'static
{
    OPENAPI_YAML.filter().map(|_| {
        warp::reply::with_header(OPENAPI, "content-type", "application/yaml").into_response()
    })
}

/// Last: a known path with a method no route took ([`method_not_allowed`]).
fn other_methods()
-> impl Filter<Extract = (Response,), Error = Rejection> + Clone + Send + Sync + 'static {
    warp::path::full()
        .and(warp::method())
        .and_then(method_not_allowed)
}

/// Counts and logs every answered request: totals by status class, the latency of
/// the order routes, and the Go gateway's families ([`RequestMetrics`], for the
/// requests the Go gateway counts).
fn count_responses(
    metrics: &Metrics,
) -> warp::log::Log<impl Fn(warp::log::Info<'_>) + Clone + Send + Sync + 'static + use<>> {
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
    let go_metrics = RequestMetrics::register(metrics);
    warp::log::custom(move |info| {
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_names_the_methods_of_every_route_of_the_path() {
        for (path, allow) in [
            ("/orders", Some("POST")),
            ("/orders/", Some("GET, POST")),
            ("/orders/1", Some("GET")),
            ("/orders/1/", Some("GET")),
            ("/healthz/", Some("GET")),
            ("/openapi.yaml", Some("GET")),
            ("/swagger/", Some("GET")),
            ("/swagger/doc.json", Some("GET")),
            ("/", None),
            ("/orders/1/items", None),
            ("/swagger/nope", None),
        ] {
            assert_eq!(allowed_methods(path).as_deref(), allow, "{path}");
        }
    }
}
