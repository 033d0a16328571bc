//! Swagger UI at `GET /swagger/index.html`, every file of it embedded in the binary.
//!
//! | route                                  | answer                                                    |
//! |----------------------------------------|-----------------------------------------------------------|
//! | `GET /swagger`, `GET /swagger/`        | 301 to `/swagger/index.html` (as the Go gateway answers)  |
//! | `GET /swagger/index.html`              | the page (`assets/swagger-ui/index.html`)                 |
//! | `GET /swagger/doc.json`                | `openapi.yaml` as JSON ([`DOC_JSON`], converted by `build.rs`) |
//! | `GET /swagger/{version}/{file}`        | the vendored `swagger-ui-dist` files ([`ASSETS`])         |
//!
//! The assets are `swagger-ui-dist` [`SWAGGER_UI_VERSION`] (Apache-2.0), copied from its
//! npm package unchanged (`assets/swagger-ui/README.md` says how). They sit under a path
//! that names their version, so they are cached for a year as immutable; the page and
//! the description change with the gateway, so browsers revalidate them (`no-cache`).
//! The page loads nothing from elsewhere, and the description has no `servers`, so
//! "Try it out" calls the gateway the page came from.

use warp::{
    Filter, Rejection, Reply,
    http::{
        Uri,
        header::{self, HeaderValue},
    },
    reply::Response,
};

/// The vendored `swagger-ui-dist` release; also the path segment its files are served under.
pub const SWAGGER_UI_VERSION: &str = "5.35.0";

/// The OpenAPI description (`openapi.yaml`) as JSON, served at `GET /swagger/doc.json`.
pub const DOC_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/openapi.json"));

/// The page; it names its assets by the relative path `{SWAGGER_UI_VERSION}/{file}`.
pub const INDEX_HTML: &str = include_str!("../assets/swagger-ui/index.html");

/// One vendored file, served at `/swagger/{SWAGGER_UI_VERSION}/{name}`.
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

/// An [`Asset`] from `assets/swagger-ui/`, served under its file name: the name is
/// written once, so the served name and the embedded file cannot drift apart.
macro_rules! vendored {
    ($name:literal, $content_type:literal) => {
        Asset {
            name: $name,
            content_type: $content_type,
            body: include_bytes!(concat!("../assets/swagger-ui/", $name)),
        }
    };
}

/// The vendored files the page uses (and the licence notices of the bundle, which the
/// bundle's first line points to by this relative name).
pub const ASSETS: &[Asset] = &[
    vendored!("swagger-ui.css", "text/css; charset=utf-8"),
    vendored!("swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
    vendored!(
        "swagger-ui-bundle.js.LICENSE.txt",
        "text/plain; charset=utf-8"
    ),
    vendored!("favicon-32x32.png", "image/png"),
    vendored!("favicon-16x16.png", "image/png"),
];

/// For what changes with the gateway (the page, the description): revalidate each time.
const REVALIDATE: &str = "no-cache";
/// For the versioned assets: a new version is a new URL.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

fn asset(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|asset| asset.name == name)
}

/// Whether a path, split at `/` (without the leading and one trailing slash), is one
/// this module serves: what the gateway's 405 `Allow` needs to know.
pub fn serves(segments: &[&str]) -> bool {
    match segments {
        ["swagger"] | ["swagger", "index.html" | "doc.json"] => true,
        ["swagger", version, name] => *version == SWAGGER_UI_VERSION && asset(name).is_some(),
        _ => false,
    }
}

fn file(body: &'static [u8], content_type: &'static str, cache: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// The routes in the table above; any other path under `/swagger` is rejected as not found.
pub fn routes()
-> impl Filter<Extract = (Response,), Error = Rejection> + Clone + Send + Sync + 'static {
    // Matches `/swagger` and `/swagger/` alike.
    let redirect = warp::path!("swagger")
        .and(warp::get())
        .map(|| warp::redirect(Uri::from_static("/swagger/index.html")).into_response());
    let index = warp::path!("swagger" / "index.html")
        .and(warp::get())
        .map(|| {
            file(
                INDEX_HTML.as_bytes(),
                "text/html; charset=utf-8",
                REVALIDATE,
            )
        });
    let doc = warp::path!("swagger" / "doc.json")
        .and(warp::get())
        .map(|| file(DOC_JSON.as_bytes(), "application/json", REVALIDATE));
    let assets = warp::path("swagger")
        .and(warp::path(SWAGGER_UI_VERSION))
        .and(warp::path::param::<String>())
        .and(warp::path::end())
        .and(warp::get())
        .and_then(|name: String| async move {
            asset(&name)
                .map(|asset| file(asset.body, asset.content_type, IMMUTABLE))
                .ok_or_else(warp::reject::not_found)
        });
    redirect
        .or(index)
        .unify()
        .or(doc)
        .unify()
        .or(assets)
        .unify()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_the_vendored_version_of_every_asset_it_names() {
        for name in [
            "swagger-ui.css",
            "swagger-ui-bundle.js",
            "favicon-32x32.png",
        ] {
            let path = format!("\"{SWAGGER_UI_VERSION}/{name}\"");
            assert!(
                INDEX_HTML.contains(&path),
                "index.html does not load {path}"
            );
            assert!(asset(name).is_some(), "{name} is not served");
        }
        // Nothing from elsewhere: no absolute URL in a src or href.
        for attribute in ["src=\"", "href=\""] {
            for (at, _) in INDEX_HTML.match_indices(attribute) {
                let value = &INDEX_HTML[at + attribute.len()..];
                assert!(
                    !value.starts_with("http") && !value.starts_with("//"),
                    "index.html loads {value:.60}"
                );
            }
        }
        assert!(INDEX_HTML.contains("url: \"doc.json\""));
    }

    #[test]
    fn the_asset_bytes_are_the_vendored_release() {
        let bundle = std::str::from_utf8(asset("swagger-ui-bundle.js").map_or(&[], |a| a.body));
        assert!(
            bundle.is_ok_and(|js| js.contains("SwaggerUIBundle")),
            "not the swagger-ui-dist bundle"
        );
    }

    #[test]
    fn serves_names_exactly_the_routed_paths() {
        assert!(serves(&["swagger"]));
        assert!(serves(&["swagger", "index.html"]));
        assert!(serves(&["swagger", "doc.json"]));
        assert!(serves(&["swagger", SWAGGER_UI_VERSION, "swagger-ui.css"]));
        assert!(!serves(&["swagger", "0.0.1", "swagger-ui.css"]));
        assert!(!serves(&["swagger", SWAGGER_UI_VERSION, "index.html"]));
        assert!(!serves(&["swagger", "swagger-ui.css"]));
        assert!(!serves(&["orders"]));
    }
}
