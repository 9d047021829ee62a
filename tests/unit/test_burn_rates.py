"""Burn rates (services/domain/burn.py): the worth of spendable points per currency."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from services.domain.burn import BurnRate, burn_rate, burn_rates
from tests.harness import make_program


def test_antavo_example_fifty_points_per_unit() -> None:
    # Antavo's example: 1 GBP per 50 points, 440 spendable: 8 GBP and 40 points left.
    assert burn_rate("GBP", Decimal(50), 440) == BurnRate("GBP", 1, 50, 8, 40)


def test_rates_in_the_program_currency_then_each_exchange_currency() -> None:
    program = make_program("p", currency="EUR", exchange_rates={"usd": "0.92", "GBP": "1.15"})
    rates = burn_rates(program, 440)
    assert [(r.currency, r.amount, r.points) for r in rates] == [
        ("EUR", 1, 10),
        ("GBP", 2, 23),  # 1 GBP = 11.5 points
        ("USD", 5, 46),  # 1 USD = 9.2 points
    ]
    # 440 points: 44 EUR; 38 GBP cost 437 points; 47 USD cost 432.4, rounded up to 433.
    assert [(r.converted_amount, r.unconverted_points) for r in rates] == [(44, 0), (38, 3), (47, 7)]


def test_fractional_rate_is_the_smallest_whole_ratio() -> None:
    assert burn_rate("EUR", Decimal("2.5"), 7) == BurnRate("EUR", 2, 5, 2, 2)


def test_nothing_to_convert_from_zero_or_a_negative_balance() -> None:
    for spendable in (0, -25):
        rate = burn_rate("EUR", Decimal(10), spendable)
        assert (rate.converted_amount, rate.unconverted_points) == (0, 0)


@given(
    spendable=st.integers(min_value=0, max_value=10**12),
    per_unit=st.decimals(min_value=Decimal("0.01"), max_value=Decimal(10_000), places=2),
)
def test_converted_units_are_the_most_the_points_buy(spendable: int, per_unit: Decimal) -> None:
    rate = burn_rate("EUR", per_unit, spendable)
    cost = spendable - rate.unconverted_points
    # The units bought cost at most the points, rounded up to whole points ...
    assert rate.converted_amount * per_unit <= cost < rate.converted_amount * per_unit + 1
    assert 0 <= rate.unconverted_points <= spendable
    # ... and one more unit would cost more than the customer has.
    assert (rate.converted_amount + 1) * per_unit > spendable
    # The rate pair is the configured ratio.
    assert Decimal(rate.points) / Decimal(rate.amount) == per_unit
