"""Versions of the JSON documents stored in PostgreSQL, and where an old one is upgraded.

Every stored document (a transaction, a coupon, a catalog entry, a parked event's body) is
written with the current version of its kind in a column beside it. A reader passes what it
read through ``upgrade``, which applies each step from the stored version to the current one,
so a shape can change without rewriting the table first, and old rows keep working.

To change a shape: bump its version in ``CURRENT`` and add the step from the previous one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Document = dict[str, Any]

CURRENT: dict[str, int] = {"transaction": 1, "coupon": 1, "product": 2, "store": 1, "offer": 1, "parked": 1}


def _product_in_checkout_vocabulary(doc: Document) -> Document:
    """Version 2: products use the order lines' names (``product_name``, ``product_url``)."""
    renamed = {"name": "product_name", "url": "product_url"}
    return {renamed.get(key, key): value for key, value in doc.items()}


# (kind, version) -> the step from that version to the next.
_STEPS: dict[tuple[str, int], Callable[[Document], Document]] = {
    ("product", 1): _product_in_checkout_vocabulary,
}


def upgrade(kind: str, version: int, doc: Document) -> Document:
    """``doc`` as stored at ``version``, in the current shape of its kind."""
    current = CURRENT[kind]
    if version > current:
        raise ValueError(f"a {kind} document of version {version} is newer than this code ({current})")
    while version < current:
        doc = _STEPS[(kind, version)](doc)
        version += 1
    return doc
