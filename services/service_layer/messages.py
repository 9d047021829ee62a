"""The outbound messages of DESIGN.md section 3, built from what handling an event did. They
are written to the outbox in the same database transaction as the state change that caused
them (services/adapters/docs/outbox.md)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from services.config.settings import Topics
from services.config.webhook_secrets import secret_key
from services.contract.inbound import INTERNAL_ACTIONS
from services.contract.outbound import Outcome
from services.domain.effects import Effects
from services.domain.program import Program
from services.service_layer.decoding import Decoded, Invalid

_WEBHOOK_NAMESPACE = uuid.UUID("6f1c8f0e-3a52-4d1e-9d2b-6c0b9f2a7e11")
_WEBHOOK_NAMESPACE_BYTES = _WEBHOOK_NAMESPACE.bytes


# Slotted, not frozen: five are built per checkout, and a frozen dataclass's __init__ costs
# several times more; tracing adds its headers in place (tracing.stamp).
@dataclass(slots=True)
class OutboxMessage:
    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, str], ...] = ()


_NO_POINTS = dict.fromkeys(
    ("points_earned", "points_pending", "points_burned", "points_revoked", "points_restored"), 0
)


def _json(message: dict[str, Any]) -> bytes:
    # UTC as "Z", as pydantic writes it; enums by value (StrEnum).
    return orjson.dumps(message, option=orjson.OPT_UTC_Z)


# The RFC 4122 variant's hex digit (10xx in binary) for each digit it replaces.
_VARIANT = {digit: "89ab"[int(digit, 16) & 0b11] for digit in "0123456789abcdef"}


def webhook_id(program: str, event_id: str, position: int) -> str:
    """``uuid5(namespace, "program/event/position")``, written from the SHA-1 hex digest
    without building UUID objects (a fifth of a webhook's cost otherwise): deterministic,
    so consumers can dedupe. Version 5 and the variant replace their hex digits."""
    h = hashlib.sha1(_WEBHOOK_NAMESPACE_BYTES + f"{program}/{event_id}/{position}".encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


def sign(secret: str, value: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), value, hashlib.sha256).hexdigest()


def standard_signature(key: bytes, msg_id: str, timestamp: int, value: bytes) -> str:
    """Standard Webhooks: ``v1,`` and the base64 HMAC-SHA256 of ``<id>.<timestamp>.<body>``,
    keyed by the secret's decoded bytes (services/config/webhook_secrets.py)."""
    signed = f"{msg_id}.{timestamp}.".encode() + value
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def lane_of(message: OutboxMessage, lanes: int) -> int:
    return zlib.crc32(message.topic.encode() + b"\x00" + (message.key or b"")) % lanes


class OutboxBuilder:
    """Turns what happened into the messages of DESIGN.md section 3."""

    def __init__(
        self,
        topics: Topics,
        webhook_secrets: Mapping[str, Sequence[str]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.topics = topics
        # Program -> (secret, its HMAC key) for every secret that signs (all during rotation).
        self.webhook_secrets = {
            program: tuple((s, secret_key(s)) for s in listed)
            for program, listed in (webhook_secrets or {}).items()
            if listed
        }
        self.clock = clock

    def result(
        self,
        *,
        event_id: str,
        program: str,
        action: str | None,
        transaction_id: str | None,
        outcome: Outcome,
        error: tuple[str, str] | None = None,
        effects: Effects | None = None,
    ) -> OutboxMessage:
        internal = action in INTERNAL_ACTIONS
        # Plain dicts in the contract models' field order, encoded once by orjson: the bytes
        # the models would give (tests/unit/test_outbound_schemas.py checks), at a fraction
        # of the cost of building and dumping a model per message.
        message = {
            "event_id": event_id,
            "program": program,
            "action": action,
            "transaction_id": transaction_id,
            "outcome": outcome,
            "error": {"code": error[0], "message": error[1]} if error else None,
            "effects": effects.points if effects else _NO_POINTS,
            "internal": internal,
        }
        return OutboxMessage(
            self.topics.event_results,
            event_id.encode(),
            _json(message),
            (("internal", "true"),) if internal else (),
        )

    def effects(self, program: Program, effects: Effects) -> list[OutboxMessage]:
        meta = effects.meta
        messages = []
        # One snapshot goes in a status change and in its webhooks (a checkout's: three times):
        # each is encoded once and spliced in as it is, the same bytes.
        encoded: dict[int, orjson.Fragment] = {}

        def spliced(snapshot: dict[str, Any]) -> orjson.Fragment:
            if (fragment := encoded.get(id(snapshot))) is None:
                fragment = encoded[id(snapshot)] = orjson.Fragment(_json(snapshot))
            return fragment

        for change in effects.status_changes:
            txn = change.transaction
            status = {
                "program": meta.program,
                "transaction_id": txn["transaction_id"],
                "customer": txn["customer"],
                "from_status": change.from_status,
                "to_status": change.to_status,
                "at": meta.occurred_at,
                "cause": {"event_id": meta.event_id, "action": meta.action},
                "transaction": spliced(txn),
            }
            messages.append(
                OutboxMessage(self.topics.transaction_status, txn["transaction_id"].encode(), _json(status))
            )
        for n, webhook in enumerate(effects.webhooks):
            hook_id = webhook_id(meta.program, meta.event_id, n)
            data = webhook.data
            if (snapshot := data.get("transaction")) is not None:
                data = {**data, "transaction": spliced(snapshot)}
            body = _json(
                {
                    "id": hook_id,
                    "type": webhook.type,
                    "program": meta.program,
                    "occurred_at": meta.occurred_at,
                    "data": data,
                }
            )
            headers: list[tuple[str, str]] = [("webhook-type", webhook.type)]
            secrets = self.webhook_secrets.get(program.name)
            if secrets:
                headers += self._signatures(secrets, hook_id, body)
            # An unclaimed guest checkout's webhooks are keyed by its transaction id, which a
            # transaction webhook carries in its snapshot, a coupon or offer one beside it.
            about = webhook.data.get("transaction", webhook.data)
            key = webhook.customer or about.get("transaction_id") or ""
            messages.append(OutboxMessage(self.topics.webhooks, key.encode(), body, tuple(headers)))
        return messages

    def _signatures(
        self, secrets: tuple[tuple[str, bytes], ...], msg_id: str, body: bytes
    ) -> list[tuple[str, str]]:
        # The legacy header with the first secret; Standard Webhooks with every secret. The
        # timestamp is when the message is built (the commit), not the business time: a
        # receiver refuses one too far from its clock (standardwebhooks: 5 minutes).
        timestamp = int(self.clock())
        signatures = " ".join(standard_signature(key, msg_id, timestamp, body) for _, key in secrets)
        return [
            ("signature", sign(secrets[0][0], body)),
            ("webhook-id", msg_id),
            ("webhook-timestamp", str(timestamp)),
            ("webhook-signature", signatures),
        ]

    def dead_letter(self, invalid: Invalid) -> OutboxMessage:
        record = invalid.record
        return OutboxMessage(
            self.topics.dlq,
            record.key,
            record.value or b"",
            (
                ("error-code", invalid.code),
                ("error-message", invalid.message[:1000]),
                ("source-topic", record.topic),
                ("source-partition", str(record.partition)),
                ("source-offset", str(record.offset)),
            ),
        )

    def decoded_result(
        self,
        decoded: Decoded[object],
        outcome: Outcome,
        error: tuple[str, str] | None = None,
        effects: Effects | None = None,
    ) -> OutboxMessage:
        return self.result(
            event_id=decoded.event_id,
            program=decoded.program,
            action=decoded.action,
            transaction_id=decoded.transaction_id,
            outcome=outcome,
            error=error,
            effects=effects,
        )
