"""Points math for a purchase: base points by the earn rules, bonus points by campaigns.

Pure functions over a :class:`Cart`. The same code serves checkout ingestion and the points
preview, so a preview always equals what the checkout then earns.

Rules (documented in docs/points.md):
- item level: each item earns ``round(subtotal * points_per_unit * multiplier)``, rounded per
  item (as Antavo rates each checkout_item separately); transaction level: the total earns
  ``round(total * points_per_unit)``. Amounts are first converted into the program currency.
- multiplier: the product's if configured, else the category's, else 1.
- an item's ``points_rewarded`` replaces that item's computed base; the transaction's
  ``points_rewarded`` (partner override) replaces the whole result, bonus included, and so
  does a cart whose every item carries ``points_rewarded`` (their sum, at either level).
- each campaign whose conditions hold adds its fixed ``points`` plus
  ``round(qualifying_amount * points_per_unit)``; bonus is reported per campaign.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from services.domain.program import Campaign, Program


# Values, never changed once built; slotted and not frozen, as several are built per event and
# a frozen dataclass costs several times as much to build (services/domain/purchase.py).
@dataclass(slots=True)
class CartItem:
    product_id: str | None
    subtotal: Decimal
    quantity: Decimal = Decimal(1)
    category: str | None = None
    points_rewarded: int | None = None


@dataclass(slots=True)
class Cart:
    total: Decimal
    items: tuple[CartItem, ...] = ()
    rate: Decimal = Decimal(1)
    store: str | None = None
    type: str = "Shop"
    occurred_at: datetime | None = None
    points_rewarded: int | None = None


@dataclass(slots=True)
class CampaignBonus:
    campaign: str
    points: int


@dataclass(slots=True)
class EarnResult:
    base: int
    bonus: int
    campaigns: tuple[CampaignBonus, ...] = ()
    item_points: tuple[int, ...] = field(default=())

    @property
    def points(self) -> int:
        return self.base + self.bonus


def item_multiplier(program: Program, item: CartItem) -> Decimal:
    rules = program.earn
    if item.product_id is not None and item.product_id in rules.product_multipliers:
        return rules.product_multipliers[item.product_id]
    if item.category is not None and item.category in rules.category_multipliers:
        return rules.category_multipliers[item.category]
    return Decimal(1)


def item_base_points(program: Program, item: CartItem, rate: Decimal) -> int:
    if item.points_rewarded is not None:
        return item.points_rewarded
    rules = program.earn
    return rules.rounding.to_points(
        item.subtotal * rate * rules.points_per_unit * item_multiplier(program, item)
    )


def _qualifying_amount(campaign: Campaign, cart: Cart) -> Decimal | None:
    """The amount the campaign rewards, or None when its conditions do not hold."""
    cond = campaign.conditions
    if cond.min_total is not None and cart.total * cart.rate < cond.min_total:
        return None
    if cond.stores and cart.store not in cond.stores:
        return None
    if cond.types and cart.type not in cond.types:
        return None
    if cart.occurred_at is not None:
        if cond.starts_at is not None and cart.occurred_at < cond.starts_at:
            return None
        if cond.ends_at is not None and cart.occurred_at >= cond.ends_at:
            return None
    if not (cond.categories or cond.products):
        return cart.total * cart.rate
    matching = [
        item
        for item in cart.items
        if (item.category is not None and item.category in cond.categories)
        or (item.product_id is not None and item.product_id in cond.products)
    ]
    if not matching:
        return None
    return sum((item.subtotal for item in matching), Decimal(0)) * cart.rate


def campaign_bonuses(program: Program, cart: Cart) -> tuple[CampaignBonus, ...]:
    bonuses = []
    for campaign in program.earn.campaigns:
        amount = _qualifying_amount(campaign, cart)
        if amount is None:
            continue
        points = campaign.points + program.earn.rounding.to_points(amount * campaign.points_per_unit)
        if points > 0:
            bonuses.append(CampaignBonus(campaign.id, points))
    return tuple(bonuses)


def compute_earn(program: Program, cart: Cart) -> EarnResult:
    # Partner-computed rewards are used as they are, with no calculation on top (Antavo):
    # no campaign bonus when the transaction, or every one of its items, carries them.
    if cart.points_rewarded is not None:
        return EarnResult(base=cart.points_rewarded, bonus=0)
    if cart.items and all(item.points_rewarded is not None for item in cart.items):
        item_points = tuple(item.points_rewarded or 0 for item in cart.items)
        return EarnResult(base=sum(item_points), bonus=0, item_points=item_points)
    if program.earn.level == "item" and cart.items:
        item_points = tuple(item_base_points(program, item, cart.rate) for item in cart.items)
        base = sum(item_points)
    else:
        item_points = ()
        base = program.earn.rounding.to_points(cart.total * cart.rate * program.earn.points_per_unit)
    bonuses = campaign_bonuses(program, cart)
    return EarnResult(
        base=base,
        bonus=sum(b.points for b in bonuses),
        campaigns=bonuses,
        item_points=item_points,
    )
