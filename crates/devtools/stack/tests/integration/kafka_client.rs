//! `KAFKA_CLIENT` as the service binaries take it: an unknown value, and a service's
//! partition list (`ORDERS_KAFKA_PARTITIONS`, ...) together with `rdkafka`, stop
//! orders, payments and notifications at start-up with a message naming the variable
//! and what is accepted; with
//! `rdkafka` and no broker reachable a worker stays up, not ready, retrying, and still
//! stops at once on SIGTERM.

use std::time::{Duration, Instant};

use testkit::{
    ServiceProcess, assert_setting_refused, binary, free_port, http_get_status, redis_url,
};

/// What each service needs to get as far as reading its configuration.
fn base_env(service: &str) -> Vec<(&'static str, String)> {
    let port = || format!("127.0.0.1:{}", free_port());
    match service {
        "orders" => vec![("ORDERS_GRPC_ADDR", port()), ("ORDERS_HEALTH_ADDR", port())],
        "payments" => vec![("PAYMENTS_HEALTH_ADDR", port())],
        _ => vec![("NOTIFICATIONS_HEALTH_ADDR", port())],
    }
}

#[test]
fn an_unknown_client_or_partitions_with_rdkafka_stop_every_service() {
    for service in ["orders", "payments", "notifications"] {
        let env = base_env(service);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let partitions = format!("{}_KAFKA_PARTITIONS", service.to_ascii_uppercase());
        assert_setting_refused(
            &binary(service),
            &[&partitions],
            &env,
            ("KAFKA_CLIENT", "librdkafka", "accepts kafka"),
        );
        let mut with_rdkafka = env.clone();
        with_rdkafka.push(("KAFKA_CLIENT", "rdkafka"));
        assert_setting_refused(
            &binary(service),
            &[],
            &with_rdkafka,
            (&partitions, "0,1", "consumer group"),
        );
    }
}

#[test]
fn with_rdkafka_an_unreachable_broker_leaves_the_worker_up_unready_and_stoppable() {
    let dead = format!("127.0.0.1:{}", free_port());
    let health = format!("127.0.0.1:{}", free_port());
    let redis = redis_url();
    let redis_addr = redis.trim_start_matches("redis://").trim_end_matches('/');
    let mut worker = ServiceProcess::spawn(
        "notifications",
        &[],
        &[
            ("NOTIFICATIONS_HEALTH_ADDR", health.clone()),
            ("KAFKA_BROKERS", dead),
            ("KAFKA_CLIENT", "rdkafka".to_owned()),
            ("REDIS_ADDR", redis_addr.to_owned()),
        ],
    );
    let start = Instant::now();
    while http_get_status(&format!("http://{health}/healthz")) != Some(200) {
        assert!(start.elapsed() < Duration::from_secs(30), "never live");
        worker.assert_running();
        std::thread::sleep(Duration::from_millis(100));
    }
    // Not ready while the broker is away, and still running after a few retries.
    for _ in 0..3 {
        std::thread::sleep(Duration::from_secs(1));
        worker.assert_running();
        assert_eq!(
            http_get_status(&format!("http://{health}/readyz")),
            Some(503)
        );
    }
    let stopping = Instant::now();
    let status = worker.terminate(Duration::from_secs(15));
    assert!(status.success(), "{status:?}\n{}", worker.log());
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "SIGTERM took {:?}",
        stopping.elapsed()
    );
}
