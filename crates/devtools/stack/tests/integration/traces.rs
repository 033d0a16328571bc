//! OpenTelemetry traces end to end: the five binaries export their spans to a real
//! OTLP receiver (`testkit::OtlpReceiver`, the OpenTelemetry protobuf service), and
//! one order is one trace from the caller's `traceparent` to orders' status update,
//! every parent link intact, on Apache Kafka 4.x with rdkafka (record headers carry
//! the context). On the `kafka` crate (no headers), the consumers start a new trace
//! that carries the order id. With no endpoint nothing is traced: no context is
//! stored, no log line has a trace id.

use std::{collections::BTreeMap, time::Duration};

use testkit::{OtlpReceiver, ReceivedSpan, Setup, http_request_with};

use crate::e2e::{Options, Platform};

const SPANS: Duration = Duration::from_secs(90);
/// The caller's trace: the gateway continues it.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// Every service's tracing settings, sending to `receiver` with `protocol`; spans
/// leave within 200 ms (the SDK's `OTEL_BSP_SCHEDULE_DELAY`) so the test is quick.
fn tracing_env(receiver: &OtlpReceiver, protocol: &str) -> Vec<(&'static str, String)> {
    vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.to_owned()),
        ("OTEL_BSP_SCHEDULE_DELAY", "200".to_owned()),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment=test".to_owned(),
        ),
        ("LOG_FORMAT", "json".to_owned()),
        // payments logs each decision at debug, inside the message's span.
        ("RUST_LOG", "info,payments=debug".to_owned()),
    ]
}

/// `POST /orders` with the caller's `traceparent`; the order id.
fn place_traced_order(platform: &Platform, user_id: i64) -> i64 {
    let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    let body = format!(
        r#"{{"user_id": {user_id}, "items": [{{"product_id": 7, "quantity": 2, "price": 150}}]}}"#
    );
    let (status, answer) = http_request_with(
        "POST",
        &format!("{}/orders", platform.gateway_url),
        &[("traceparent", &traceparent), ("tracestate", "vendor=1")],
        Some(&body),
    )
    .unwrap();
    assert_eq!(status, 200, "{answer}");
    serde_json::from_str::<serde_json::Value>(&answer).unwrap()["order_id"]
        .as_i64()
        .unwrap()
}

/// The platform on `setup`, tracing to `receiver` over `protocol`, with one order
/// placed with the caller's trace context and notified.
fn one_traced_order(setup: Setup, receiver: &OtlpReceiver, protocol: &str) -> (Platform, i64) {
    let options = Options::on(setup).with_env(tracing_env(receiver, protocol));
    let platform = Platform::start(setup.broker, options);
    let order_id = place_traced_order(&platform, 501);
    platform.wait_for_notifications(&[order_id]);
    (platform, order_id)
}

/// The one span of `service` named `name` among `spans`.
fn one<'s>(spans: &'s [ReceivedSpan], service: &str, name: &str) -> &'s ReceivedSpan {
    let found: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|span| span.service == service && span.name == name)
        .collect();
    assert_eq!(found.len(), 1, "one {service} span {name:?} in {spans:#?}");
    found[0]
}

fn has(spans: &[ReceivedSpan], service: &str, name: &str) -> bool {
    spans
        .iter()
        .any(|span| span.service == service && span.name == name)
}

