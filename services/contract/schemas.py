"""``make schemas``: writes the JSON Schema of every inbound and outbound message, and the read
API's OpenAPI document, to ``schemas/`` from the code; ``tests/unit/test_schemas.py`` fails
when they are stale."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter

from services.api.app import create_app
from services.contract import inbound, outbound
from services.core.settings import Settings

SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "schemas"

INBOUND: dict[str, Any] = {
    "checkouts-topic": inbound.CheckoutsTopicEvent,
    "checkout": inbound.CheckoutEvent,
    "checkout_claim": inbound.CheckoutClaimEvent,
    "coupon_redeem": inbound.CouponRedeemEvent,
    "lifecycle-topic": inbound.LifecycleTopicEvent,
    "checkout_update": inbound.CheckoutUpdateEvent,
    "checkout_accept": inbound.CheckoutAcceptEvent,
    "checkout_reject": inbound.CheckoutRejectEvent,
    "point_unspend": inbound.PointUnspendEvent,
    "refunds-topic": inbound.RefundsTopicEvent,
    "refund": inbound.RefundEvent,
    "partial_refund": inbound.PartialRefundEvent,
    "refund_item": inbound.RefundItemEvent,
    "offer_unredeem": inbound.OfferUnredeemEvent,
    "coupon_unredeem": inbound.CouponUnredeemEvent,
    "catalog-topic": inbound.CatalogTopicEvent,
    "product_upsert": inbound.ProductUpsertEvent,
    "product_delete": inbound.ProductDeleteEvent,
    "store_upsert": inbound.StoreUpsertEvent,
    "store_delete": inbound.StoreDeleteEvent,
    "offer_upsert": inbound.OfferUpsertEvent,
    "coupon_assign": inbound.CouponAssignEvent,
}
OUTBOUND: dict[str, type[BaseModel]] = {
    "transaction-status": outbound.TransactionStatusMessage,
    "webhook": outbound.WebhookMessage,
    "event-result": outbound.EventResultMessage,
}


def render() -> dict[Path, str]:
    files: dict[Path, str] = {}
    for folder, models, mode in (("inbound", INBOUND, "validation"), ("outbound", OUTBOUND, "serialization")):
        for name, model in models.items():
            schema = TypeAdapter(model).json_schema(mode=mode)  # type: ignore[arg-type]
            schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": name, **schema}
            files[SCHEMAS_DIR / folder / f"{name}.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    dlq = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "dlq",
        "description": "loyalty.dlq: the original key and value bytes, with these headers.",
        "x-kafka-headers": list(outbound.DLQ_HEADERS),
    }
    files[SCHEMAS_DIR / "outbound" / "dlq.json"] = json.dumps(dlq, indent=2, sort_keys=True) + "\n"
    openapi = create_app(Settings(), programs={}).openapi()
    files[SCHEMAS_DIR / "openapi.json"] = json.dumps(openapi, indent=2, sort_keys=True) + "\n"
    return files


def main() -> int:
    for path, text in render().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path.relative_to(SCHEMAS_DIR.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
