"""What the checkout and lifecycle rules take: a purchase, its order lines, a checkout and a
checkout update, as plain domain values. The wire models (``services/contract/inbound.py``)
are translated to these at the edge (``services/service_layer/actions.py``), so a change of
the wire shape never reaches the rules. Money is ``Decimal``, points ``int``.

Values, never changed once built; not frozen only because one is built per order line of
every event, and a frozen dataclass costs several times as much to build (each field set
through ``object.__setattr__``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from services.domain.transaction import IntentType


@dataclass(slots=True)
class PurchaseItem:
    """An order line as sent: its subtotal, or price, quantity and discount to work it out."""

    product_id: str | None = None
    product_name: str | None = None
    product_url: str | None = None
    category: str | None = None
    price: Decimal | None = None
    quantity: Decimal = Decimal(1)
    discount: Decimal | None = None
    subtotal: Decimal | None = None
    points_rewarded: int | None = None

    @property
    def effective_subtotal(self) -> Decimal:
        if self.subtotal is not None:
            return self.subtotal
        if self.price is None:
            raise ValueError("an item needs a subtotal or a price")
        return self.price * self.quantity - (self.discount or Decimal(0))


class ProductLine(Protocol):
    """What an order line's catalog product is found by: the domain's line or the wire's, so
    that the rows an event reads are known without translating it first."""

    @property
    def product_id(self) -> str | None: ...
    @property
    def category(self) -> str | None: ...


class PurchaseContents(Protocol):
    """What prices a purchase: a checkout's data, an update's merged data, or a preview's cart."""

    @property
    def total(self) -> Decimal: ...
    @property
    def currency(self) -> str | None: ...
    @property
    def items(self) -> Sequence[PurchaseItem]: ...
    @property
    def store(self) -> str | None: ...
    @property
    def points_rewarded(self) -> int | None: ...


@dataclass(slots=True)
class Purchase:
    """Just what prices a purchase (the read API's points preview of a cart)."""

    total: Decimal
    currency: str | None = None
    items: tuple[PurchaseItem, ...] = ()
    store: str | None = None
    points_rewarded: int | None = None


@dataclass(slots=True)
class Checkout:
    """A checkout to register: for a customer, or a guest's (``guest``, no customer)."""

    transaction_id: str
    total: Decimal
    customer: str | None = None
    guest: bool = False
    currency: str | None = None
    points_burned: int = 0
    points_rewarded: int | None = None
    items: tuple[PurchaseItem, ...] = ()
    coupons: tuple[str, ...] = ()
    offers: tuple[str, ...] = ()
    store: str | None = None
    auto_accept: datetime | None = None
    type: IntentType = IntentType.Shop
    metadata: dict[str, Any] | None = None
    utm_data: dict[str, Any] | None = None


@dataclass(slots=True)
class CheckoutUpdate:
    """What a pending transaction's update replaces; ``None`` keeps the transaction's own
    (currency, burn, store, metadata, auto-accept date)."""

    transaction_id: str
    total: Decimal
    currency: str | None = None
    points_burned: int | None = None
    points_rewarded: int | None = None
    items: tuple[PurchaseItem, ...] = ()
    store: str | None = None
    auto_accept: datetime | None = None
    metadata: dict[str, Any] | None = None
