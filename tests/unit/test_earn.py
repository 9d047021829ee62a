"""Points math: rounding, item/transaction level, multipliers, overrides, rates, campaigns."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.domain.earn import (
    CampaignBonus,
    Cart,
    CartItem,
    EarnResult,
    compute_earn,
    item_base_points,
    item_multiplier,
)
from services.domain.program import Program, Rounding

D = Decimal


def program(**earn: Any) -> Program:
    return Program.model_validate({"name": "p", "earn": earn})


def item(subtotal: str | int, product: str | None = None, category: str | None = None, **kw: Any) -> CartItem:
    return CartItem(product_id=product, subtotal=D(subtotal), category=category, **kw)


# --- Rounding ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "floor", "ceil", "half_up", "half_even"),
    [
        ("2.5", 2, 3, 3, 2),
        ("3.5", 3, 4, 4, 4),
        ("2.4", 2, 3, 2, 2),
        ("2.6", 2, 3, 3, 3),
        ("7", 7, 7, 7, 7),
        ("0.01", 0, 1, 0, 0),
        ("0.5", 0, 1, 1, 0),
    ],
)
def test_rounding_modes(value: str, floor: int, ceil: int, half_up: int, half_even: int) -> None:
    v = D(value)
    assert Rounding.floor.to_points(v) == floor
    assert Rounding.ceil.to_points(v) == ceil
    assert Rounding.half_up.to_points(v) == half_up
    assert Rounding.half_even.to_points(v) == half_even
    assert all(isinstance(Rounding(m).to_points(v), int) for m in Rounding)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("floor", 2), ("ceil", 3), ("half_up", 3), ("half_even", 2)],
)
def test_transaction_level_rounds_the_total(mode: str, expected: int) -> None:
    p = program(level="transaction", rounding=mode)
    assert compute_earn(p, Cart(total=D("2.5"))).base == expected


@pytest.mark.parametrize(
    ("mode", "expected"),
    # Items 1.5 + 1.5 + 1.5: per item floor 1+1+1, ceil 2+2+2, half_up 2+2+2, half_even 2+2+2.
    [("floor", 3), ("ceil", 6), ("half_up", 6), ("half_even", 6)],
)
def test_item_level_rounds_each_item(mode: str, expected: int) -> None:
    p = program(level="item", rounding=mode)
    cart = Cart(total=D("4.5"), items=(item("1.5"), item("1.5"), item("1.5")))
    result = compute_earn(p, cart)
    assert result.base == expected
    assert sum(result.item_points) == expected
    assert len(result.item_points) == 3


def test_item_level_differs_from_transaction_level_by_per_item_rounding() -> None:
    cart = Cart(total=D("1.8"), items=(item("0.6"), item("0.6"), item("0.6")))
    assert compute_earn(program(level="item"), cart).base == 0  # floor(0.6) * 3
    assert compute_earn(program(level="transaction"), cart).base == 1  # floor(1.8)
    assert compute_earn(program(level="transaction"), cart).item_points == ()


def test_item_level_without_items_earns_on_the_total() -> None:
    result = compute_earn(program(level="item", points_per_unit=2), Cart(total=D("10.4")))
    assert result.base == 20
    assert result.item_points == ()


def test_points_per_unit_scales_points() -> None:
    p = program(level="item", points_per_unit="2.5")
    result = compute_earn(p, Cart(total=D(14), items=(item(4), item(10))))
    assert result.item_points == (10, 25)
    assert result.base == 35


# --- Multipliers and overrides ----------------------------------------------------------------


def test_product_multiplier_beats_category_multiplier() -> None:
    p = program(category_multipliers={"shoes": 2}, product_multipliers={"002": "1.5"})
    assert item_multiplier(p, item(10, product="002", category="shoes")) == D("1.5")
    assert item_multiplier(p, item(10, product="003", category="shoes")) == D(2)
    assert item_multiplier(p, item(10, product="003", category="hats")) == D(1)
    assert item_multiplier(p, item(10)) == D(1)
    cart = Cart(
        total=D(30),
        items=(
            item(10, product="002", category="shoes"),
            item(10, product="003", category="shoes"),
            item(10, product="004"),
        ),
    )
    result = compute_earn(p, cart)
    assert result.item_points == (15, 20, 10)
    assert result.base == 45


def test_item_points_rewarded_replaces_that_items_base_only() -> None:
    p = program(category_multipliers={"shoes": 3})
    cart = Cart(
        total=D(30),
        items=(item(10, category="shoes", points_rewarded=7), item(20, category="shoes")),
    )
    result = compute_earn(p, cart)
    assert result.item_points == (7, 60)
    assert result.base == 67
    assert item_base_points(p, item(10, points_rewarded=0), D(1)) == 0


def test_transaction_points_rewarded_replaces_everything() -> None:
    p = program(campaigns=[{"id": "always", "points": 50}], category_multipliers={"shoes": 3})
    cart = Cart(total=D(100), items=(item(100, category="shoes"),), points_rewarded=12)
    result = compute_earn(p, cart)
    assert result == EarnResult(base=12, bonus=0)
    assert result.points == 12
    assert result.campaigns == ()


@pytest.mark.parametrize("level", ["item", "transaction"])
def test_every_item_rewarded_earns_exactly_their_sum(level: str) -> None:
    """Antavo: with custom values pre-filled it performs no calculation (the seed's item-level
    example earns 20 + 10, no campaign bonus on top)."""
    p = program(level=level, campaigns=[{"id": "always", "points": 50}])
    cart = Cart(total=D(150), items=(item(95, points_rewarded=20), item(50, points_rewarded=10)))
    assert compute_earn(p, cart) == EarnResult(base=30, bonus=0, item_points=(20, 10))


def test_a_cart_partly_rewarded_is_still_computed_with_campaigns() -> None:
    p = program(level="item", campaigns=[{"id": "always", "points": 50}])
    cart = Cart(total=D(150), items=(item(95, points_rewarded=20), item(50)))
    result = compute_earn(p, cart)
    assert (result.item_points, result.base, result.bonus) == ((20, 50), 70, 50)


def test_exchange_rate_applies_to_items_total_and_campaign_thresholds() -> None:
    rate = D("0.92")
    item_level = program(level="item", rounding="floor")
    result = compute_earn(item_level, Cart(total=D(150), items=(item(100), item(50)), rate=rate))
    assert result.item_points == (92, 46)
    trans_level = program(level="transaction", rounding="half_up")
    assert compute_earn(trans_level, Cart(total=D(150), rate=rate)).base == 138
    # min_total compares the converted total: 105 * 0.92 = 96.6 < 100.
    campaign = program(campaigns=[{"id": "big", "points": 15, "conditions": {"min_total": 100}}])
    assert compute_earn(campaign, Cart(total=D(105), rate=rate)).bonus == 0
    assert compute_earn(campaign, Cart(total=D(110), rate=rate)).bonus == 15


# --- Campaigns --------------------------------------------------------------------------------

T0 = datetime(2024, 6, 1, tzinfo=UTC)


def campaign_program(conditions: dict[str, Any], **campaign: Any) -> Program:
    spec = {"id": "c1", "points": 5, **campaign, "conditions": conditions}
    return program(level="transaction", campaigns=[spec])


@pytest.mark.parametrize(
    ("conditions", "cart", "applies"),
    [
        ({"min_total": 100}, Cart(total=D(100)), True),
        ({"min_total": 100}, Cart(total=D("99.99")), False),
        ({"stores": ["s1"]}, Cart(total=D(10), store="s1"), True),
        ({"stores": ["s1"]}, Cart(total=D(10), store="s2"), False),
        ({"stores": ["s1"]}, Cart(total=D(10)), False),
        ({"types": ["Buy"]}, Cart(total=D(10), type="Buy"), True),
        ({"types": ["Buy"]}, Cart(total=D(10), type="Shop"), False),
        ({"categories": ["shoes"]}, Cart(total=D(10), items=(item(10, category="shoes"),)), True),
        ({"categories": ["shoes"]}, Cart(total=D(10), items=(item(10, category="hats"),)), False),
        ({"categories": ["shoes"]}, Cart(total=D(10)), False),
        ({"products": ["001"]}, Cart(total=D(10), items=(item(10, product="001"),)), True),
        ({"products": ["001"]}, Cart(total=D(10), items=(item(10, product="002"),)), False),
        ({"starts_at": T0.isoformat()}, Cart(total=D(10), occurred_at=T0), True),
        (
            {"starts_at": T0.isoformat()},
            Cart(total=D(10), occurred_at=datetime(2024, 5, 31, tzinfo=UTC)),
            False,
        ),
        ({"ends_at": T0.isoformat()}, Cart(total=D(10), occurred_at=T0), False),  # ends_at is exclusive
        ({"ends_at": T0.isoformat()}, Cart(total=D(10), occurred_at=datetime(2024, 5, 31, tzinfo=UTC)), True),
        (
            {"min_total": 50, "stores": ["s1"], "types": ["Shop"]},
            Cart(total=D(60), store="s1", type="Shop"),
            True,
        ),
        (
            {"min_total": 50, "stores": ["s1"], "types": ["Shop"]},
            Cart(total=D(60), store="s1", type="Buy"),
            False,
        ),
    ],
)
def test_campaign_conditions(conditions: dict[str, Any], cart: Cart, applies: bool) -> None:
    result = compute_earn(campaign_program(conditions), cart)
    if applies:
        assert result.campaigns == (CampaignBonus("c1", 5),)
        assert result.bonus == 5
    else:
        assert result.campaigns == ()
        assert result.bonus == 0


def test_campaign_fixed_points_plus_points_per_unit_on_the_whole_total() -> None:
    p = campaign_program({}, points=5, points_per_unit="0.5")
    result = compute_earn(p, Cart(total=D(41)))
    assert result.base == 41
    assert result.campaigns == (CampaignBonus("c1", 5 + 20),)  # floor(41 * 0.5) = 20
    assert result.points == 41 + 25


def test_campaign_points_per_unit_counts_only_qualifying_items() -> None:
    p = program(
        level="item",
        campaigns=[{"id": "shoes-x2", "points_per_unit": 1, "conditions": {"categories": ["shoes"]}}],
    )
    cart = Cart(
        total=D(100),
        items=(
            item(30, category="shoes"),
            item(50, category="hats"),
            item(20, product="x", category="shoes"),
        ),
        rate=D(2),
    )
    result = compute_earn(p, cart)
    assert result.campaigns == (CampaignBonus("shoes-x2", 100),)  # (30 + 20) * rate 2
    assert result.base == 200


def test_bonus_reported_per_campaign_and_points_is_base_plus_bonus() -> None:
    p = program(
        level="transaction",
        campaigns=[
            {"id": "a", "points": 10},
            {"id": "b", "points": 3, "conditions": {"min_total": 1000}},
            {"id": "c", "points_per_unit": "0.1"},
            {"id": "d", "points": 1, "points_per_unit": 1, "conditions": {"stores": ["s"]}},
        ],
    )
    result = compute_earn(p, Cart(total=D(55), store="s"))
    assert result.campaigns == (CampaignBonus("a", 10), CampaignBonus("c", 5), CampaignBonus("d", 56))
    assert result.bonus == 71
    assert result.base == 55
    assert result.points == result.base + result.bonus == 126


def test_campaign_that_rounds_to_zero_is_not_reported() -> None:
    p = campaign_program({}, points=0, points_per_unit="0.01")
    result = compute_earn(p, Cart(total=D(50)))
    assert result.campaigns == ()
    assert result.bonus == 0


def test_campaign_bonus_uses_program_rounding() -> None:
    p = program(level="transaction", rounding="ceil", campaigns=[{"id": "c", "points_per_unit": "0.1"}])
    assert compute_earn(p, Cart(total=D(41))).campaigns == (CampaignBonus("c", 5),)


def test_naive_campaign_window_is_rejected_at_load_or_handled() -> None:
    try:
        p = campaign_program({"starts_at": "2024-01-01T00:00:00"})
    except Exception:
        return  # rejected when the program is loaded: acceptable
    result = compute_earn(p, Cart(total=D(10), occurred_at=T0))
    assert result.bonus == 5


# --- Properties -------------------------------------------------------------------------------

money = st.decimals(min_value=0, max_value=D(100_000), places=2)
multipliers = st.decimals(min_value=0, max_value=D(10), places=2)


@given(
    base=money,
    extra=money,
    points_per_unit=st.decimals(min_value=0, max_value=D(20), places=3),
    multiplier=multipliers,
    level=st.sampled_from(["item", "transaction"]),
)
def test_floor_points_are_monotone_in_the_subtotal(
    base: Decimal, extra: Decimal, points_per_unit: Decimal, multiplier: Decimal, level: str
) -> None:
    p = program(
        level=level,
        rounding="floor",
        points_per_unit=points_per_unit,
        category_multipliers={"c": multiplier},
    )

    def points(subtotal: Decimal) -> int:
        cart = Cart(total=subtotal, items=(CartItem(product_id="x", subtotal=subtotal, category="c"),))
        return compute_earn(p, cart).points

    assert points(base) <= points(base + extra)


@given(
    st.lists(
        st.tuples(money, st.sampled_from([None, "shoes", "hats"]), st.sampled_from([None, "001", "002"])),
        min_size=1,
        max_size=10,
    ),
    st.sampled_from(list(Rounding)),
    st.decimals(min_value=D("0.01"), max_value=D(5), places=2),
)
def test_item_level_base_is_the_sum_of_item_points(
    specs: list[tuple[Decimal, str | None, str | None]], rounding: Rounding, rate: Decimal
) -> None:
    p = program(
        level="item",
        rounding=rounding.value,
        points_per_unit="1.5",
        category_multipliers={"shoes": 2},
        product_multipliers={"001": 3},
    )
    items = tuple(CartItem(product_id=prod, subtotal=sub, category=cat) for sub, cat, prod in specs)
    cart = Cart(total=sum((i.subtotal for i in items), D(0)), items=items, rate=rate)
    result = compute_earn(p, cart)
    expected = tuple(item_base_points(p, i, rate) for i in items)
    assert result.item_points == expected
    assert result.base == sum(expected)
    for i, pts in zip(items, result.item_points, strict=True):
        assert pts == rounding.to_points(i.subtotal * rate * D("1.5") * item_multiplier(p, i))
