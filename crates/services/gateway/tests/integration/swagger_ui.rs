//! Swagger UI at `/swagger/index.html`, as the Go gateway serves it: over plain HTTP
//! (every file with its content type and cache header, `/swagger/` redirecting, the
//! description as JSON equal to `openapi.yaml`), and in a real browser: headless
//! Chromium, driven by playwright-core (`tools/browser/swagger-ui.mjs`), uses
//! "Try it out" to create an order through a real gateway and orders, and the order is
//! then read back from orders over gRPC. The browser's screenshot is kept at
//! `target/test-artifacts/swagger-ui.png`.
//!
//! Chromium, Node.js and `tools/browser/node_modules` come from
//! `scripts/setup-test-tools.sh`; without them the browser test fails, saying so.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use gateway::swagger::{ASSETS, SWAGGER_UI_VERSION};
use serde_json::Value;
use testkit::{TestDatabase, runtime};

use crate::common;

const SETUP: &str = "run scripts/setup-test-tools.sh";

/// A gateway whose orders is nowhere: the Swagger UI files do not need it.
async fn gateway_alone() -> common::Gateway {
    common::Gateway::start(common::gateway_config(
        "127.0.0.1:1",
        Duration::from_secs(1),
    ))
    .await
}

fn http_without_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .map_or("", |value| value.to_str().unwrap())
}

#[test]
fn swagger_files_are_served_with_their_content_types() {
    runtime().block_on(async {
        let gateway = gateway_alone().await;
        let http = http_without_redirects();

        for path in ["/swagger", "/swagger/"] {
            let response = http.get(gateway.url(path)).send().await.unwrap();
            assert_eq!(response.status(), 301, "{path}");
            assert_eq!(
                header(&response, "location"),
                "/swagger/index.html",
                "{path}"
            );
        }

        let assets_dir = manifest_dir().join("assets/swagger-ui");
        let mut files = vec![
            (
                "/swagger/index.html".to_owned(),
                "text/html; charset=utf-8",
                "no-cache",
                std::fs::read(assets_dir.join("index.html")).unwrap(),
            ),
            (
                "/swagger/doc.json".to_owned(),
                "application/json",
                "no-cache",
                Vec::new(), // compared with openapi.yaml by the next test
            ),
        ];
        for asset in ASSETS {
            files.push((
                format!("/swagger/{SWAGGER_UI_VERSION}/{}", asset.name),
                asset.content_type,
                "public, max-age=31536000, immutable",
                std::fs::read(assets_dir.join(asset.name)).unwrap(),
            ));
        }
        let names: Vec<&str> = ASSETS.iter().map(|asset| asset.name).collect();
        for needed in ["swagger-ui.css", "swagger-ui-bundle.js"] {
            assert!(names.contains(&needed), "{needed} is not served: {names:?}");
        }
        for (path, content_type, cache, bytes) in files {
            let response = http.get(gateway.url(&path)).send().await.unwrap();
            assert_eq!(response.status(), 200, "{path}");
            assert_eq!(header(&response, "content-type"), content_type, "{path}");
            assert_eq!(header(&response, "cache-control"), cache, "{path}");
            assert_eq!(header(&response, "x-content-type-options"), "nosniff");
            let body = response.bytes().await.unwrap();
            if !bytes.is_empty() {
                assert!(body == bytes, "{path}: not the file in the repository");
            }
        }
        for (name, expected) in [
            ("swagger-ui.css", "text/css"),
            ("swagger-ui-bundle.js", "text/javascript"),
        ] {
            let content_type = ASSETS.iter().find(|a| a.name == name).unwrap().content_type;
            assert!(content_type.starts_with(expected), "{name}: {content_type}");
        }

        // What is not there: another version, a file not vendored; another method.
        for path in [
            "/swagger/0.0.1/swagger-ui.css",
            "/swagger/swagger-ui.css",
            &format!("/swagger/{SWAGGER_UI_VERSION}/index.html"),
            &format!("/swagger/{SWAGGER_UI_VERSION}/swagger-ui.js"),
        ] {
            gateway
                .get(path)
                .await
                .assert_error(404, "NotFound", "no such endpoint");
        }
        let post = gateway.post("/swagger/index.html", "{}").await;
        assert_eq!((post.status, post.allow.as_deref()), (405, Some("GET")));

        // A client following the redirect ends on the page.
        let page = gateway.text("/swagger/").await;
        assert!(page.contains("SwaggerUIBundle"), "{page}");
    });
}

#[test]
fn doc_json_is_openapi_yaml_as_json() {
    let served: Value = runtime().block_on(async {
        let gateway = gateway_alone().await;
        serde_json::from_str(&gateway.text("/swagger/doc.json").await).unwrap()
    });
    // Read by another YAML parser than the build's (PyYAML, which the test tools
    // include), so a reading the parsers disagree on shows up here.
    let output = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)",
        ])
        .arg(manifest_dir().join("openapi.yaml"))
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("cannot run python3 ({err}); {SETUP}"));
    assert!(
        output.status.success(),
        "python3 could not read openapi.yaml ({SETUP}: it installs PyYAML): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let yaml: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(served, yaml);
    // "Try it out" must call the gateway the page came from: no `servers`, or "/".
    match served.get("servers") {
        None => {}
        Some(servers) => assert_eq!(servers, &serde_json::json!([{"url": "/"}])),
    }
}

