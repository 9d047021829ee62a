"""OpenTelemetry set-up of a process (services/service_layer/docs/tracing.md): only when an
OTLP endpoint is configured, and only then is the SDK (the ``otel`` extra) imported. Spans go
to ``<endpoint>/v1/traces`` over OTLP/HTTP, batched in the background; the process's
``service.name`` is ``loyalty-<service>`` unless ``OTEL_SERVICE_NAME`` says otherwise."""

from __future__ import annotations

import os

import structlog

from services.config.settings import Settings

log = structlog.get_logger(__name__)


def configure_tracing(settings: Settings, service: str) -> bool:
    """Install the global tracer provider with an OTLP exporter; False when no endpoint is set."""
    endpoint = settings.otel_exporter_otlp_endpoint
    if not endpoint:
        return False
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise RuntimeError(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not installed: "
            "pip install 'loyalty-engine[otel]'"
        ) from exc
    name = os.environ.get("OTEL_SERVICE_NAME") or f"loyalty-{service}"
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    traces = endpoint.rstrip("/") + "/v1/traces"
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces)))
    trace.set_tracer_provider(provider)  # flushed and shut down at exit by the SDK
    log.info("tracing_configured", endpoint=traces, service_name=name)
    return True
