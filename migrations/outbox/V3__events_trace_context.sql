-- The W3C trace context of the request that wrote the event (`traceparent`, then a
-- space and the `tracestate` if any), so the relay publishes it in the Kafka record's
-- headers and the trace goes on in the consumer. NULL when tracing is off, and in the
-- rows a Go service writes: adding a nullable column without a default rewrites
-- nothing and takes a brief ACCESS EXCLUSIVE lock only.
ALTER TABLE events ADD COLUMN IF NOT EXISTS trace_context text;
