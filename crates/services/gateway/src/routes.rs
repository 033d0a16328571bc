//! The composition: every route with its handler, in the order they are tried.
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
//! Paths and methods come from the route table ([`crate::route_table`]), the handlers
//! from [`crate::handlers`]. `POST /orders` and `GET /orders/{id}` count against
//! `GATEWAY_MAX_IN_FLIGHT` ([`crate::overload`]): past it they are 503 at once. The
//! others do not. Those two are also the only authenticated ones ([`crate::auth`]:
//! with `GATEWAY_AUTH=jwt` a request without a valid bearer token is 401, and one
//! past its user's limit 429, before its body is read).
//!
//! Handlers never reject: they answer with the result or an [`ApiError`]. A known
//! path with another method is 405 with the `Allow` header
//! (`route_table::other_methods`); an unknown path is rejected, and
//! [`handle_rejection`] turns that into a 404 with the same JSON error body. Every
//! answer is counted ([`request_metrics::count_responses`]).

use std::{convert::Infallible, sync::Arc};

use ops_http::Metrics;
use serde_json::json;
use telemetry::{TraceHeaders, spans};
use tonic::Code;
use tracing::Instrument;
use warp::{
    Filter, Rejection, Reply,
    http::{
        StatusCode,
        header::{AUTHORIZATION, HeaderValue},
    },
    reject::{InvalidHeader, MethodNotAllowed},
    reply::Response,
};

#[cfg(doc)]
use crate::handlers::orders::MAX_BODY;
use crate::{
    auth::{Auth, AuthError, Caller},
    errors::ApiError,
    handlers::Gateway,
    idempotency_key::IDEMPOTENCY_KEY_HEADER,
    request_metrics,
    route_table::{self, CREATE_ORDER, GET_ORDER, HEALTHZ, METRICS, OPENAPI_YAML, READYZ, Route},
    swagger,
};

/// The OpenAPI description of these routes, served at `GET /openapi.yaml`; the
/// schemathesis test checks real answers against it.
pub const OPENAPI: &str = include_str!("../openapi.yaml");

/// Every route, with rejections recovered and responses counted.
pub fn routes(
    gateway: Gateway,
    auth: Auth,
    metrics: Arc<Metrics>,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone + Send + Sync + 'static {
    create_order(gateway.clone(), auth.clone())
        .or(get_order(gateway.clone(), auth))
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
        .or(route_table::other_methods())
        .unify()
        .recover(handle_rejection)
        .unify()
        .with(request_metrics::count_responses(&metrics))
}

/// Routing failures as JSON errors: 404 for an unknown path, 405 for a known path
/// with another method. Anything else is a bug in the routes: 500, logged.
pub async fn handle_rejection(rejection: Rejection) -> Result<Response, Infallible> {
    let error = if rejection.is_not_found() {
        ApiError::with_status(StatusCode::NOT_FOUND, Code::NotFound, "no such endpoint")
    } else if rejection.find::<MethodNotAllowed>().is_some() {
        route_table::method_not_allowed_error()
    } else if let Some(header) = rejection.find::<InvalidHeader>() {
        ApiError::invalid_argument(format!("invalid {} header", header.name()))
    } else {
        tracing::error!(?rejection, "unhandled rejection");
        ApiError::new(Code::Internal, "internal error")
    };
    Ok(error.into_response())
}

/// The value every request's handler gets.
fn with_gateway(
    gateway: Gateway,
) -> impl Filter<Extract = (Gateway,), Error = Infallible> + Clone + Send + Sync + 'static {
    warp::any().map(move || gateway.clone())
}

/// The caller of the request, from its `Authorization` header ([`Auth::caller`]).
fn caller(
    auth: Auth,
) -> impl Filter<Extract = (Result<Caller, AuthError>,), Error = Infallible>
+ Clone
+ Send
+ Sync
+ 'static {
    header_values(AUTHORIZATION.as_str()).then(move |authorization: Vec<HeaderValue>| {
        let auth = auth.clone();
        async move { auth.caller(&authorization).await }
    })
}

/// `POST /orders`.
fn create_order(
    gateway: Gateway,
    auth: Auth,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + Send + Sync + 'static {
    CREATE_ORDER
        .filter()
        .and(caller(auth))
        .and(warp::header::optional::<u64>("content-length"))
        .and(header_values(IDEMPOTENCY_KEY_HEADER))
        .and(warp::body::stream())
        .and(with_gateway(gateway))
        .and(incoming_trace())
        .then(
            |_: Vec<String>, caller, length, key, body, gateway: Gateway, trace| {
                let answer = async move {
                    match caller {
                        // Refused before the body is read.
                        Err(err) => AuthError::into_response(err),
                        Ok(caller) => gateway.create_order(caller, length, key, body).await,
                    }
                };
                traced(&CREATE_ORDER, "/orders".to_owned(), trace, answer)
            },
        )
}

