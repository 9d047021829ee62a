"""Builders shared by the domain unit tests: a program, the seed checkout and its guest twin.

Checkouts start from the seed's JSON body, are validated by the wire contract and translated
to the domain's :class:`Checkout` by the service layer, as in production."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from services.contract.examples import SEED_CUSTOMER, SEED_TRANSACTION_ID, seed_item_level_checkout
from services.contract.inbound import CheckoutEvent
from services.domain.customer import Customer
from services.domain.effects import Effects, EventMeta
from services.domain.program import Program
from services.domain.purchase import Checkout
from services.service_layer.actions import to_checkout

CUSTOMER = SEED_CUSTOMER
TID = SEED_TRANSACTION_ID
AT = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
LATER = AT + timedelta(days=1)
PENDING_SECONDS = 14 * 24 * 3600
BIG_BASKET = {"id": "big-basket", "points": 15, "conditions": {"min_total": 100}}


def make_program(**fields: Any) -> Program:
    """Program "acme": item level, 1 point per EUR, a 15-point bonus from 100 EUR."""
    body: dict[str, Any] = {
        "name": "acme",
        "currency": "EUR",
        "earn": {"level": "item", "campaigns": [BIG_BASKET]},
        **fields,
    }
    return Program.model_validate(body)


def checkout(body: dict[str, Any]) -> Checkout:
    """A checkout body as the rules get it: validated by the contract, then translated."""
    return to_checkout(CheckoutEvent.model_validate(body))


def seed_event(**data: Any) -> CheckoutEvent:
    """The seed checkout as it comes on the wire."""
    body = seed_item_level_checkout()
    body["data"].update(data)
    return CheckoutEvent.model_validate(body)


def seed(**data: Any) -> Checkout:
    return to_checkout(seed_event(**data))


def seed_earning_45(**data: Any) -> Checkout:
    """The seed checkout with its second item rewarded 25 partner points instead of 10: it
    earns 45, the figure the refund and lifecycle examples are worked out with."""
    body = seed_item_level_checkout()
    body["data"]["items"][1]["points_rewarded"] = 25
    body["data"].update(data)
    return checkout(body)


def seed_computed(**data: Any) -> Checkout:
    """The seed checkout without its partner-computed item points: the program's rules price it."""
    body = seed_item_level_checkout()
    for item in body["data"]["items"]:
        del item["points_rewarded"]
    body["data"].update(data)
    return checkout(body)


def guest_event(**data: Any) -> Checkout:
    body = seed_item_level_checkout()
    body["data"]["items"][1]["points_rewarded"] = 25
    del body["customer"]
    body["guest"] = True
    body["data"]["points_burned"] = 0
    body["data"].update(data)
    return checkout(body)


def effects(action: str = "checkout", at: datetime = AT, key: str = "key-1") -> Effects:
    return Effects(EventMeta("acme", key, action, at))


def rich_customer(spendable: int = 100) -> Customer:
    return Customer(program="acme", customer_id=CUSTOMER, score=spendable, spendable=spendable)


def balances(c: Customer) -> tuple[int, int, int, int]:
    return (c.score, c.spendable, c.pending, c.spent)
