"""The packed form of an outbox row's messages (docs/outbox.md).

A row holds one lane's messages of one batch, in order: ``topics[i]`` is message i's topic and
``frames`` the rest of them, one after another, each a head of three big-endian int32 (key
length, -1 for no key; value length; headers length, 0 for none) followed by the key, the value
and the headers (JSON ``[[name, value], ...]``). PostgreSQL stores the one bytea as it comes
(lz4 TOAST), where building three arrays and a jsonb per row from the messages cost it about
five times the CPU (issue 12).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import orjson

from services.service_layer.messages import OutboxMessage

_HEAD = struct.Struct(">iii")
_NO_KEY = -1

# (topic, key, value, headers) of one message, as the producer takes it.
Message = tuple[str, bytes | None, bytes, list[tuple[str, bytes]]]


def pack(messages: Sequence[OutboxMessage]) -> bytes:
    """The frames of ``messages``, in order (their topics go beside them, in ``topics``)."""
    parts: list[bytes] = []
    for m in messages:
        key, value = m.key, m.value
        headers = orjson.dumps(m.headers) if m.headers else b""
        parts += (
            _HEAD.pack(_NO_KEY if key is None else len(key), len(value), len(headers)),
            key or b"",
            value,
            headers,
        )
    return b"".join(parts)


def unpack(topics: Sequence[str], frames: bytes) -> list[Message]:
    """The messages a row holds, in order."""
    messages: list[Message] = []
    position, head = 0, _HEAD.size
    for topic in topics:
        key_length, value_length, headers_length = _HEAD.unpack_from(frames, position)
        position += head
        key = None
        if key_length != _NO_KEY:
            key = frames[position : position + key_length]
            position += key_length
        value = frames[position : position + value_length]
        position += value_length
        headers: list[tuple[str, bytes]] = []
        if headers_length:
            headers = [
                (name, text.encode())
                for name, text in orjson.loads(frames[position : position + headers_length])
            ]
            position += headers_length
        messages.append((topic, key, value, headers))
    if position != len(frames):
        raise ValueError(
            f"an outbox row holds {len(frames) - position} bytes beyond its {len(topics)} messages"
        )
    return messages
