"""Free-form JSON objects a producer attaches (``metadata``, ``utm_data``): any JSON, except
integers beyond 64 bits.

They travel on in every snapshot of the transaction, to status changes, webhooks and the stored
document, written by orjson, which refuses such an integer; accepted, the event could then
never be written, and its batch would be retried forever, stalling its partition. JSON
consumers (JavaScript's numbers, Java's long) could not read it whole either, so it is refused
at the edge as a schema violation. A decimal of any size (``parse_float=Decimal``) goes out as
a string, so it is fine.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator

_SMALLEST = -(2**63)
_LARGEST = 2**64 - 1  # orjson writes unsigned 64-bit integers too


def _integers_fit(value: Any, path: str = "") -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _integers_fit(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for n, item in enumerate(value):
            _integers_fit(item, f"{path}[{n}]")
    elif isinstance(value, int) and not isinstance(value, bool) and not _SMALLEST <= value <= _LARGEST:
        raise ValueError(f"the integer at {path or 'the top'} does not fit in 64 bits")


def _checked(value: dict[str, Any]) -> dict[str, Any]:
    _integers_fit(value)
    return value


FreeForm = Annotated[dict[str, Any], AfterValidator(_checked)]
