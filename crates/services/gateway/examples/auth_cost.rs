//! What `GATEWAY_AUTH=jwt` costs: the gateway's rate of `GET /orders/{id}` with no
//! authentication, with an HS256 token, with an ES256 token (a JWKS file), and with
//! ES256 tokens that are each new to the gateway (so every request pays the
//! signature check its verified-token cache otherwise saves), side by side in one run
//! against one orders on a local PostgreSQL, rounds interleaved so a noisy neighbour
//! hurts every mode alike.
//!
//! ```sh
//! cargo run --release -p gateway --example auth_cost -- --seconds 5 --rounds 3 --concurrency 32
//! ```
//!
//! Needs PostgreSQL on 127.0.0.1:5432 (`scripts/setup-test-tools.sh` starts it).
//! Reads measure the gateway's own work best: a create is bound by the database's
//! commit, which no gateway setting changes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use orders::testing::{Orders, config as orders_config};
use serde_json::json;
use settings::{GoDuration, Secret};
use testkit::TestDatabase;
use tokio_util::sync::CancellationToken;

const SECRET: &str = "a-bench-secret-of-at-least-32-bytes!!";
const ISSUER: &str = "https://issuer.bench";
const AUDIENCE: &str = "orders-api";

struct Args {
    seconds: u64,
    rounds: u32,
    concurrency: usize,
}

fn args() -> Args {
    let mut args = Args {
        seconds: 5,
        rounds: 3,
        concurrency: 32,
    };
    let mut words = std::env::args().skip(1);
    while let Some(flag) = words.next() {
        let value = words.next().unwrap_or_default();
        let number = |what: &str| -> u64 {
            value
                .parse()
                .unwrap_or_else(|_| panic!("{what} takes a whole number, got {value:?}"))
        };
        match flag.as_str() {
            "--seconds" => args.seconds = number("--seconds"),
            "--rounds" => args.rounds = u32::try_from(number("--rounds")).unwrap(),
            "--concurrency" => args.concurrency = usize::try_from(number("--concurrency")).unwrap(),
            other => panic!("unknown flag {other}; flags: --seconds N --rounds N --concurrency N"),
        }
    }
    args
}

/// Tokens that are each new to the gateway, for the uncached mode: more than all
/// rounds of one run use.
const FRESH_TOKENS: usize = 60_000;

fn claims(serial: usize) -> serde_json::Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "7", "exp": now + 3600, "jti": serial})
}

/// A gateway in front of `orders` with `mode`'s settings, and the `Authorization`
/// values its clients send in turn (none: no header).
async fn gateway(
    orders: &Orders,
    mode: &str,
    jwks_file: &str,
    es256: &EncodingKey,
    stop: &CancellationToken,
) -> (String, Arc<Vec<String>>) {
    let mut config = gateway::Config {
        gateway_http_addr: "127.0.0.1:0".parse().unwrap(),
        orders_grpc_addr: orders.grpc_addr.to_string().parse().unwrap(),
        gateway_max_in_flight: 4096,
        ..gateway::Config::default()
    };
    let es256_token = |serial: usize| {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("bench".into());
        let token = jsonwebtoken::encode(&header, &claims(serial), es256).unwrap();
        format!("Bearer {token}")
    };
    let tokens = match mode {
        "none" => Vec::new(),
        "jwt HS256" => {
            config.gateway_jwt_hs256_secret = Secret::new(SECRET);
            let key = EncodingKey::from_secret(SECRET.as_bytes());
            let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims(0), &key);
            vec![format!("Bearer {}", token.unwrap())]
        }
        "jwt ES256" => {
            config.gateway_jwt_jwks = jwks_file.to_owned();
            vec![es256_token(0)]
        }
        _ => {
            config.gateway_jwt_jwks = jwks_file.to_owned();
            (1..=FRESH_TOKENS).map(es256_token).collect()
        }
    };
    if !tokens.is_empty() {
        config.gateway_auth = "jwt".into();
        config.gateway_jwt_issuer = ISSUER.into();
        config.gateway_jwt_audience = AUDIENCE.into();
        config.gateway_jwt_jwks_refresh = GoDuration::from_secs(3600);
    }
    let running = gateway::start(config, stop.clone()).await.unwrap();
    (format!("http://{}", running.http_addr), Arc::new(tokens))
}

/// Closed-loop `GET /orders/{id}` from `concurrency` clients for `seconds`: answers a second.
async fn rate(
    base: &str,
    tokens: &Arc<Vec<String>>,
    next: &Arc<AtomicUsize>,
    order_id: i64,
    args: &Args,
) -> f64 {
    let done = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let url = format!("{base}/orders/{order_id}");
    let mut clients = Vec::new();
    for _ in 0..args.concurrency {
        let (done, answered, url) = (done.clone(), answered.clone(), url.clone());
        let (tokens, next) = (tokens.clone(), next.clone());
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::builder().no_proxy().build().unwrap();
            while !done.load(Ordering::Relaxed) {
                let mut request = http.get(&url);
                if !tokens.is_empty() {
                    let index = next.fetch_add(1, Ordering::Relaxed) % tokens.len();
                    request = request.header("authorization", &tokens[index]);
                }
                let response = request.send().await.unwrap();
                assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
                response.bytes().await.unwrap();
                answered.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    done.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    answered.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let args = args();
    let db = TestDatabase::new("gateway_auth_bench");
    testkit::runtime().block_on(async {
        let stop = CancellationToken::new();
        let orders = Orders::start(orders_config(db.dsn())).await;
        orders.wait_ready().await;
        let order_id = orders
            .create(orders::testing::request(
                7,
                vec![orders::testing::item(1, 2, 150)],
            ))
            .await;

        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let point = pair.public_key_raw();
        let jwks = json!({"keys": [{
            "kty": "EC", "crv": "P-256", "kid": "bench",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        }]});
        let jwks_file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(jwks_file.path(), jwks.to_string()).unwrap();
        let es256 = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap();

        let modes = [
            "none",
            "jwt HS256",
            "jwt ES256",
            "jwt ES256, each token new",
        ];
        let mut gateways = Vec::new();
        for mode in modes {
            let path = jwks_file.path().to_str().unwrap();
            gateways.push(gateway(&orders, mode, path, &es256, &stop).await);
        }
        println!(
            "GET /orders/{{id}}, {} clients, {} s a run, {} rounds interleaved",
            args.concurrency, args.seconds, args.rounds
        );
        let mut totals = [0.0; 4];
        let nexts: Vec<_> = modes
            .iter()
            .map(|_| Arc::new(AtomicUsize::new(0)))
            .collect();
        for round in 1..=args.rounds {
            for (index, (base, tokens)) in gateways.iter().enumerate() {
                let rate = rate(base, tokens, &nexts[index], order_id, &args).await;
                totals[index] += rate;
                println!("round {round}  {:<26} {rate:>8.0} requests/s", modes[index]);
            }
        }
        println!(
            "| mode | requests/s (mean of {} rounds) | x none |",
            args.rounds
        );
        println!("|---|---|---|");
        for (index, mode) in modes.iter().enumerate() {
            let mean = totals[index] / f64::from(args.rounds);
            println!("| {mode} | {mean:.0} | {:.2} |", totals[index] / totals[0]);
        }
        stop.cancel();
    });
}
