//! `GATEWAY_AUTH=jwt` against a real gateway and orders on PostgreSQL, with tokens
//! signed here (jsonwebtoken) and keys served as a JWKS over HTTP by the test: every
//! bad token is 401 with `WWW-Authenticate: Bearer error="invalid_token"` and a
//! message that names the problem but not the token; a user creates and reads only
//! its own orders (another's is 404 exactly like a missing one, a body naming another
//! user 403); idempotency keys are per user; keys rotate without a restart; the
//! per-user limit is 429 with `Retry-After`. Each refusal writes nothing.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use orders::testing::{Orders, with_orders};
use serde_json::{Value, json};
use testkit::TestDatabase;
use warp::{Filter, Reply};

use crate::common::{self, Gateway};

const ISSUER: &str = "https://issuer.test";
const AUDIENCE: &str = "orders-api";
const HS256_SECRET: &str = "a-test-secret-of-at-least-32-bytes!!";
const ORDER_OF_7: &str =
    r#"{"user_id": 7, "items": [{"product_id": 1, "quantity": 2, "price": 150}]}"#;
const ITEMS_ONLY: &str = r#"{"items": [{"product_id": 1, "quantity": 2, "price": 150}]}"#;
const RSA_PEM: &str = include_str!("../fixtures/rsa-test-key.pem");
const RSA_JWK: &str = include_str!("../fixtures/rsa-test-key.jwk.json");

/// An ES256 key made in the test, with its public JWK.
struct EcKey {
    kid: &'static str,
    encoding: EncodingKey,
    jwk: Value,
}

impl EcKey {
    fn new(kid: &'static str) -> Self {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        // Uncompressed point: 0x04 || x || y.
        let point = pair.public_key_raw();
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        });
        let encoding = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap();
        Self { kid, encoding, jwk }
    }

    fn token(&self, claims: &Value) -> String {
        sign(Algorithm::ES256, Some(self.kid), claims, &self.encoding)
    }
}

/// An Ed25519 key made in the test: its public JWK and its signing key.
fn ed25519_key(kid: &str) -> (Value, EncodingKey) {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let jwk = json!({
        "kty": "OKP", "crv": "Ed25519", "kid": kid,
        "x": URL_SAFE_NO_PAD.encode(pair.public_key_raw()),
    });
    let signing = EncodingKey::from_ed_pem(pair.serialize_pem().as_bytes()).unwrap();
    (jwk, signing)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Valid claims of `user`, with `changes` applied (`null` removes a claim).
fn claims(user: Value, changes: Value) -> Value {
    let mut claims = json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": user,
        "iat": now(), "exp": now() + 600,
    });
    for (name, value) in changes.as_object().unwrap() {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(name);
        } else {
            claims[name] = value.clone();
        }
    }
    claims
}

fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

