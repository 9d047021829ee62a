"""Event builders shared by the domain unit tests: the seed checkout, and its guest twin."""

from __future__ import annotations

from typing import Any

from services.contract.examples import seed_item_level_checkout
from services.contract.inbound import CheckoutEvent


def seed(**data: Any) -> CheckoutEvent:
    body = seed_item_level_checkout()
    body["data"].update(data)
    return CheckoutEvent.model_validate(body)


def guest_event(**data: Any) -> CheckoutEvent:
    body = seed_item_level_checkout()
    del body["customer"]
    body["guest"] = True
    body["data"]["points_burned"] = 0
    body["data"].update(data)
    return CheckoutEvent.model_validate(body)
