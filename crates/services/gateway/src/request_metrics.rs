//! Counting the answered requests: [`count_responses`], wrapped around every route,
//! counts each answer in
//!
//! - the gateway's own families: `gateway_http_requests_total`,
//!   `gateway_http_responses_{2xx,4xx,5xx}_total` by status class, and
//!   `gateway_order_request_duration_seconds` for the requests under `/orders`;
//! - the Go gateway's request metrics ([`RequestMetrics`]), under its names, so
//!   dashboards and alerts built on the Go gateway keep working:
//!   - `opp_http_requests_total{service,method,route,status}` (counter);
//!   - `opp_http_request_duration_seconds{service,method,route}` (histogram, the
//!     Prometheus client's default buckets, 5 ms to 10 s: [`PROMETHEUS_DEFAULT_BUCKETS`]).
//!
//! The Go families count the requests the Go gateway counts, and no others. There the
//! middleware (`gateway/internal/middleware/metrics.go`) wraps only three handlers of
//! its `http.ServeMux` (`gateway/cmd/main.go`), each with a fixed `route` label:
//! `/orders` (exactly that path), `/orders/` (that path and every path under it:
//! label `/orders/{id}`) and `/swagger/` (every path under it: label `/swagger/*`).
//! `/healthz`, `/readyz` and `/metrics` are served unwrapped, and a path no handler
//! takes (404), or one the mux redirects to its clean form (`//orders`,
//! `/orders/./1`, `/swagger`: 301), never reaches a wrapped handler: none of these is
//! counted ([`route_label`]). Whatever status the counted request is answered with
//! (4xx, 5xx, 405, a 301 under `/swagger/`) is its `status`.
//!
//! Labels: `service` is always `gateway`; `method` the HTTP method (`OTHER` for a
//! method outside RFC 9110's and PATCH, where Go writes any method a client sends:
//! a scanner inventing methods adds no series here); `route` as above; `status` the
//! numeric status code.

use std::time::Duration;

use ops_http::{CounterFamily, HistogramFamily, Metrics, PROMETHEUS_DEFAULT_BUCKETS};
use warp::http::{Method, StatusCode};

/// The `service` label.
pub const SERVICE: &str = "gateway";
/// The `method` of a request whose method is not a standard one.
pub const OTHER_METHOD: &str = "OTHER";

/// Counts and logs every answered request: totals by status class, the latency of
/// the order routes, and the Go gateway's families ([`RequestMetrics`], for the
/// requests the Go gateway counts).
pub fn count_responses(
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
                // The Go gateway's help texts.
                "Total HTTP requests",
                ["service", "method", "route", "status"],
            ),
            duration: metrics.histogram_family(
                "opp_http_request_duration_seconds",
                "HTTP request latency",
                ["service", "method", "route"],
                &PROMETHEUS_DEFAULT_BUCKETS,
            ),
        }
    }

    /// Counts and times one answered request, if the Go gateway counts it
    /// ([`route_label`]).
    pub fn observe(&self, method: &Method, path: &str, status: StatusCode, elapsed: Duration) {
        let Some(route) = route_label(path) else {
            return;
        };
        let method_label = method_label(method);
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

/// The `route` the Go gateway counts a request for `path` under, whatever its method:
/// `/orders`, `/orders/{id}` (`/orders/` and every path under it) or `/swagger/*`
/// (every path under `/swagger/`). `None`, not counted, for every other path, and for
/// a path Go's `ServeMux` answers with a redirect to its clean form before any
/// handler runs ([`is_clean`]).
pub fn route_label(path: &str) -> Option<&'static str> {
    if !is_clean(path) {
        return None;
    }
    if path == "/orders" {
        Some("/orders")
    } else if path.starts_with("/orders/") {
        Some("/orders/{id}")
    } else if path.starts_with("/swagger/") {
        Some("/swagger/*")
    } else {
        None
    }
}

/// Whether `path` is already in the form Go's `ServeMux` cleans a path to (its
/// `cleanPath`: `path.Clean`, keeping a trailing slash): rooted, with no empty, `.`
/// or `..` segment, except an empty last one (the trailing slash).
pub fn is_clean(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    let mut segments = rest.split('/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        match segment {
            "." | ".." => return false,
            "" if !last => return false,
            _ => {}
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_paths_are_the_ones_go_does_not_redirect() {
        for clean in ["/", "/orders", "/orders/", "/a/b/c", "/a/.b/..c/", "/a/b.c"] {
            assert!(is_clean(clean), "{clean}");
        }
        for unclean in [
            "", "orders", "//", "/a//b", "/./", "/a/.", "/a/..", "/../a", "/a/./",
        ] {
            assert!(!is_clean(unclean), "{unclean}");
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
        requests.observe(
            &method,
            "/orders/1",
            StatusCode::METHOD_NOT_ALLOWED,
            elapsed,
        );
        // Not counted by the Go gateway.
        requests.observe(&Method::GET, "/pot", StatusCode::NOT_FOUND, elapsed);
        requests.observe(&Method::GET, "/healthz", StatusCode::OK, elapsed);
        let text = metrics.render();
        let lines: Vec<&str> = text
            .lines()
            .filter(|line| line.contains("opp_http_requests_total"))
            .collect();
        assert_eq!(
            lines,
            [
                "# HELP opp_http_requests_total Total HTTP requests",
                "# TYPE opp_http_requests_total counter",
                r#"opp_http_requests_total{service="gateway",method="GET",route="/orders/{id}",status="400"} 1"#,
                r#"opp_http_requests_total{service="gateway",method="OTHER",route="/orders/{id}",status="405"} 1"#,
                r#"opp_http_requests_total{service="gateway",method="POST",route="/orders",status="200"} 2"#,
            ],
            "{text}"
        );
        for line in [
            "# HELP opp_http_request_duration_seconds HTTP request latency",
            "# TYPE opp_http_request_duration_seconds histogram",
            r#"opp_http_request_duration_seconds_bucket{service="gateway",method="POST",route="/orders",le="0.01"} 0"#,
            r#"opp_http_request_duration_seconds_bucket{service="gateway",method="POST",route="/orders",le="0.025"} 2"#,
            r#"opp_http_request_duration_seconds_bucket{service="gateway",method="POST",route="/orders",le="+Inf"} 2"#,
            r#"opp_http_request_duration_seconds_sum{service="gateway",method="POST",route="/orders"} 0.04"#,
            r#"opp_http_request_duration_seconds_count{service="gateway",method="POST",route="/orders"} 2"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} not in\n{text}");
        }
        assert!(
            !text.contains("/pot") && !text.contains("/healthz"),
            "{text}"
        );
    }
}