/// The W3C trace context the caller sent (`traceparent`, `tracestate`), if any. The two
/// headers are looked up, not the whole map copied; one that is not text counts as
/// absent (a bad trace header never fails a request).
fn incoming_trace()
-> impl Filter<Extract = (Option<TraceHeaders>,), Error = Infallible> + Clone + Send + Sync + 'static
{
    optional_text(telemetry::TRACEPARENT)
        .and(optional_text(telemetry::TRACESTATE))
        .map(|traceparent: Option<String>, tracestate: Option<String>| {
            TraceHeaders::from_parts(traceparent.as_deref(), tracestate.as_deref())
        })
}

/// The header `name` as text; `None` when absent or not text.
fn optional_text(
    name: &'static str,
) -> impl Filter<Extract = (Option<String>,), Error = Infallible> + Clone + Send + Sync + 'static {
    warp::header::optional::<String>(name)
        .or(warp::any().map(|| None))
        .unify()
}

/// Answers `route`'s request inside its server span, which continues the caller's
/// trace; the answer's status is recorded on it. With tracing off, `answer` as is.
async fn traced(
    route: &Route,
    path: String,
    trace: Option<TraceHeaders>,
    answer: impl Future<Output = Response>,
) -> Response {
    if !telemetry::enabled() {
        return answer.await;
    }
    let span = spans::http_server(route.method(), &route.template(), &path);
    telemetry::continue_trace(&span, trace.as_ref());
    let response = answer.instrument(span.clone()).await;
    spans::record_http_status(&span, response.status().as_u16());
    response
}

/// Every value of the request's header `name` (checked by the handler, so a bad
/// one is the usual JSON error).
fn header_values(
    name: &'static str,
) -> impl Filter<Extract = (Vec<HeaderValue>,), Error = Infallible> + Clone + Send + Sync + 'static
{
    warp::header::headers_cloned()
        .map(move |headers: warp::http::HeaderMap| headers.get_all(name).iter().cloned().collect())
}

/// `GET /orders/{id}`, and `GET /orders/` (an empty id).
fn get_order(
    gateway: Gateway,
    auth: Auth,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + Send + Sync + 'static {
    route_table::get_order_id()
        .and(caller(auth))
        .and(with_gateway(gateway))
        .and(incoming_trace())
        .then(|id: String, caller, gateway: Gateway, trace| {
            let path = format!("/orders/{id}");
            let answer = async move {
                match caller {
                    Err(err) => AuthError::into_response(err),
                    Ok(caller) => gateway.get_order(caller, id).await,
                }
            };
            traced(&GET_ORDER, path, trace, answer)
        })
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

#[cfg(test)]
mod tests {
    use crate::{request_metrics::route_label, route_table::allowed_methods};

    /// For each path: the methods our routes answer on it (the `Allow` of its 405;
    /// `None`: no route serves it, 404), and the `route` the Go families count it under
    /// (`None`: the Go gateway does not count it). The two differ where the Go mux does:
    /// its `/orders/` and `/swagger/` patterns take every path under them, it redirects
    /// unclean paths, and it serves the probes outside its metrics middleware.
    #[test]
    fn each_path_s_allowed_methods_and_go_route() {
        for (paths, allow, go_route) in [
            (&["/orders"][..], Some("POST"), Some("/orders")),
            (&["/orders/"], Some("GET, POST"), Some("/orders/{id}")),
            (
                &[
                    "/orders/1",
                    "/orders/1/",
                    "/orders/42",
                    "/orders/42/",
                    "/orders/abc",
                ],
                Some("GET"),
                Some("/orders/{id}"),
            ),
            // Go's "/orders/" pattern is a subtree: its handler answers these (400).
            (&["/orders/1/items"], None, Some("/orders/{id}")),
            (
                &["/swagger/", "/swagger/index.html", "/swagger/doc.json"],
                Some("GET"),
                Some("/swagger/*"),
            ),
            (&["/swagger/nope"], None, Some("/swagger/*")),
            // Served outside the Go middleware, or by no handler: not counted.
            (
                &[
                    "/healthz",
                    "/healthz/",
                    "/readyz",
                    "/metrics",
                    "/openapi.yaml",
                ],
                Some("GET"),
                None,
            ),
            (
                &["/", "/nope", "/v1/orders", "/ordersx", "/.env"],
                None,
                None,
            ),
            // The Go mux redirects these (301) before any handler runs.
            (&["/swagger"], Some("GET"), None),
            (&["//orders"], Some("POST"), None),
            (
                &[
                    "/orders//1",
                    "/orders/./1",
                    "/orders/../orders",
                    "/orders/1/..",
                    "/swagger/.",
                    "*",
                    "",
                ],
                None,
                None,
            ),
        ] {
            for &path in paths {
                assert_eq!(allowed_methods(path).as_deref(), allow, "{path}");
                assert_eq!(route_label(path), go_route, "{path}");
            }
        }
    }
}