/// A token of `header` (raw JSON) with no signature, as `alg: none` tokens are.
fn unsigned(header: &str, claims: &Value) -> String {
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// A JWKS served over HTTP by the test; its keys can be replaced while it runs.
struct JwksServer {
    addr: SocketAddr,
    keys: Arc<Mutex<Vec<Value>>>,
}

impl JwksServer {
    async fn start(keys: Vec<Value>) -> Self {
        let keys = Arc::new(Mutex::new(keys));
        let served = keys.clone();
        let route = warp::path!("jwks.json").map(move || {
            warp::reply::json(&json!({ "keys": *served.lock().unwrap() })).into_response()
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(ops_http::serve_http(
            warp::service(route),
            listener,
            ops_http::HttpTimeouts::default(),
            std::future::pending(),
        ));
        Self { addr, keys }
    }

    fn url(&self) -> String {
        format!("http://{}/jwks.json", self.addr)
    }

    fn replace(&self, keys: Vec<Value>) {
        *self.keys.lock().unwrap() = keys;
    }
}

/// The test gateway's settings with `GATEWAY_AUTH=jwt` and quick key refreshes.
fn jwt_config(orders: &Orders, keys: &str) -> gateway::Config {
    let mut config = common::gateway_config(&orders.grpc_addr.to_string(), Duration::from_secs(5));
    config.gateway_auth = "jwt".to_owned();
    if keys.starts_with("http") {
        config.gateway_jwt_jwks = keys.to_owned();
    } else {
        config.gateway_jwt_hs256_secret = settings::Secret::new(keys);
    }
    config.gateway_jwt_issuer = ISSUER.to_owned();
    config.gateway_jwt_audience = AUDIENCE.to_owned();
    config.gateway_jwt_jwks_refresh = settings::GoDuration::from_secs(1);
    config.gateway_jwt_jwks_cooldown = settings::GoDuration::from_secs(1);
    config
}

/// An answer with the headers the security answers carry.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: Value,
    challenge: Option<String>,
    retry_after: Option<String>,
}

async fn send(
    gateway: &Gateway,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Answer {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = http.request(method, gateway.url(path));
    if let Some(token) = token {
        request = request.header("authorization", token);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_owned());
    }
    let response = request.send().await.unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|value| value.to_str().unwrap().to_owned())
    };
    let (challenge, retry_after) = (header("www-authenticate"), header("retry-after"));
    let status = response.status().as_u16();
    let body = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap_or(Value::Null);
    Answer {
        status,
        body,
        challenge,
        retry_after,
    }
}

/// `POST /orders` with `body`, sending `authorization`.
async fn post(gateway: &Gateway, authorization: &str, body: &str) -> Answer {
    send(gateway, "POST", "/orders", Some(authorization), Some(body)).await
}

