//! The route table: each route's path pattern and method, written once (`ROUTES`).
//! The routes' path-and-method filters are built from it (`Route::filter`) and so is
//! the `Allow` of a 405 ([`allowed_methods`]), so the two cannot disagree. Swagger UI's
//! paths are [`swagger::serves`]'.
//!
//! A known path asked with a method it does not answer is 405 with `Allow` (RFC 9110
//! requires it: `other_methods`); an unknown path passes on as not found.

use tonic::Code;
use warp::{
    Filter, Rejection,
    filters::BoxedFilter,
    http::{
        StatusCode,
        header::{self, HeaderValue},
    },
    reply::Response,
};

use crate::{errors::ApiError, swagger};

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

/// One route: a path pattern and the method it answers.
#[derive(Debug)]
pub(crate) struct Route {
    path: &'static [Segment],
    verb: Verb,
}

impl Route {
    const fn new(verb: Verb, path: &'static [Segment]) -> Self {
        Self { path, verb }
    }

    /// Its method, `GET` or `POST`.
    pub(crate) fn method(&self) -> &'static str {
        self.verb.as_str()
    }

    /// Its path pattern as OpenAPI writes it (`/orders/{id}`): a trace's `http.route`.
    pub(crate) fn template(&self) -> String {
        self.path
            .iter()
            .map(|segment| match segment {
                Literal(text) => format!("/{text}"),
                Param => "/{id}".to_owned(),
            })
            .collect()
    }
}

pub(crate) const CREATE_ORDER: Route = Route::new(Verb::Post, &[Literal("orders")]);
pub(crate) const GET_ORDER: Route = Route::new(Verb::Get, &[Literal("orders"), Param]);
pub(crate) const HEALTHZ: Route = Route::new(Verb::Get, &[Literal("healthz")]);
pub(crate) const READYZ: Route = Route::new(Verb::Get, &[Literal("readyz")]);
pub(crate) const METRICS: Route = Route::new(Verb::Get, &[Literal("metrics")]);
pub(crate) const OPENAPI_YAML: Route = Route::new(Verb::Get, &[Literal("openapi.yaml")]);

/// Every route but Swagger UI's ([`swagger`]'s).
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
    pub(crate) fn filter(&'static self) -> BoxedFilter<(Vec<String>,)> {
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

/// `GET /orders/{id}`, and `GET /orders/`, the order route with an empty id, which
/// its `{id}` segment (never empty) does not match: extracts the id, maybe empty. The
/// handler answers an empty id as a bad one (400), as the Go gateway does, not 405.
pub(crate) fn get_order_id() -> impl Filter<Extract = (String,), Error = Rejection> + Clone {
    GET_ORDER
        .path_filter()
        .map(|params: Vec<String>| params.into_iter().next().unwrap_or_default())
        .or(empty_order_id())
        .unify()
        .and(GET_ORDER.verb.filter())
}

/// `/orders/`, whatever the method.
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
    let mut response = method_not_allowed_error().into_response();
    // Method names are tokens, valid in a header: the conversion cannot fail.
    if let Ok(allow) = HeaderValue::try_from(allowed.join(", ")) {
        response.headers_mut().insert(header::ALLOW, allow);
    }
    Ok(response)
}

/// The error of every 405: with `Allow` ([`method_not_allowed`]), or without where a
/// method filter's rejection is all that is left ([`crate::routes::handle_rejection`]).
pub(crate) fn method_not_allowed_error() -> ApiError {
    ApiError::with_status(
        StatusCode::METHOD_NOT_ALLOWED,
        Code::Unimplemented,
        "method not allowed on this path",
    )
}

/// Last of the routes: a known path with a method no route took
/// ([`method_not_allowed`]).
pub(crate) fn other_methods()
-> impl Filter<Extract = (Response,), Error = Rejection> + Clone + Send + Sync + 'static {
    warp::path::full()
        .and(warp::method())
        .and_then(method_not_allowed)
}
