"""Enrichment of a newly registered transaction (Imprint's transaction enrichment, FlipGive's
shares): order lines get the catalog's name, category, URL and image where the checkout sent
only ids, the store its details, the transaction its revenue shares. Pure.

What the checkout sent always wins; the catalog only fills gaps. The result is copied into
the transaction, so later catalog changes never rewrite it (services/service_layer/docs/catalog.md).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from services.domain.allocation import allocate
from services.domain.effects import Effects, Rejected
from services.domain.money import minor_units
from services.domain.program import Program
from services.domain.transaction import Status, Transaction

# Catalog products use the order lines' own field names (stored documents are upgraded on
# read, see services/adapters/repository.py).
_LINE_FIELDS = ("product_name", "category", "product_url", "image_url")
_STORE_FIELDS = ("name", "address", "city", "country", "latitude", "longitude")


def revenue_shares(program: Program, total: Decimal) -> dict[str, int]:
    """Shares of ``total`` in minor units, by largest remainder, summing exactly to the total."""
    rates = program.shares
    minor = int((total * 10 ** minor_units(program.currency)).to_integral_value())
    names = ("campaign", "partner", "platform", "merchant")
    merchant = Decimal(1) - rates.campaign - rates.partner - rates.platform
    parts = allocate(minor, [rates.campaign, rates.partner, rates.platform, merchant])
    return dict(zip(names, parts, strict=True))


CatalogLookup = Callable[[str, str], dict[str, Any] | None]  # (kind, id) -> document


def enrich_transaction(program: Program, txn: Transaction, lookup: CatalogLookup, effects: Effects) -> None:
    if txn.status is Status.draft:
        raise Rejected("not_registered", f"transaction {txn.transaction_id} has no checkout yet")
    if txn.enriched_at is not None:
        raise Rejected("already_enriched", f"transaction {txn.transaction_id} is already enriched")
    for item in txn.items:
        product = lookup("product", item.product_id or "")
        if product is None:
            continue
        for name in _LINE_FIELDS:
            if getattr(item, name) is None and product.get(name) is not None:
                setattr(item, name, product[name])
    store = lookup("store", txn.store or "")
    if store is not None:
        txn.store_details = {k: store[k] for k in _STORE_FIELDS if store.get(k) is not None}
    txn.shares = revenue_shares(program, txn.total)
    txn.enriched_at = effects.meta.occurred_at
    effects.announce("transaction.enriched", txn)