/// `GET path`, sending `authorization`.
async fn get(gateway: &Gateway, authorization: &str, path: &str) -> Answer {
    send(gateway, "GET", path, Some(authorization), None).await
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Orders stored (the synchronous client, off the runtime's worker).
fn order_count(db: &TestDatabase) -> i64 {
    tokio::task::block_in_place(|| db.count("SELECT count(*) FROM orders"))
}

#[test]
fn every_bad_token_is_401_naming_the_problem_and_writes_nothing() {
    with_orders("gateway_jwt_bad", async |orders, db| {
        let ec = EcKey::new("ec-1");
        let rsa_jwk: Value = serde_json::from_str(RSA_JWK).unwrap();
        let (ed_jwk, ed) = ed25519_key("ed-1");
        let jwks = JwksServer::start(vec![ec.jwk.clone(), rsa_jwk, ed_jwk]).await;
        let gateway = Gateway::start(jwt_config(&orders, &jwks.url())).await;
        let rsa = EncodingKey::from_rsa_pem(RSA_PEM.as_bytes()).unwrap();

        // Valid tokens of each key type pass (the cases below differ in one thing).
        for token in [
            ec.token(&claims(json!("7"), json!({}))),
            sign(
                Algorithm::EdDSA,
                Some("ed-1"),
                &claims(json!("7"), json!({})),
                &ed,
            ),
            sign(
                Algorithm::RS256,
                Some("rsa-1"),
                &claims(json!(7), json!({})),
                &rsa,
            ),
        ] {
            let ok = post(&gateway, &bearer(&token), ORDER_OF_7).await;
            assert_eq!(ok.status, 200, "{ok:?}");
        }
        let written = order_count(db);
        assert_eq!(written, 3);

        let impostor = EcKey::new("ec-1");
        // The RSA public key as an HMAC secret: the classic algorithm-confusion forgery.
        let rsa_public = rsa_public_pem();
        let cases: Vec<(&str, Option<String>, &str)> = vec![
            ("no token", None, "missing bearer token"),
            (
                "another scheme",
                Some("Basic dXNlcjpwYXNz".into()),
                "Bearer scheme",
            ),
            (
                "malformed",
                Some(bearer("not-a-jwt")),
                "three base64url parts",
            ),
            (
                "bad signature",
                Some(bearer(&impostor.token(&claims(json!("7"), json!({}))))),
                "bad signature",
            ),
            (
                "alg none",
                Some(bearer(&unsigned(
                    r#"{"alg":"none","kid":"ec-1"}"#,
                    &claims(json!("7"), json!({})),
                ))),
                "alg: none",
            ),
            (
                "HS256 against the RSA key",
                Some(bearer(&sign(
                    Algorithm::HS256,
                    Some("rsa-1"),
                    &claims(json!("7"), json!({})),
                    &EncodingKey::from_secret(rsa_public.as_bytes()),
                ))),
                "algorithm HS256 is not one its key verifies",
            ),
            (
                "expired",
                Some(bearer(
                    &ec.token(&claims(json!("7"), json!({"exp": now() - 3600}))),
                )),
                "token expired",
            ),
            (
                "not yet valid",
                Some(bearer(
                    &ec.token(&claims(json!("7"), json!({"nbf": now() + 3600}))),
                )),
                "not valid yet",
            ),
            (
                "wrong issuer",
                Some(bearer(&ec.token(&claims(
                    json!("7"),
                    json!({"iss": "https://evil.test"}),
                )))),
                "wrong issuer",
            ),
            (
                "wrong audience",
                Some(bearer(
                    &ec.token(&claims(json!("7"), json!({"aud": "other-api"}))),
                )),
                "wrong audience",
            ),
            (
                "no issuer",
                Some(bearer(&ec.token(&claims(json!("7"), json!({"iss": null}))))),
                "no `iss` claim",
            ),
            (
                "user claim missing",
                Some(bearer(&ec.token(&claims(json!("7"), json!({"sub": null}))))),
                "no `sub` claim",
            ),
            (
                "user claim not an integer",
                Some(bearer(&ec.token(&claims(json!("alice"), json!({}))))),
                "not a positive integer",
            ),
            (
                "unknown key",
                Some(bearer(
                    &EcKey::new("ec-9").token(&claims(json!("7"), json!({}))),
                )),
                "not one of the trusted keys",
            ),
        ];
        for (case, header, expected) in cases {
            for (method, path, body) in [
                ("POST", "/orders", Some(ORDER_OF_7)),
                ("GET", "/orders/1", None),
            ] {
                let answer = send(&gateway, method, path, header.as_deref(), body).await;
                assert_eq!(answer.status, 401, "{case}: {answer:?}");
                assert_eq!(answer.body["code"], "Unauthenticated", "{case}: {answer:?}");
                let message = answer.body["error"].as_str().unwrap();
                assert!(message.contains(expected), "{case}: {message}");
                if let Some(header) = &header {
                    let token = header.split(' ').next_back().unwrap();
                    assert!(
                        !message.contains(token),
                        "{case}: the message repeats the token"
                    );
                }
                assert_eq!(
                    answer.challenge.as_deref(),
                    Some(r#"Bearer error="invalid_token""#),
                    "{case}"
                );
            }
        }
        assert_eq!(
            order_count(db),
            written,
            "a refused request wrote something"
        );
        let metrics = gateway.text("/metrics").await;
        assert!(
            metrics.contains(r#"gateway_auth_requests_total{outcome="unauthenticated"} 28"#),
            "{metrics}"
        );
        assert!(
            metrics.contains(r#"gateway_auth_requests_total{outcome="authenticated"} 3"#),
            "{metrics}"
        );
    });
}

/// The SubjectPublicKeyInfo PEM of the test RSA key, as an attacker would find it.
fn rsa_public_pem() -> String {
    let output = std::process::Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/rsa-test-key.pem"
        ))
        .output()
        .expect("openssl (Debian's openssl package) makes the public key");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn a_user_creates_and_reads_only_its_own_orders() {
    with_orders("gateway_jwt_owner", async |orders, db| {
        let ec = EcKey::new("ec-1");
        let jwks = JwksServer::start(vec![ec.jwk.clone()]).await;
        let gateway = Gateway::start(jwt_config(&orders, &jwks.url())).await;
        let seven = bearer(&ec.token(&claims(json!("7"), json!({}))));
        let eight = bearer(&ec.token(&claims(json!(8), json!({}))));

        // user_id may be left out: the token's user is the order's.
        let created = post(&gateway, &seven, ITEMS_ONLY).await;
        assert_eq!(created.status, 200, "{created:?}");
        let id = created.body["order_id"].as_i64().unwrap();
        let own = get(&gateway, &seven, &format!("/orders/{id}")).await;
        assert_eq!(
            (own.status, own.body["order"]["user_id"].as_i64()),
            (200, Some(7))
        );
        assert_eq!(post(&gateway, &seven, ORDER_OF_7).await.status, 200);

        // Another user's id in the body: 403, nothing written.
        let before = order_count(db);
        let forbidden = post(&gateway, &eight, ORDER_OF_7).await;
        assert_eq!(
            (forbidden.status, forbidden.body["code"].as_str()),
            (403, Some("PermissionDenied")),
            "{forbidden:?}"
        );
        assert!(
            forbidden.body["error"]
                .as_str()
                .unwrap()
                .contains("user_id 7")
        );
        assert_eq!(order_count(db), before);

        // Another user's order is 404 with the very body of a missing one.
        let theirs = get(&gateway, &eight, &format!("/orders/{id}")).await;
        let missing_id = id + 1000;
        let missing = get(&gateway, &eight, &format!("/orders/{missing_id}")).await;
        assert_eq!(theirs.status, 404, "{theirs:?}");
        assert_eq!(
            theirs.body,
            json!({"error": format!("order {id} not found"), "code": "NotFound"})
        );
        assert_eq!(missing.status, 404);
        assert_eq!(
            missing.body,
            json!({"error": format!("order {missing_id} not found"), "code": "NotFound"})
        );

        // An idempotency key is the user's own: the same key and body from another
        // user is another order, not a replay of the first.
        let keyed = |token: String| {
            let gateway = &gateway;
            async move {
                let http = reqwest::Client::builder().no_proxy().build().unwrap();
                let response = http
                    .post(gateway.url("/orders"))
                    .header("authorization", token)
                    .header("idempotency-key", "same-key")
                    .header("content-type", "application/json")
                    .body(ITEMS_ONLY)
                    .send()
                    .await
                    .unwrap();
                let replayed = response.headers().get("idempotent-replayed").is_some();
                let body: Value = response.json().await.unwrap();
                (body["order_id"].as_i64().unwrap(), replayed)
            }
        };
        let (first, _) = keyed(seven.clone()).await;
        assert_eq!(keyed(seven.clone()).await, (first, true));
        let (other, replayed) = keyed(eight.clone()).await;
        assert!(
            other != first && !replayed,
            "user 8 got user 7's keyed order"
        );
        let got = get(&gateway, &eight, &format!("/orders/{other}")).await;
        assert_eq!(got.body["order"]["user_id"], 8);
    });
}

#[test]
fn an_hs256_secret_verifies_hs256_tokens_only() {
    with_orders("gateway_jwt_hs256", async |orders, db| {
        let gateway = Gateway::start(jwt_config(&orders, HS256_SECRET)).await;
        let secret = EncodingKey::from_secret(HS256_SECRET.as_bytes());
        let good = sign(
            Algorithm::HS256,
            None,
            &claims(json!("7"), json!({})),
            &secret,
        );
        let created = post(&gateway, &bearer(&good), ITEMS_ONLY).await;
        assert_eq!(created.status, 200, "{created:?}");

        let ec = EcKey::new("ec-1");
        let wrong_alg = post(
            &gateway,
            &bearer(&ec.token(&claims(json!("7"), json!({})))),
            ITEMS_ONLY,
        )
        .await;
        assert_eq!(wrong_alg.status, 401);
        assert!(
            wrong_alg.body["error"]
                .as_str()
                .unwrap()
                .contains("algorithm ES256 is not one its key verifies (HS256)"),
            "{wrong_alg:?}"
        );
        let other_secret = EncodingKey::from_secret(b"another-secret-of-at-least-32-bytes!!");
        let forged = sign(
            Algorithm::HS256,
            None,
            &claims(json!("7"), json!({})),
            &other_secret,
        );
        let forged = post(&gateway, &bearer(&forged), ITEMS_ONLY).await;
        assert_eq!(
            (forged.status, forged.body["error"].as_str()),
            (401, Some("bad signature"))
        );
        assert_eq!(order_count(db), 1);
    });
}

#[test]
fn keys_rotate_without_a_restart() {
    with_orders("gateway_jwt_rotate", async |orders, _db| {
        let (old, new) = (EcKey::new("old"), EcKey::new("new"));
        let jwks = JwksServer::start(vec![old.jwk.clone()]).await;
        let gateway = Gateway::start(jwt_config(&orders, &jwks.url())).await;
        let old_token = bearer(&old.token(&claims(json!("7"), json!({}))));
        let new_token = bearer(&new.token(&claims(json!("7"), json!({}))));
        let status = |token: String| {
            let gateway = &gateway;
            async move { get(gateway, &token, "/orders/1").await.status }
        };
        // 404: authenticated, and there is no order 1.
        assert_eq!(status(old_token.clone()).await, 404);
        assert_eq!(
            status(new_token.clone()).await,
            401,
            "the new key is not published yet"
        );

        // Published: a token naming it is accepted once the cooldown has passed.
        jwks.replace(vec![old.jwk.clone(), new.jwk.clone()]);
        testkit::wait_until_async(
            Duration::from_secs(15),
            "the new key to be accepted",
            || async { (status(new_token.clone()).await == 404).then_some(()) },
        )
        .await;
        // Withdrawn: the next refresh drops the old key.
        jwks.replace(vec![new.jwk.clone()]);
        testkit::wait_until_async(
            Duration::from_secs(15),
            "the old key to be refused",
            || async { (status(old_token.clone()).await == 401).then_some(()) },
        )
        .await;
        assert_eq!(status(new_token.clone()).await, 404);
    });
}

#[test]
fn a_user_past_its_limit_gets_429_with_retry_after_and_others_do_not() {
    with_orders("gateway_jwt_rate", async |orders, db| {
        let mut config = jwt_config(&orders, HS256_SECRET);
        config.gateway_user_rate = "1/m".parse().unwrap();
        config.gateway_user_burst = 2;
        let gateway = Gateway::start(config).await;
        let secret = EncodingKey::from_secret(HS256_SECRET.as_bytes());
        let token = |user: i64| {
            bearer(&sign(
                Algorithm::HS256,
                None,
                &claims(json!(user), json!({})),
                &secret,
            ))
        };

        for _ in 0..2 {
            assert_eq!(post(&gateway, &token(7), ITEMS_ONLY).await.status, 200);
        }
        let limited = post(&gateway, &token(7), ITEMS_ONLY).await;
        assert_eq!(
            (limited.status, limited.body["code"].as_str()),
            (429, Some("ResourceExhausted")),
            "{limited:?}"
        );
        let retry_after: u64 = limited.retry_after.as_deref().unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry_after), "{limited:?}");
        assert_eq!(get(&gateway, &token(7), "/orders/1").await.status, 429);
        assert_eq!(order_count(db), 2, "the limited request wrote nothing");
        // Another user has a limit of its own.
        assert_eq!(post(&gateway, &token(8), ITEMS_ONLY).await.status, 200);
        let metrics = gateway.text("/metrics").await;
        assert!(
            metrics.contains(r#"gateway_auth_requests_total{outcome="rate_limited"} 2"#),
            "{metrics}"
        );
    });
}

#[test]
fn the_gateway_names_the_owner_as_orders_reads_it() {
    assert_eq!(gateway::auth::OWNER_METADATA, orders::OWNER_METADATA);
}
