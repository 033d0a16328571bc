//! The spans the services open, named and attributed as OpenTelemetry's semantic
//! conventions say for HTTP, RPC, databases and messaging, so a trace backend shows
//! them as it shows any other service's. With tracing off each is `Span::none()`:
//! nothing is recorded and nothing allocated.
//!
//! Every span has an empty `order.id` field, filled with [`record_order_id`] once the
//! order is known: the one attribute that finds an order's spans, also in a trace a
//! hop without headers started anew.

use tracing::{Span, field::Empty};

/// `{method} {route}`, kind server: one HTTP request the gateway answers.
pub fn http_server(method: &str, route: &str, path: &str) -> Span {
    if !crate::enabled() {
        return Span::none();
    }
    tracing::info_span!(
        "http.server",
        otel.name = format!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = Empty,
        otel.status_message = Empty,
        http.request.method = method,
        http.route = route,
        url.path = path,
        http.response.status_code = Empty,
        order.id = Empty,
    )
}

/// The answer's status; a 5xx marks the span as failed (a 4xx is the client's).
pub fn record_http_status(span: &Span, status: u16) {
    span.record("http.response.status_code", status);
    if status >= 500 {
        span.record("otel.status_code", "error");
    }
}

/// `{service}/{method}`, kind client: one gRPC call, one attempt.
pub fn rpc_client(service: &str, method: &str, server: &str) -> Span {
    if !crate::enabled() {
        return Span::none();
    }
    tracing::info_span!(
        "rpc.client",
        otel.name = format!("{service}/{method}"),
        otel.kind = "client",
        otel.status_code = Empty,
        otel.status_message = Empty,
        rpc.system = "grpc",
        rpc.service = service,
        rpc.method = method,
        server.address = server,
        rpc.grpc.status_code = Empty,
        order.id = Empty,
    )
}

/// `{service}/{method}`, kind server: one gRPC call served.
pub fn rpc_server(service: &str, method: &str) -> Span {
    if !crate::enabled() {
        return Span::none();
    }
    tracing::info_span!(
        "rpc.server",
        otel.name = format!("{service}/{method}"),
        otel.kind = "server",
        otel.status_code = Empty,
        otel.status_message = Empty,
        rpc.system = "grpc",
        rpc.service = service,
        rpc.method = method,
        rpc.grpc.status_code = Empty,
        order.id = Empty,
    )
}

/// The call's gRPC status code. `server_side`: only the codes that mean the server
/// failed (UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE,
/// DATA_LOSS) mark the span failed, as the conventions say; a client marks any code
/// but OK.
pub fn record_grpc_status(span: &Span, code: tonic::Code, server_side: bool) {
    span.record("rpc.grpc.status_code", code as i64);
    let failed = if server_side {
        matches!(
            code,
            tonic::Code::Unknown
                | tonic::Code::DeadlineExceeded
                | tonic::Code::Unimplemented
                | tonic::Code::Internal
                | tonic::Code::Unavailable
                | tonic::Code::DataLoss
        )
    } else {
        code != tonic::Code::Ok
    };
    if failed {
        span.record("otel.status_code", "error");
    }
}

/// `{operation} {table}`, kind client: a PostgreSQL statement (for orders, the group
/// commit that wrote this order with others: `db.operation.batch.size` of them).
pub fn database(operation: &str, table: &str) -> Span {
    if !crate::enabled() {
        return Span::none();
    }
    tracing::info_span!(
        "db.client",
        otel.name = format!("{operation} {table}"),
        otel.kind = "client",
        otel.status_code = Empty,
        otel.status_message = Empty,
        db.system.name = "postgresql",
        db.operation.name = operation,
        db.collection.name = table,
        db.operation.batch.size = Empty,
        order.id = Empty,
    )
}

/// `send {topic}`, kind producer: one outbox row published by a relay.
pub fn kafka_send(topic: &str, key: &str, event_id: i64) -> Span {
    if !crate::enabled() {
        return Span::none();
    }
    tracing::info_span!(
        "messaging.send",
        otel.name = format!("send {topic}"),
        otel.kind = "producer",
        otel.status_code = Empty,
        otel.status_message = Empty,
        messaging.system = "kafka",
        messaging.operation.type = "send",
        messaging.operation.name = "send",
        messaging.destination.name = topic,
        messaging.kafka.message.key = key,
        messaging.message.id = event_id,
        order.id = Empty,
    )
}

/// `process {topic}`, kind consumer: one Kafka message a consumer handles.
pub fn kafka_process(topic: &str, group: &str, partition: i32, offset: i64, key: &[u8]) -> Span {
    if !crate::enabled() {
        return Span::none();
    }
    tracing::info_span!(
        "messaging.process",
        otel.name = format!("process {topic}"),
        otel.kind = "consumer",
        otel.status_code = Empty,
        otel.status_message = Empty,
        messaging.system = "kafka",
        messaging.operation.type = "process",
        messaging.operation.name = "process",
        messaging.destination.name = topic,
        messaging.consumer.group.name = group,
        messaging.destination.partition.id = partition.to_string(),
        messaging.kafka.offset = offset,
        messaging.kafka.message.key = String::from_utf8_lossy(key).as_ref(),
        order.id = Empty,
    )
}

/// The order the span is about (see the module doc).
pub fn record_order_id(span: &Span, order_id: i64) {
    span.record("order.id", order_id);
}

/// Marks the span failed, with why.
pub fn record_error(span: &Span, error: &dyn std::fmt::Display) {
    span.record("otel.status_code", "error");
    span.record("otel.status_message", error.to_string());
}
