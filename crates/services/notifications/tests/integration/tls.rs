//! Redis over TLS: a private `redis-server` with `--tls-port` only and a certificate
//! for `localhost` made in the test; the sink is built from the worker's own
//! configuration (`REDIS_ADDR`, `REDIS_TLS`, `REDIS_TLS_CA`).

use std::path::PathBuf;

use contracts::{Notification, PaymentOutcome};
use notifications::{Config, RedisSettings, RedisSink};
use testkit::{TestCerts, TlsRedis, unique_name};

fn sink(config: &Config) -> Result<RedisSink, String> {
    let config = config.clone().check().map_err(|err| err.to_string())?;
    let (host, port) = config.redis_host_port().map_err(|err| err.to_string())?;
    RedisSink::new(RedisSettings {
        host,
        port,
        db: 0,
        user: None,
        password: None,
        ttl: config.ttl(),
        key_prefix: format!("{}:", unique_name("tls")),
        tls: config.redis_tls_settings().map_err(|err| err.to_string())?,
        connect_timeout: config.redis_dial_timeout(),
        io_timeout: config.redis_io_timeout(),
    })
    .map_err(|err| err.to_string())
}

fn notification(order_id: i64) -> Notification {
    Notification {
        order_id,
        user_id: 7,
        order_status: PaymentOutcome::Succeeded,
    }
}

/// Reads `key` back over TLS with the test CA.
fn get(port: u16, ca: &PathBuf, key: &str) -> (Option<String>, i64) {
    let client = redis::Client::build_with_tls(
        format!("rediss://localhost:{port}"),
        redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(std::fs::read(ca).unwrap()),
        },
    )
    .unwrap();
    let mut connection = client.get_connection().unwrap();
    let value = redis::cmd("GET").arg(key).query(&mut connection).unwrap();
    let ttl = redis::cmd("PTTL").arg(key).query(&mut connection).unwrap();
    (value, ttl)
}

#[test]
fn notifications_are_stored_over_tls_and_a_wrong_certificate_is_refused() {
    let certs = TestCerts::for_names(&["localhost"]);
    let server = TlsRedis::start(&certs);
    let port = server.port();

    // rediss:// with the private CA.
    let config = Config {
        redis_addr: format!("rediss://localhost:{port}"),
        redis_tls_ca: Some(certs.ca()),
        ..Config::default()
    };
    let mut tls_sink = sink(&config).unwrap();
    tls_sink.ping().unwrap();
    tls_sink.store(&notification(41)).unwrap();
    let (value, ttl) = get(port, &certs.ca(), &tls_sink.key(41));
    assert_eq!(
        value.as_deref(),
        Some(r#"{"order_id":41,"user_id":7,"order_status":"succeeded"}"#)
    );
    assert!(ttl > 0, "PTTL {ttl}");

    // REDIS_TLS=true with a plain host:port.
    let config = Config {
        redis_addr: format!("localhost:{port}"),
        redis_tls: true,
        redis_tls_ca: Some(certs.ca()),
        ..Config::default()
    };
    let mut switch_sink = sink(&config).unwrap();
    switch_sink.store(&notification(42)).unwrap();
    assert!(get(port, &certs.ca(), &switch_sink.key(42)).0.is_some());

    // The certificate names localhost, not 127.0.0.1.
    let config = Config {
        redis_addr: format!("rediss://127.0.0.1:{port}"),
        redis_tls_ca: Some(certs.ca()),
        ..Config::default()
    };
    let err = sink(&config)
        .unwrap()
        .store(&notification(43))
        .unwrap_err()
        .to_string();
    assert!(err.contains("rediss://127.0.0.1"), "{err}");
    assert!(err.contains("not valid for name"), "{err}");

    // Without REDIS_TLS_CA the system's trust store does not know the test CA.
    let config = Config {
        redis_addr: format!("rediss://localhost:{port}"),
        ..Config::default()
    };
    let err = sink(&config).unwrap().ping().unwrap_err().to_string();
    assert!(err.contains("UnknownIssuer"), "{err}");

    // Plain TCP to a TLS-only server does not get an answer it accepts.
    let config = Config {
        redis_addr: format!("localhost:{port}"),
        ..Config::default()
    };
    assert!(sink(&config).unwrap().ping().is_err());
}
