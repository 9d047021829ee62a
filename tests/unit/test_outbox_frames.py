"""Outbox rows' packed messages (services/adapters/outbox_frames.py): what is packed is what
the relay unpacks, in order, keys absent or empty, any bytes, any headers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.adapters.outbox_frames import pack, unpack
from services.service_layer.messages import OutboxMessage

messages = st.lists(
    st.builds(
        OutboxMessage,
        topic=st.text(min_size=1, max_size=20),
        key=st.none() | st.binary(max_size=40),
        value=st.binary(max_size=300),
        headers=st.lists(st.tuples(st.text(max_size=12), st.text(max_size=30)), max_size=4).map(tuple),
    ),
    min_size=1,
    max_size=20,
)


@given(messages)
def test_what_is_packed_is_unpacked_in_order(packed: list[OutboxMessage]) -> None:
    unpacked = unpack([m.topic for m in packed], pack(packed))
    assert unpacked == [
        (m.topic, m.key, m.value, [(name, value.encode()) for name, value in m.headers]) for m in packed
    ]


def test_a_key_absent_is_not_an_empty_key() -> None:
    frames = pack([OutboxMessage("t", None, b"v"), OutboxMessage("t", b"", b"v")])
    assert [key for _, key, _, _ in unpack(["t", "t"], frames)] == [None, b""]


def test_bytes_beyond_the_topics_messages_are_an_error() -> None:
    frames = pack([OutboxMessage("t", b"k", b"v"), OutboxMessage("t", b"k", b"w")])
    with pytest.raises(ValueError, match="beyond its 1 messages"):
        unpack(["t"], frames)