#[test]
fn swagger_ui_creates_an_order_in_a_real_browser() {
    let root = workspace_root();
    preflight(&root);

    let artifacts = artifacts_dir();
    let screenshot = artifacts.join("swagger-ui.png");
    let _ = std::fs::remove_file(&screenshot);
    let _ = std::fs::remove_file(artifacts.join("swagger-ui-failure.png"));

    let db = TestDatabase::new("gateway_swagger_ui");
    let runtime = runtime();
    // The services run on the runtime's worker threads while this thread waits for
    // the browser.
    let (orders, gateway) = runtime.block_on(common::orders_and_gateway(&db));
    let user_id = 4242;
    let result = run_browser(&root, &gateway, user_id, None);
    assert_eq!(result["status"], 200, "{result}");
    let order_id = result["order_id"].as_i64().unwrap();

    // The screenshot is a PNG where the test says.
    let png = std::fs::read(&screenshot)
        .unwrap_or_else(|err| panic!("no screenshot at {}: {err}", screenshot.display()));
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    println!("swagger-ui screenshot: {}", screenshot.display());

    // The order the browser created is in orders, as the browser typed it.
    let order = runtime
        .block_on(async { orders::testing::get_order(&mut orders.client().await, order_id).await });
    assert_eq!(order.user_id, user_id);
    let items: Vec<(i64, i32, i64)> = order
        .items
        .iter()
        .map(|item| {
            let price = item.price.as_ref().map_or(-1, |price| price.money);
            (item.product_id, item.quantity, price)
        })
        .collect();
    let typed: Vec<(i64, i32, i64)> = result["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            (
                item["product_id"].as_i64().unwrap(),
                i32::try_from(item["quantity"].as_i64().unwrap()).unwrap(),
                item["price"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(items, typed);
}

/// Runs `tools/browser/swagger-ui.mjs` against `gateway` (with `token`, Authorize
/// first); its `RESULT` line.
fn run_browser(root: &Path, gateway: &common::Gateway, user_id: i64, token: Option<&str>) -> Value {
    let artifacts = artifacts_dir();
    let mut command = Command::new("node");
    command
        .arg(root.join("tools/browser/swagger-ui.mjs"))
        .arg(gateway.url(""))
        .arg(&artifacts)
        .arg(user_id.to_string())
        .current_dir(root)
        .stdin(Stdio::null());
    if let Some(token) = token {
        command.env("SWAGGER_BEARER_TOKEN", token);
    }
    let output = command
        .output()
        .unwrap_or_else(|err| panic!("cannot run node ({err}); {SETUP}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser test failed ({}); screenshots in {}:\n{stdout}\n{stderr}",
        output.status,
        artifacts.display()
    );
    stdout
        .lines()
        .rev()
        .find_map(|line| line.strip_prefix("RESULT "))
        .map(|json| serde_json::from_str(json).unwrap())
        .unwrap_or_else(|| panic!("no RESULT line from the browser:\n{stdout}\n{stderr}"))
}

#[test]
fn swagger_ui_authorizes_with_a_bearer_token_in_a_real_browser() {
    let root = workspace_root();
    preflight(&root);
    let db = TestDatabase::new("gateway_swagger_jwt");
    let runtime = runtime();
    let secret = "a-browser-test-secret-of-32-bytes-or-more";
    let (orders, gateway) = runtime.block_on(async {
        let orders = orders::testing::Orders::start(orders::testing::config(db.dsn())).await;
        orders.wait_ready().await;
        let mut config =
            common::gateway_config(&orders.grpc_addr.to_string(), Duration::from_secs(5));
        config.gateway_auth = "jwt".to_owned();
        config.gateway_jwt_hs256_secret = settings::Secret::new(secret);
        config.gateway_jwt_issuer = "https://issuer.test".to_owned();
        config.gateway_jwt_audience = "orders-api".to_owned();
        (orders, common::Gateway::start(config).await)
    });
    let user_id = 5151;
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let claims = serde_json::json!({
        "iss": "https://issuer.test", "aud": "orders-api", "sub": user_id.to_string(), "exp": exp,
    });
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    let result = run_browser(&root, &gateway, user_id, Some(&token));
    assert_eq!(result["status"], 200, "{result}");
    let order_id = result["order_id"].as_i64().unwrap();
    let order = runtime
        .block_on(async { orders::testing::get_order(&mut orders.client().await, order_id).await });
    assert_eq!(order.user_id, user_id, "the order is the token's user's");
    let png = std::fs::read(artifacts_dir().join("swagger-ui-authorized.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
}

/// Chromium, Node.js and the npm project's node_modules, or a failure naming the
/// script that installs them: the test never skips.
fn preflight(root: &Path) {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    assert!(
        Path::new(&chromium).exists(),
        "no Chromium at {chromium}: {SETUP} (it installs Debian's chromium)"
    );
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|output| output.status.success()),
        "node does not run: {SETUP} (Node.js 20 or newer is needed)"
    );
    let playwright = root.join("tools/browser/node_modules/playwright-core/package.json");
    assert!(
        playwright.exists(),
        "{} is missing: {SETUP} (it runs npm ci in tools/browser)",
        playwright.display()
    );
}

/// `<target dir>/test-artifacts`, whatever `CARGO_TARGET_DIR` says.
fn artifacts_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let target = tmp.parent().unwrap_or(tmp);
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn workspace_root() -> PathBuf {
    manifest_dir().join("../../..").canonicalize().unwrap()
}
