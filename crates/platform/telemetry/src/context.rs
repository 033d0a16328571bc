//! W3C trace context as it crosses a hop: `traceparent` and `tracestate`, taken from
//! a span to go out (HTTP headers, gRPC metadata, an outbox row, Kafka record
//! headers) and made the parent of the span that continues the trace on the other
//! side.

use std::collections::HashMap;

use opentelemetry::{
    propagation::TextMapPropagator,
    trace::{TraceContextExt, TraceId},
};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The W3C header that carries the trace id, the parent span id and the flags.
pub const TRACEPARENT: &str = "traceparent";
/// The W3C header that carries vendors' trace state.
pub const TRACESTATE: &str = "tracestate";

/// One span's trace context in its W3C form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceHeaders {
    traceparent: String,
    tracestate: String,
}

impl TraceHeaders {
    /// The context of `span`, to send to the next hop; `None` when tracing is off
    /// or the span is not recorded by it.
    pub fn of(span: &Span) -> Option<Self> {
        if !crate::enabled() || span.is_disabled() {
            return None;
        }
        let mut carrier = HashMap::with_capacity(2);
        TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
        Self::from_parts(
            carrier.get(TRACEPARENT).map(String::as_str),
            carrier.get(TRACESTATE).map(String::as_str),
        )
    }

    /// What came in on a hop; `None` without a `traceparent`. Its form is checked
    /// where it is used ([`continue_trace`]): a malformed one starts a new trace.
    pub fn from_parts(traceparent: Option<&str>, tracestate: Option<&str>) -> Option<Self> {
        let traceparent = traceparent?.trim();
        if traceparent.is_empty() {
            return None;
        }
        Some(Self {
            traceparent: traceparent.to_owned(),
            tracestate: tracestate.unwrap_or_default().trim().to_owned(),
        })
    }

    /// [`TraceHeaders::from_parts`] of header values as bytes (Kafka headers), which
    /// must be UTF-8.
    pub fn from_bytes(traceparent: Option<&[u8]>, tracestate: Option<&[u8]>) -> Option<Self> {
        fn text(bytes: Option<&[u8]>) -> Option<&str> {
            bytes.and_then(|bytes| std::str::from_utf8(bytes).ok())
        }
        Self::from_parts(text(traceparent), text(tracestate))
    }

    /// What a gRPC call carries in its metadata.
    pub fn from_metadata(metadata: &tonic::metadata::MetadataMap) -> Option<Self> {
        let text = |key: &str| metadata.get(key).and_then(|value| value.to_str().ok());
        Self::from_parts(text(TRACEPARENT), text(TRACESTATE))
    }

    /// Adds the headers to a gRPC call's metadata (a value metadata cannot hold is
    /// left out: the call then starts a new trace on the other side).
    pub fn insert_into(&self, metadata: &mut tonic::metadata::MetadataMap) {
        for (key, value) in self.pairs() {
            if let Ok(value) = tonic::metadata::MetadataValue::try_from(value) {
                metadata.insert(key, value);
            }
        }
    }

    pub fn traceparent(&self) -> &str {
        &self.traceparent
    }

    /// `None` when empty (the header is then left out).
    pub fn tracestate(&self) -> Option<&str> {
        (!self.tracestate.is_empty()).then_some(self.tracestate.as_str())
    }

    /// The headers to send: `traceparent`, and `tracestate` if any.
    pub fn pairs(&self) -> impl Iterator<Item = (&'static str, &str)> {
        std::iter::once((TRACEPARENT, self.traceparent.as_str()))
            .chain(self.tracestate().map(|state| (TRACESTATE, state)))
    }

    /// The form kept in the outbox's `trace_context` column: the `traceparent`, then,
    /// if any, a space and the `tracestate` (a `traceparent` has no spaces).
    pub fn stored(&self) -> String {
        match self.tracestate() {
            None => self.traceparent.clone(),
            Some(state) => format!("{} {state}", self.traceparent),
        }
    }

    /// The inverse of [`TraceHeaders::stored`].
    pub fn from_stored(stored: &str) -> Option<Self> {
        let (traceparent, tracestate) = match stored.trim().split_once(' ') {
            Some((parent, state)) => (parent, Some(state)),
            None => (stored, None),
        };
        Self::from_parts(Some(traceparent), tracestate)
    }

    /// The trace id, when the `traceparent` is well formed.
    pub fn trace_id(&self) -> Option<TraceId> {
        let id = TraceContextPropagator::new()
            .extract(self)
            .span()
            .span_context()
            .trace_id();
        (id != TraceId::INVALID).then_some(id)
    }
}

impl opentelemetry::propagation::Extractor for TraceHeaders {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            TRACEPARENT => Some(&self.traceparent),
            TRACESTATE => self.tracestate(),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        self.pairs().map(|(key, _)| key).collect()
    }
}

/// Makes `span` continue the trace `parent` carries, before the span is entered. No
/// parent or a malformed one: `span` starts a new trace (a bad header from a caller
/// never fails a request).
pub fn continue_trace(span: &Span, parent: Option<&TraceHeaders>) {
    if !crate::enabled() || span.is_disabled() {
        return;
    }
    let Some(parent) = parent else {
        return;
    };
    let context = TraceContextPropagator::new().extract(parent);
    if context.span().span_context().is_valid() {
        // Only fails for a span already started, which the callers never pass.
        let _ = span.set_parent(context);
    } else {
        tracing::debug!(
            traceparent = parent.traceparent(),
            "malformed traceparent: a new trace starts"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn stored_form_round_trips_with_and_without_state() {
        let plain = TraceHeaders::from_parts(Some(PARENT), None).unwrap();
        assert_eq!(plain.stored(), PARENT);
        assert_eq!(TraceHeaders::from_stored(&plain.stored()).unwrap(), plain);
        let stated = TraceHeaders::from_parts(Some(PARENT), Some("a=1, b=2")).unwrap();
        assert_eq!(stated.stored(), format!("{PARENT} a=1, b=2"));
        assert_eq!(TraceHeaders::from_stored(&stated.stored()).unwrap(), stated);
        assert_eq!(
            stated.pairs().collect::<Vec<_>>(),
            [(TRACEPARENT, PARENT), (TRACESTATE, "a=1, b=2")]
        );
    }

    #[test]
    fn the_trace_id_is_read_from_a_well_formed_traceparent_only() {
        let headers = TraceHeaders::from_parts(Some(PARENT), None).unwrap();
        assert_eq!(
            headers.trace_id().unwrap().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        let bad = TraceHeaders::from_parts(Some("00-zz-00-01"), None).unwrap();
        assert_eq!(bad.trace_id(), None);
        assert_eq!(TraceHeaders::from_parts(Some(" "), None), None);
        assert_eq!(TraceHeaders::from_bytes(Some(&[0xff, 0xfe]), None), None);
    }
}
