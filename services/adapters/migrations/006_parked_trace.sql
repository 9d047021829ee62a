-- Tracing (services/service_layer/docs/tracing.md): a parked event keeps the trace context of
-- the event that parked it, so the messages of its release continue its own trace.
ALTER TABLE parked_events ADD COLUMN traceparent text, ADD COLUMN tracestate text;
