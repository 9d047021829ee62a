"""Burn rates: what a customer's spendable points are worth, in each currency the program takes
(Antavo's ``burn_rates`` on the customer). Pure.

- ``points`` points buy ``amount`` currency units: the rate as the smallest whole numbers.
  ``burn.points_per_unit: 10`` gives 10 points per 1 EUR; with ``exchange_rates: {USD: "0.92"}``
  one USD is worth 9.2 points, so 46 points per 5 USD.
- ``converted_amount``: the most whole currency units the spendable points buy.
- ``unconverted_points``: what is left after paying for them, a part point rounded up
  against the customer (points are whole): 440 points buy 47 USD for 433 points, 7 left.
- A negative balance (refunds revoked points already spent) converts to nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from services.domain.program import Program


@dataclass(frozen=True)
class BurnRate:
    currency: str
    amount: int
    points: int
    converted_amount: int
    unconverted_points: int


def burn_rate(currency: str, points_per_unit: Decimal, spendable: int) -> BurnRate:
    # Whole-number arithmetic on the rate's ratio: exact, whatever the size of the numbers.
    points, amount = points_per_unit.as_integer_ratio()
    convertible = max(spendable, 0)
    converted = convertible * amount // points
    cost = -(-converted * points // amount)  # ceiling division
    return BurnRate(
        currency=currency,
        amount=amount,
        points=points,
        converted_amount=converted,
        unconverted_points=convertible - cost,
    )


def burn_rates(program: Program, spendable: int) -> list[BurnRate]:
    """The program currency first, then each currency it has an exchange rate for."""
    per_unit = program.burn.points_per_unit
    rates = [burn_rate(program.currency, per_unit, spendable)]
    for currency, rate in sorted(program.exchange_rates.items()):
        if rate > 0:
            rates.append(burn_rate(currency, per_unit * rate, spendable))
    return rates
