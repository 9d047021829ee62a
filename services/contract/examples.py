"""The Antavo seed's example checkout bodies (shared/seeds/001_…), with their field names and
value types exactly as given: numbers for amounts, string ids. The item-level example's
trailing comma after its last item is left out, as that is not JSON. Used by the demo and the
tests, so they all exercise the same bodies the contract promises to accept."""

from __future__ import annotations

import copy
from typing import Any

SEED_CUSTOMER = "dd6e0e99-3a92-4285-ad74-97c2e7783fe0"
SEED_TRANSACTION_ID = "1703545579"

_ITEM_LEVEL: dict[str, Any] = {
    "customer": SEED_CUSTOMER,
    "action": "checkout",
    "data": {
        "transaction_id": SEED_TRANSACTION_ID,
        "total": 150,
        "points_burned": 10,
        "items": [
            {
                "product_id": "001",
                "product_name": "Super Cool T-Shirt",
                "product_url": "https://www.example.com/products/super-cool-tshirt-001",
                "price": 50,
                "quantity": 2,
                "discount": 5,
                "subtotal": 95,
                "points_rewarded": 20,
            },
            {
                "product_id": "002",
                "product_name": "Stylish Jeans",
                "product_url": "https://www.example.com/products/stylish-jeans-002",
                "price": 55,
                "quantity": 1,
                "discount": 5,
                "subtotal": 50,
                "points_rewarded": 10,
            },
        ],
    },
}

_TRANSACTION_LEVEL: dict[str, Any] = {
    "customer": SEED_CUSTOMER,
    "action": "checkout",
    "data": {"transaction_id": SEED_TRANSACTION_ID, "total": 150, "points_burned": 10},
}


def seed_item_level_checkout() -> dict[str, Any]:
    return copy.deepcopy(_ITEM_LEVEL)


def seed_transaction_level_checkout() -> dict[str, Any]:
    return copy.deepcopy(_TRANSACTION_LEVEL)
