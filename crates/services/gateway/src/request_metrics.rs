//! The Go gateway's request metrics, under its names, so dashboards and alerts built
//! on the Go gateway keep working:
//!
//! - `opp_http_requests_total{service,method,route,status}` (counter): every answered
//!   request, whatever its status (4xx, 5xx and 405 included);
//! - `opp_http_request_duration_seconds{service,method,route}` (histogram, the
//!   Prometheus client's default buckets, 5 ms to 10 s: [`PROMETHEUS_DEFAULT_BUCKETS`]).
//!
//! Labels: `service` is always `gateway`; `method` the HTTP method (`OTHER` for a
//! method outside RFC 9110's and PATCH); `route` the route pattern that serves the
//! path ([`route_label`]: `/orders`, `/orders/{id}`, `/healthz`, ...; `unmatched` for
//! a path no route serves); `status` the numeric status code. Every label has a
//! bounded set of values, so a scanner requesting random paths and methods adds no
//! series.

use std::time::Duration;

use ops_http::{CounterFamily, HistogramFamily, Metrics, PROMETHEUS_DEFAULT_BUCKETS};
use warp::http::{Method, StatusCode};

/// The `service` label.
pub const SERVICE: &str = "gateway";
/// The `route` of a request no route serves (an unknown path: 404).
pub const UNMATCHED_ROUTE: &str = "unmatched";
/// The `method` of a request whose method is not a standard one.
pub const OTHER_METHOD: &str = "OTHER";

/// The two Go families, registered in the gateway's [`Metrics`].
#[derive(Debug, Clone)]
pub struct RequestMetrics {
    requests: CounterFamily<4>,
    duration: HistogramFamily<3>,
}

impl RequestMetrics {
    pub fn register(metrics: &Metrics) -> Self {
        Self {
            requests: metrics.counter_family(
                "opp_http_requests_total",
                "HTTP requests answered, by service, method, route pattern and status code.",
                ["service", "method", "route", "status"],
            ),
            duration: metrics.histogram_family(
                "opp_http_request_duration_seconds",
                "Time to answer HTTP requests in seconds, by service, method and route pattern.",
                ["service", "method", "route"],
                &PROMETHEUS_DEFAULT_BUCKETS,
            ),
        }
    }

    /// Counts and times one answered request.
    pub fn observe(&self, method: &Method, path: &str, status: StatusCode, elapsed: Duration) {
        let method_label = method_label(method);
        let route = route_label(method, path);
        self.requests
            .with_labels([SERVICE, method_label, route, status.as_str()])
            .inc();
        self.duration
            .with_labels([SERVICE, method_label, route])
            .observe(elapsed);
    }
}

/// The method as it is labelled: the standard ones by name, any other (an extension
/// method a client made up) as [`OTHER_METHOD`].
pub fn method_label(method: &Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "CONNECT" => "CONNECT",
        "OPTIONS" => "OPTIONS",
        "TRACE" => "TRACE",
        "PATCH" => "PATCH",
        _ => OTHER_METHOD,
    }
}

