"""Stored document versions: old shapes are upgraded on read, step by step."""

from __future__ import annotations

import pytest

from services.adapters.documents import CURRENT, upgrade


def test_a_version_1_product_is_read_in_the_checkout_vocabulary() -> None:
    old = {"product_id": "001", "name": "Tee", "url": "https://shop/001", "category": "shirts"}
    assert upgrade("product", 1, old) == {
        "product_id": "001",
        "product_name": "Tee",
        "product_url": "https://shop/001",
        "category": "shirts",
    }


@pytest.mark.parametrize("kind", sorted(CURRENT))
def test_a_current_document_is_read_as_it_is(kind: str) -> None:
    doc = {"anything": 1}
    assert upgrade(kind, CURRENT[kind], doc) is doc


def test_a_document_newer_than_the_code_is_refused() -> None:
    with pytest.raises(ValueError, match="newer than this code"):
        upgrade("transaction", CURRENT["transaction"] + 1, {})
