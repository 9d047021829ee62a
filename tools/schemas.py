"""``make schemas``: writes, from the code, to ``schemas/``:

- ``inbound/<action>.json`` and ``inbound/<topic>-topic.json``: every inbound message;
- ``outbound/*.json``: every outbound message, ``outbound/transaction-snapshot.json`` (the
  snapshot alone) and ``outbound/webhooks/<type>.json`` (each webhook type with its exact
  ``data``; ``outbound/webhook.json`` is one of them, chosen by ``type``);
- ``asyncapi.json``: an AsyncAPI 3.0 document of every topic (channels, messages, payloads,
  headers and keys) from the same models;
- ``openapi.json``: the read API.

``tests/unit/test_schemas.py`` fails when they are stale.

Outbound schemas describe the serialised JSON: every field of a message is always present
(``required``), even one with a default, since messages are dumped whole.
"""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, JsonSchemaValue
from pydantic_core import core_schema

from services.api.app import create_app
from services.config.settings import Settings, Topics
from services.contract import inbound, outbound

SCHEMAS_DIR = Path(__file__).resolve().parents[1] / "schemas"
DRAFT = "https://json-schema.org/draft/2020-12/schema"

# Money as it goes out (services/domain/money.py): a plain decimal string, never an exponent.
MONEY_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"
_MONEY_SERIALIZER = get_args(outbound.Money)[1].func

# Inbound topics (attribute of Topics) and the union of the actions each carries.
INBOUND_TOPICS: dict[str, Any] = {
    "checkouts": inbound.CheckoutsTopicEvent,
    "lifecycle": inbound.LifecycleTopicEvent,
    "refunds": inbound.RefundsTopicEvent,
    "catalog": inbound.CatalogTopicEvent,
}


def topic_actions(union: Any) -> dict[str, type[BaseModel]]:
    """The action name and model of each member of a topic's discriminated union."""
    members = get_args(get_args(union)[0])
    return {get_args(model.model_fields["action"].annotation)[0]: model for model in members}


INBOUND: dict[str, Any] = {}
for _topic, _union in INBOUND_TOPICS.items():
    INBOUND[f"{_topic}-topic"] = _union
    INBOUND.update(topic_actions(_union))

OUTBOUND: dict[str, Any] = {
    "transaction-status": outbound.TransactionStatusMessage,
    "transaction-snapshot": outbound.TransactionSnapshot,
    "webhook": outbound.AnyWebhookMessage,
    "event-result": outbound.EventResultMessage,
}


class JsonSchemaGenerator(GenerateJsonSchema):
    """Pydantic's generator, plus: in serialisation mode every model field is required (a
    message is dumped whole; TypedDicts keep their own), and money carries its pattern."""

    def field_is_required(
        self,
        field: core_schema.ModelField | core_schema.DataclassField | core_schema.TypedDictField,
        total: bool,
    ) -> bool:
        if self.mode == "serialization" and field["type"] != "typed-dict-field":
            return field.get("serialization_exclude_if") is None
        return super().field_is_required(field, total)

    def ser_schema(
        self,
        schema: core_schema.SerSchema | core_schema.IncExSeqSerSchema | core_schema.IncExDictSerSchema,
    ) -> JsonSchemaValue | None:
        if schema["type"] == "function-plain" and schema.get("function") is _MONEY_SERIALIZER:
            return {
                "type": "string",
                "pattern": MONEY_PATTERN,
                "description": "Decimal amount as a plain string with the currency's minor units "
                '("100.00"; "100" in JPY); more decimals only when the amount has them.',
            }
        return super().ser_schema(schema)


def json_schema(model: Any, mode: JsonSchemaMode, title: str) -> dict[str, Any]:
    schema = TypeAdapter(model).json_schema(mode=mode, schema_generator=JsonSchemaGenerator)
    return {"$schema": DRAFT, "title": title, **schema}