/// The route pattern that serves `path` (whatever the method: a 405 is labelled
/// with its path's route), or [`UNMATCHED_ROUTE`]. As the routes do, one trailing
/// slash is ignored, except that `GET /orders/` is the order route with an empty id
/// (answered 400). Everything under `/swagger/` is one route, `/swagger/*`, as a Go
/// router's wildcard route serving the Swagger UI.
pub fn route_label(method: &Method, path: &str) -> &'static str {
    if path == "/orders/" && method == Method::GET {
        return "/orders/{id}";
    }
    let path = path.strip_suffix('/').unwrap_or(path);
    let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    match segments.as_slice() {
        ["orders"] => "/orders",
        ["orders", id] if !id.is_empty() => "/orders/{id}",
        ["healthz"] => "/healthz",
        ["readyz"] => "/readyz",
        ["metrics"] => "/metrics",
        ["openapi.yaml"] => "/openapi.yaml",
        ["swagger", ..] => "/swagger/*",
        _ => UNMATCHED_ROUTE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_labelled_by_pattern_and_unknown_paths_by_one_value() {
        let get = Method::GET;
        for (method, path, route) in [
            (&Method::POST, "/orders", "/orders"),
            (&Method::POST, "/orders/", "/orders"),
            (&Method::PATCH, "/orders", "/orders"),
            (&get, "/orders", "/orders"),
            (&get, "/orders/", "/orders/{id}"),
            (&get, "/orders/42", "/orders/{id}"),
            (&get, "/orders/42/", "/orders/{id}"),
            (&get, "/orders/abc", "/orders/{id}"),
            (&Method::DELETE, "/orders/1", "/orders/{id}"),
            (&get, "/healthz", "/healthz"),
            (&get, "/healthz/", "/healthz"),
            (&get, "/readyz", "/readyz"),
            (&get, "/metrics", "/metrics"),
            (&get, "/openapi.yaml", "/openapi.yaml"),
            (&get, "/swagger/index.html", "/swagger/*"),
            (&get, "/swagger/", "/swagger/*"),
            (&get, "/", "unmatched"),
            (&get, "/nope", "unmatched"),
            (&get, "/orders/1/items", "unmatched"),
            (&get, "/v1/orders", "unmatched"),
            (&get, "//orders", "unmatched"),
            (&get, "/.env", "unmatched"),
        ] {
            assert_eq!(route_label(method, path), route, "{method} {path}");
        }
    }

    #[test]
    fn every_path_a_route_serves_has_its_own_label_and_no_other_does() {
        // The same paths as routes::allowed_methods: a path with methods is a route.
        for path in [
            "/orders",
            "/orders/",
            "/orders/1",
            "/orders/1/",
            "/healthz",
            "/readyz/",
            "/metrics",
            "/openapi.yaml",
            "/",
            "/nope",
            "/orders/1/items",
            "/healthz/x",
        ] {
            let routed = crate::routes::allowed_methods(path).is_some();
            let labelled = route_label(&Method::DELETE, path) != UNMATCHED_ROUTE;
            assert_eq!(routed, labelled, "{path}");
        }
    }

    #[test]
    fn extension_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        assert_eq!(method_label(&Method::OPTIONS), "OPTIONS");
        for made_up in [&b"SCAN-1234"[..], b"get", b"PROPFIND"] {
            let method = Method::from_bytes(made_up).unwrap();
            assert_eq!(method_label(&method), "OTHER", "{method}");
        }
    }

    #[test]
    fn renders_the_go_families() {
        let metrics = Metrics::new();
        let requests = RequestMetrics::register(&metrics);
        let elapsed = Duration::from_millis(20);
        requests.observe(&Method::POST, "/orders", StatusCode::OK, elapsed);
        requests.observe(&Method::POST, "/orders", StatusCode::OK, elapsed);
        requests.observe(&Method::GET, "/orders/x", StatusCode::BAD_REQUEST, elapsed);
        let method = Method::from_bytes(b"BREW").unwrap();
        requests.observe(&method, "/pot", StatusCode::NOT_FOUND, elapsed);
        let text = metrics.render();
        for line in [
            "# HELP opp_http_requests_total HTTP requests answered, by service, method, route pattern and status code.",
            "# TYPE opp_http_requests_total counter",
            r#"opp_http_requests_total{service="gateway",method="GET",route="/orders/{id}",status="400"} 1"#,
            r#"opp_http_requests_total{service="gateway",method="OTHER",route="unmatched",status="404"} 1"#,
            r#"opp_http_requests_total{service="gateway",method="POST",route="/orders",status="200"} 2"#,
            "# TYPE opp_http_request_duration_seconds histogram",
            r#"opp_http_request_duration_seconds_bucket{service="gateway",method="POST",route="/orders",le="0.01"} 0"#,
            r#"opp_http_request_duration_seconds_bucket{service="gateway",method="POST",route="/orders",le="0.025"} 2"#,
            r#"opp_http_request_duration_seconds_bucket{service="gateway",method="POST",route="/orders",le="+Inf"} 2"#,
            r#"opp_http_request_duration_seconds_sum{service="gateway",method="POST",route="/orders"} 0.04"#,
            r#"opp_http_request_duration_seconds_count{service="gateway",method="POST",route="/orders"} 2"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} not in\n{text}");
        }
    }
}