#[test]
fn one_order_is_one_trace_across_every_hop_on_kafka_4_with_rdkafka() {
    let receiver = OtlpReceiver::start_grpc();
    let (platform, order_id) = one_traced_order(Setup::KAFKA_4_RDKAFKA, &receiver, "grpc");

    let order_topic = platform.wiring.order_topic.clone();
    let status_topic = platform.wiring.status_topic.clone();
    let (send_order, process_order) = (
        format!("send {order_topic}"),
        format!("process {order_topic}"),
    );
    let (send_status, process_status) = (
        format!("send {status_topic}"),
        format!("process {status_topic}"),
    );
    let rpc = "orders.v1.OrdersService/CreateOrder";
    let expected: Vec<(&str, &str)> = vec![
        ("gateway", "POST /orders"),
        ("gateway", rpc),
        ("orders", rpc),
        ("orders", "INSERT orders"),
        ("orders", &send_order),
        ("payments", &process_order),
        ("payments", &send_status),
        ("notifications", &process_status),
        ("orders", &process_status),
    ];
    let spans = receiver.wait_until(SPANS, |spans| {
        let ours: Vec<ReceivedSpan> = spans
            .iter()
            .filter(|span| span.trace_id == TRACE_ID)
            .cloned()
            .collect();
        expected
            .iter()
            .all(|(service, name)| has(&ours, service, name))
    });
    let ours: Vec<ReceivedSpan> = spans
        .into_iter()
        .filter(|span| span.trace_id == TRACE_ID)
        .collect();

    // Each hop's parent is the hop before it.
    let span = |service, name| one(&ours, service, name);
    let http = span("gateway", "POST /orders");
    assert_eq!(http.parent_span_id.as_deref(), Some(CALLER_SPAN));
    let links = [
        (("gateway", rpc), http),
        (("orders", rpc), span("gateway", rpc)),
        (("orders", "INSERT orders"), span("orders", rpc)),
        (
            ("orders", send_order.as_str()),
            span("orders", "INSERT orders"),
        ),
        (
            ("payments", process_order.as_str()),
            span("orders", &send_order),
        ),
        (
            ("payments", send_status.as_str()),
            span("payments", &process_order),
        ),
        (
            ("notifications", process_status.as_str()),
            span("payments", &send_status),
        ),
        (
            ("orders", process_status.as_str()),
            span("payments", &send_status),
        ),
    ];
    for ((service, name), parent) in links {
        let child = span(service, name);
        assert_eq!(
            child.parent_span_id.as_deref(),
            Some(parent.span_id.as_str()),
            "{service} {name:?} is a child of {} {:?}",
            parent.service,
            parent.name
        );
    }

    // The semantic conventions' kinds and attributes, and the order id everywhere.
    let kinds: BTreeMap<&str, &str> = [
        ("POST /orders", "server"),
        ("INSERT orders", "client"),
        (send_order.as_str(), "producer"),
        (process_order.as_str(), "consumer"),
    ]
    .into();
    for (name, kind) in kinds {
        assert!(
            ours.iter().any(|s| s.name == name && s.kind == kind),
            "{name} is {kind}"
        );
    }
    assert_eq!(http.attributes["http.request.method"], "POST");
    assert_eq!(http.attributes["http.route"], "/orders");
    assert_eq!(http.attributes["http.response.status_code"], "200");
    let server = span("orders", rpc);
    assert_eq!(server.kind, "server");
    assert_eq!(server.attributes["rpc.system"], "grpc");
    assert_eq!(server.attributes["rpc.grpc.status_code"], "0");
    let consumer = span("payments", &process_order);
    assert_eq!(consumer.attributes["messaging.system"], "kafka");
    assert_eq!(
        consumer.attributes["messaging.destination.name"],
        order_topic
    );
    assert_eq!(consumer.attributes["messaging.operation.type"], "process");
    assert_eq!(
        span("orders", "INSERT orders").attributes["db.system.name"],
        "postgresql"
    );
    for span in &ours {
        assert_eq!(span.resource["deployment.environment"], "test");
        assert!(
            !span.status_error,
            "{} {:?} failed",
            span.service, span.name
        );
        // The gateway's call that creates the order starts before its id exists (its
        // parent and child have it).
        if span.service == "gateway" && span.name == rpc {
            continue;
        }
        assert_eq!(
            span.attributes.get("order.id").map(String::as_str),
            Some(order_id.to_string().as_str()),
            "order.id on {} {:?}",
            span.service,
            span.name
        );
    }

    // The caller's tracestate went along; the outbox row kept the trace.
    let stored: String = platform
        .orders_db
        .client()
        .query_one(
            "SELECT trace_context FROM events WHERE message_key = $1",
            &[&order_id.to_string()],
        )
        .unwrap()
        .get(0);
    assert!(
        stored.contains(TRACE_ID) && stored.ends_with(" vendor=1"),
        "{stored}"
    );

    // JSON log lines inside a span carry its ids (payments' decision, at debug).
    let logged = [
        &platform.orders,
        &platform.payments,
        &platform.notifications,
        &platform.gateway,
    ]
    .iter()
    .any(|process| {
        process
            .log()
            .contains(&format!("\"trace_id\":\"{TRACE_ID}\""))
    });
    assert!(logged, "a JSON log line with the trace id");
}

#[test]
fn on_the_kafka_crate_over_otlp_http_each_consumer_starts_a_trace_with_the_order_id() {
    let receiver = OtlpReceiver::start_http();
    let (platform, order_id) = one_traced_order(Setup::DEVBROKER_KAFKA, &receiver, "http/protobuf");
    let order_topic = platform.wiring.order_topic.clone();
    let process_order = format!("process {order_topic}");
    let spans = receiver.wait_until(SPANS, |spans| {
        has(spans, "orders", &format!("send {order_topic}"))
            && has(spans, "payments", &process_order)
    });
    // Up to the relay, the caller's trace.
    let send = one(&spans, "orders", &format!("send {order_topic}"));
    assert_eq!(send.trace_id, TRACE_ID);
    // No headers on this client: payments starts a trace of its own, found by the
    // order id.
    let process = one(&spans, "payments", &process_order);
    assert_ne!(process.trace_id, TRACE_ID);
    assert_eq!(process.parent_span_id, None);
    assert_eq!(process.attributes["order.id"], order_id.to_string());
    assert!(receiver.requests() > 0);
}

#[test]
fn without_an_endpoint_nothing_is_traced_or_stored() {
    let setup = Setup::DEVBROKER_KAFKA;
    let platform = Platform::start(setup.broker, Options::on(setup));
    let order_id = place_traced_order(&platform, 503);
    platform.wait_for_notifications(&[order_id]);
    let traced: i64 = platform
        .orders_db
        .count("SELECT count(*) FROM events WHERE trace_context IS NOT NULL");
    assert_eq!(traced, 0, "no trace context in orders' outbox");
    let traced: i64 = platform
        .payments_db
        .count("SELECT count(*) FROM events WHERE trace_context IS NOT NULL");
    assert_eq!(traced, 0, "no trace context in payments' outbox");
    for process in [
        &platform.orders,
        &platform.payments,
        &platform.notifications,
        &platform.gateway,
    ] {
        let log = process.log();
        assert!(!log.contains("trace_id"), "{log}");
        assert!(!log.contains(TRACE_ID), "{log}");
    }
}