def _dump(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


# --- AsyncAPI ---------------------------------------------------------------------------------

ASYNCAPI_VERSION = "3.0.0"
KAFKA_BINDING = "0.5.0"
_COMPONENT = "#/components/schemas/{model}"

# W3C Trace Context (services/service_layer/docs/tracing.md): read on every inbound record,
# written on every outbound one.
TRACE_HEADERS = {
    "traceparent": {
        "type": "string",
        "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(-.*)?$",
        "description": "W3C Trace Context. Inbound: the trace the event belongs to (a malformed one is "
        "ignored and a new trace started). Outbound: the trace of the event that caused the message, "
        "as a child of the span that handled it.",
    },
    "tracestate": {
        "type": "string",
        "description": "W3C Trace Context vendor state, passed through from the inbound record.",
    },
}
INBOUND_HEADERS = {
    "type": "object",
    "description": "Optional headers of an inbound event; the body's fields win over them.",
    "properties": {
        "event-id": {"type": "string", "description": "The idempotency key, when the body has no event_id."},
        "program": {"type": "string", "description": "The program (tenant), when the body names none."},
        **TRACE_HEADERS,
    },
}
STANDARD_WEBHOOK_HEADERS = {
    "webhook-id": {
        "type": "string",
        "description": "Standard Webhooks: the message id (the body's id), when the program has a secret.",
    },
    "webhook-timestamp": {
        "type": "string",
        "pattern": "^[0-9]+$",
        "description": "Standard Webhooks: seconds since the epoch, when the program has a secret.",
    },
    "webhook-signature": {
        "type": "string",
        "description": "Standard Webhooks: space-separated `v1,<base64 HMAC-SHA256>` signatures of "
        "`<webhook-id>.<webhook-timestamp>.<value>`, when the program has a secret.",
    },
}
DLQ_HEADER_SCHEMAS: dict[str, dict[str, Any]] = {
    "error-code": {
        "type": "string",
        "enum": ["malformed_json", "schema_violation", "unknown_action"],
        "description": "Why the record is invalid.",
    },
    "error-message": {"type": "string", "maxLength": 1000, "description": "What is wrong, for a person."},
    "source-topic": {"type": "string", "description": "The topic the record was read from."},
    "source-partition": {"type": "string", "pattern": "^[0-9]+$", "description": "Its partition."},
    "source-offset": {"type": "string", "pattern": "^[0-9]+$", "description": "Its offset."},
}


def _kafka_key(description: str, nullable: bool = False) -> dict[str, Any]:
    key: dict[str, Any] = {"type": ["string", "null"] if nullable else "string", "description": description}
    return {"kafka": {"key": key, "bindingVersion": KAFKA_BINDING}}


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _asyncapi_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A pydantic schema as an AsyncAPI Schema Object (a JSON Schema draft-07 superset): the
    OpenAPI-style ``discriminator`` object, a string there, is dropped (``oneOf`` stays)."""
    schema = copy.deepcopy(schema)
    for node in _walk(schema):
        if isinstance(node.get("discriminator"), dict) and "propertyName" in node["discriminator"]:
            del node["discriminator"]
    return schema


def _first_line(doc: str | None) -> str:
    return " ".join((doc or "").strip().split("\n\n")[0].split())


def asyncapi(topics: Topics, app_version: str) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of every topic, from the contract models."""
    inbound_models = {
        topic: topic_actions(union) for topic, union in INBOUND_TOPICS.items()
    }  # topic attribute -> action -> model
    inputs: list[tuple[tuple[str, str], JsonSchemaMode, TypeAdapter[Any]]] = []
    for actions in inbound_models.values():
        inputs += [
            (("inbound", action), "validation", TypeAdapter(model)) for action, model in actions.items()
        ]
    outbound_models: dict[str, Any] = {
        "TransactionStatusMessage": outbound.TransactionStatusMessage,
        "EventResultMessage": outbound.EventResultMessage,
        **{model.__name__: model for model in outbound.WEBHOOK_MESSAGES.values()},
    }
    inputs += [
        (("outbound", name), "serialization", TypeAdapter(model)) for name, model in outbound_models.items()
    ]
    payloads, definitions = TypeAdapter.json_schemas(
        inputs, ref_template=_COMPONENT, schema_generator=JsonSchemaGenerator
    )
    schemas = {name: _asyncapi_schema(schema) for name, schema in definitions.get("$defs", {}).items()}

    def payload_ref(key: tuple[str, str], mode: JsonSchemaMode) -> dict[str, str]:
        schema = payloads[(key, mode)]
        assert set(schema) == {"$ref"}, f"{key} is not a model"
        return {"$ref": schema["$ref"]}

    channels: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    operations: dict[str, Any] = {}

    def channel(name: str, address: str, description: str, names: list[str], action: str) -> None:
        channels[name] = {
            "address": address,
            "description": description,
            "messages": {m: {"$ref": f"#/components/messages/{m}"} for m in names},
            "bindings": {"kafka": {"topic": address, "bindingVersion": KAFKA_BINDING}},
        }
        verb = "consume" if action == "receive" else "publish"
        operations[f"{verb}{name[0].upper()}{name[1:]}"] = {
            "action": action,
            "channel": {"$ref": f"#/channels/{name}"},
            "summary": f"The engine {'consumes' if action == 'receive' else 'publishes'} {address}.",
        }

    for topic, actions in inbound_models.items():
        catalog = topic == "catalog"
        for action, model in actions.items():
            messages[action] = {
                "name": action,
                "title": f"{action} event",
                "summary": _first_line(model.__doc__) or f"The `{action}` action.",
                "contentType": "application/json",
                "headers": INBOUND_HEADERS,
                "payload": payload_ref(("inbound", action), "validation"),
                "bindings": _kafka_key(
                    "The entity's id (product id, store id, offer id, coupon code)."
                    if catalog
                    else "The customer id (the transaction id for a guest checkout)."
                ),
            }
        channel(
            topic,
            getattr(topics, topic),
            f"Inbound events, actions: {', '.join(f'`{a}`' for a in actions)}.",
            list(actions),
            "receive",
        )

    messages["transaction-status"] = {
        "name": "transaction-status",
        "title": "Transaction status change",
        "summary": "A transaction changed status, with its snapshot after the change.",
        "contentType": "application/json",
        "headers": {"type": "object", "properties": TRACE_HEADERS},
        "payload": payload_ref(("outbound", "TransactionStatusMessage"), "serialization"),
        "bindings": _kafka_key("The transaction id."),
    }
    channel(
        "transactionStatus",
        topics.transaction_status,
        "Status changes of transactions, in order per transaction.",
        ["transaction-status"],
        "send",
    )
    # Enrichment reads registrations back from the same topic.
    operations["consumeTransactionStatus"] = {
        "action": "receive",
        "channel": {"$ref": "#/channels/transactionStatus"},
        "summary": "Enrichment reads registrations (from_status null or draft) back.",
    }

    webhook_messages = []
    for kind, model in outbound.WEBHOOK_MESSAGES.items():
        headers: dict[str, Any] = {
            "type": "object",
            "required": ["webhook-type"],
            "properties": {
                "webhook-type": {"type": "string", "const": kind, "description": "The webhook type."},
                "signature": {
                    "type": "string",
                    "pattern": "^sha256=[0-9a-f]{64}$",
                    "description": "sha256=<hex HMAC-SHA256 of the value bytes with the program's "
                    "webhook secret>, when the program has a secret.",
                },
                **STANDARD_WEBHOOK_HEADERS,
                **TRACE_HEADERS,
            },
        }
        messages[kind] = {
            "name": kind,
            "title": f"{kind} webhook",
            "summary": _first_line(model.__doc__),
            "contentType": "application/json",
            "headers": headers,
            "payload": payload_ref(("outbound", model.__name__), "serialization"),
            "bindings": _kafka_key("The customer id (the transaction id for an unclaimed guest checkout)."),
        }
        webhook_messages.append(kind)
    channel(
        "webhooks",
        topics.webhooks,
        "Signed webhooks, one message per webhook type (header `webhook-type`).",
        webhook_messages,
        "send",
    )

    messages["event-result"] = {
        "name": "event-result",
        "title": "Event result",
        "summary": _first_line(outbound.EventResultMessage.__doc__),
        "contentType": "application/json",
        "headers": {
            "type": "object",
            "properties": {
                "internal": {
                    "type": "string",
                    "const": "true",
                    "description": "Present on results of the engine's own actions (as the body's internal).",
                },
                **TRACE_HEADERS,
            },
        },
        "payload": payload_ref(("outbound", "EventResultMessage"), "serialization"),
        "bindings": _kafka_key("The event id."),
    }
    channel(
        "eventResults",
        topics.event_results,
        "One result per delivery of every inbound event: the asynchronous API response.",
        ["event-result"],
        "send",
    )

    messages["dlq"] = {
        "name": "dlq",
        "title": "Dead letter",
        "summary": "An inbound record that cannot be parsed or fails its schema, as it came.",
        "contentType": "application/octet-stream",
        "headers": {
            "type": "object",
            "required": list(outbound.DLQ_HEADERS),
            "properties": {
                **{name: DLQ_HEADER_SCHEMAS[name] for name in outbound.DLQ_HEADERS},
                **TRACE_HEADERS,
            },
        },
        "payload": {"type": "string", "description": "The original value bytes, unchanged."},
        "bindings": _kafka_key("The original key (absent when the record had none).", nullable=True),
    }
    channel("dlq", topics.dlq, "Invalid inbound records, with why.", ["dlq"], "send")

    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "Loyalty transaction engine",
            "version": app_version,
            "description": "Every Kafka topic of the engine (DESIGN.md sections 2 and 3): what producers "
            "send it, and what it publishes. Topic names are the defaults; each is configurable. "
            "Values are UTF-8 JSON; money is a decimal string on output; points are integers.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": Settings.model_fields["kafka_bootstrap_servers"].default,
                "protocol": "kafka",
                "description": "The local broker of `make run`.",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"schemas": dict(sorted(schemas.items())), "messages": messages},
    }


