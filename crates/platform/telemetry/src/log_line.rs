//! Log lines that carry the trace: inside a recorded span, every line ends with the
//! span's `trace_id` and `span_id` (text) or has them as two more keys (JSON), so a
//! log search and the trace backend find each other.

use std::fmt;

use opentelemetry::trace::{SpanId, TraceContextExt, TraceId};
use tracing::{Event, Subscriber};
use tracing_subscriber::{
    fmt::{
        FmtContext, FormatEvent, FormatFields,
        format::Writer,
        time::{FormatTime, SystemTime},
    },
    registry::LookupSpan,
};

/// The ids of the span the thread is in, if tracing records it. The tracing layer
/// makes an entered span's context the current OpenTelemetry context.
fn current_ids() -> Option<(TraceId, SpanId)> {
    let context = opentelemetry::Context::current();
    let span = context.span();
    let span = span.span_context();
    span.is_valid().then(|| (span.trace_id(), span.span_id()))
}

/// The text line: time, level, target, the event's fields, then the ids. (The span
/// names and fields `tracing`'s own line would list are left out: they are in the
/// trace.)
pub struct TextWithTraceIds;

impl<S, N> FormatEvent<S, N> for TextWithTraceIds
where
    S: Subscriber + for<'span> LookupSpan<'span>,
    N: for<'writer> FormatFields<'writer> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        SystemTime.format_time(&mut writer)?;
        let meta = event.metadata();
        write!(writer, " {:>5} {}: ", meta.level(), meta.target())?;
        ctx.format_fields(writer.by_ref(), event)?;
        if let Some((trace_id, span_id)) = current_ids() {
            write!(writer, " trace_id={trace_id} span_id={span_id}")?;
        }
        writeln!(writer)
    }
}

/// `tracing`'s JSON line with `"trace_id"` and `"span_id"` added inside a span.
pub struct JsonWithTraceIds<F>(pub F);

impl<S, N, F> FormatEvent<S, N> for JsonWithTraceIds<F>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
    N: for<'writer> FormatFields<'writer> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let Some((trace_id, span_id)) = current_ids() else {
            return self.0.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        // The JSON formatter writes one object and a newline.
        let object = line.trim_end().strip_suffix('}').ok_or(fmt::Error)?;
        writeln!(
            writer,
            "{object},\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\"}}"
        )
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::{Layer, fmt::MakeWriter, layer::SubscriberExt};

    use super::*;

    /// The lines a subscriber wrote.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Lines {
        type Writer = Lines;

        fn make_writer(&'a self) -> Lines {
            self.clone()
        }
    }

    /// Logs one line outside any span and one inside a recorded span, with `json` or
    /// text lines; the two lines and the span's ids.
    fn log_in_and_out_of_a_span(json: bool) -> (String, String, String, String) {
        let lines = Lines::default();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let traces = tracing_opentelemetry::layer().with_tracer(provider.tracer("test"));
        let logs = if json {
            tracing_subscriber::fmt::layer()
                .json()
                .map_event_format(JsonWithTraceIds)
                .with_writer(lines.clone())
                .boxed()
        } else {
            tracing_subscriber::fmt::layer()
                .event_format(TextWithTraceIds)
                .with_ansi(false)
                .with_writer(lines.clone())
                .boxed()
        };
        let subscriber = tracing_subscriber::registry().with(logs).with(traces);
        let (trace_id, span_id) = tracing::subscriber::with_default(subscriber, || {
            tracing::info!(order_id = 7, "outside");
            let span = tracing::info_span!("work");
            let _entered = span.enter();
            tracing::info!(order_id = 7, "inside");
            current_ids().unwrap()
        });
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        let mut written = text.lines().map(str::to_owned);
        let outside = written.next().unwrap();
        let inside = written.next().unwrap();
        (outside, inside, trace_id.to_string(), span_id.to_string())
    }

    #[test]
    fn a_text_line_inside_a_span_ends_with_its_ids() {
        let (outside, inside, trace_id, span_id) = log_in_and_out_of_a_span(false);
        assert!(outside.ends_with("outside order_id=7"), "{outside}");
        assert!(!outside.contains("trace_id"), "{outside}");
        assert!(
            inside.ends_with(&format!(
                "inside order_id=7 trace_id={trace_id} span_id={span_id}"
            )),
            "{inside}"
        );
    }

    #[test]
    fn a_json_line_inside_a_span_has_its_ids_as_keys() {
        let (outside, inside, trace_id, span_id) = log_in_and_out_of_a_span(true);
        let outside: serde_json::Value = serde_json::from_str(&outside).unwrap();
        assert!(outside.get("trace_id").is_none(), "{outside}");
        let inside: serde_json::Value = serde_json::from_str(&inside).unwrap();
        assert_eq!(inside["trace_id"], trace_id.as_str());
        assert_eq!(inside["span_id"], span_id.as_str());
        assert_eq!(inside["fields"]["message"], "inside");
    }
}
