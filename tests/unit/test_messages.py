"""Webhook ids are UUIDv5 of program, event and position: deterministic, so consumers dedupe."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from services.service_layer.messages import _WEBHOOK_NAMESPACE, webhook_id


@given(st.text(min_size=1), st.text(min_size=1), st.integers(min_value=0, max_value=1000))
def test_webhook_ids_are_uuid5(program: str, event_id: str, position: int) -> None:
    name = f"{program}/{event_id}/{position}"
    assert webhook_id(program, event_id, position) == str(uuid.uuid5(_WEBHOOK_NAMESPACE, name))
