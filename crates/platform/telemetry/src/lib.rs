//! `telemetry`: OpenTelemetry traces across every hop of an order.
//!
//! Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`)
//! is set, and then at no cost: [`enabled`] is false, every span constructor returns
//! `Span::none()`, nothing is propagated, logs are `tracing`'s own. On:
//!
//! - [`settings`]: the standard `OTEL_*` variables, checked ([`TracingSettings`]);
//! - [`pipeline`](install): the OTLP exporter (gRPC or HTTP/protobuf), the batch
//!   processor, sampler and resource; [`install`] sets it up with the log formatter
//!   as the process's subscriber, [`shutdown`] flushes what is left at exit;
//! - [`spans`]: the spans the services open, named by the semantic conventions;
//! - [`context`]: W3C `traceparent`/`tracestate` ([`TraceHeaders`]) taken from a span
//!   for the next hop (HTTP, gRPC metadata, the outbox row, Kafka headers) and
//!   continued there ([`continue_trace`]);
//! - `log_line`: `trace_id` and `span_id` in every log line inside a span.
//!
//! How an order's trace is carried: the gateway continues the caller's
//! `traceparent` (or starts a trace) and sends it to orders in gRPC metadata; orders
//! stores it with the outbox row, in the same transaction as the order; the relay's
//! `send` span continues it and puts its own context in the Kafka record's headers
//! (rdkafka; the `kafka` crate's message format has none, see docs/tracing.md);
//! payments continues it into its outbox row, and notifications and orders'
//! status update continue it from the status event's headers.

mod context;
mod log_line;
mod pipeline;
pub mod settings;
pub mod spans;

use std::sync::{
    Mutex,
    atomic::{AtomicBool, Ordering},
};

use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::{
    EnvFilter, Layer, filter::filter_fn, layer::SubscriberExt, util::SubscriberInitExt,
};

pub use context::{TRACEPARENT, TRACESTATE, TraceHeaders, continue_trace};
pub use pipeline::StartError;
pub use settings::{ENV_VARS, SettingsError, TracingSettings};

static ENABLED: AtomicBool = AtomicBool::new(false);
static PROVIDER: Mutex<Option<SdkTracerProvider>> = Mutex::new(None);

/// Whether this process records traces ([`install`] succeeded).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Installs the process's subscriber with tracing on: log lines to stderr (filtered
/// by `log_filter`, `json` or text, with the trace ids) and spans to the collector.
/// Must run inside the tokio runtime. A second call (tests that start several
/// services in one process) keeps the first subscriber and returns Ok.
pub fn install(
    settings: &TracingSettings,
    log_filter: EnvFilter,
    json: bool,
    ansi: bool,
) -> Result<(), StartError> {
    let (provider, traces) = pipeline::start(settings)?;
    let logs = if json {
        tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(false)
            // The span's fields are in the trace; the line links to it by its ids.
            .with_span_list(false)
            .map_event_format(log_line::JsonWithTraceIds)
            .with_writer(std::io::stderr)
            .with_filter(log_filter)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .event_format(log_line::TextWithTraceIds)
            .with_ansi(ansi)
            .with_writer(std::io::stderr)
            .with_filter(log_filter)
            .boxed()
    };
    // Spans at info and above (the services' own, not their libraries' debug
    // spans); events only from warn up, as span events on the trace.
    let traced = filter_fn(|meta| {
        let level = *meta.level();
        if meta.is_span() {
            level <= tracing::Level::INFO
        } else {
            level <= tracing::Level::WARN
        }
    });
    let installed = tracing_subscriber::registry()
        .with(logs)
        .with(traces.with_filter(traced))
        .try_init()
        .is_ok();
    if installed {
        if let Ok(mut slot) = PROVIDER.lock() {
            *slot = Some(provider);
        }
        ENABLED.store(true, Ordering::Relaxed);
    }
    Ok(())
}

/// Sends the spans not yet exported and stops the exporter (at most a few seconds);
/// nothing when tracing is off.
pub async fn shutdown() {
    let provider = PROVIDER.lock().ok().and_then(|mut slot| slot.take());
    if let Some(provider) = provider {
        ENABLED.store(false, Ordering::Relaxed);
        // The SDK's shutdown blocks until its export thread is done.
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(err) = provider.shutdown() {
                eprintln!("tracing: the last spans were not exported: {err}");
            }
        })
        .await;
    }
}