def render() -> dict[Path, str]:
    files: dict[Path, str] = {}
    for name, model in INBOUND.items():
        files[SCHEMAS_DIR / "inbound" / f"{name}.json"] = _dump(json_schema(model, "validation", name))
    for name, model in OUTBOUND.items():
        files[SCHEMAS_DIR / "outbound" / f"{name}.json"] = _dump(json_schema(model, "serialization", name))
    for kind, model in outbound.WEBHOOK_MESSAGES.items():
        files[SCHEMAS_DIR / "outbound" / "webhooks" / f"{kind}.json"] = _dump(
            json_schema(model, "serialization", kind)
        )
    dlq = {
        "$schema": DRAFT,
        "title": "dlq",
        "description": "loyalty.dlq: the original key and value bytes, with these headers.",
        "x-kafka-headers": list(outbound.DLQ_HEADERS),
    }
    files[SCHEMAS_DIR / "outbound" / "dlq.json"] = _dump(dlq)
    app_version = version("loyalty-engine")
    files[SCHEMAS_DIR / "asyncapi.json"] = _dump(asyncapi(Topics(), app_version))
    openapi = create_app(Settings(), programs={}).openapi()
    files[SCHEMAS_DIR / "openapi.json"] = _dump(openapi)
    return files


def main() -> int:
    for path, text in render().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path.relative_to(SCHEMAS_DIR.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
