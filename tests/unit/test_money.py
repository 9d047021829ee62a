"""Money on output: plain decimal strings with the currency's minor units, never losing a digit."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.domain.money import format_money, minor_units, money_text


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        ("1E+2", "EUR", "100.00"),
        ("0.5", "usd", "0.50"),
        ("1E+3", "JPY", "1000"),
        ("80.5", "KWD", "80.500"),
        ("10.005", "EUR", "10.005"),
        ("12.345000", "EUR", "12.345"),
        ("7", None, "7.00"),
        ("1.5", "CLF", "1.5000"),
    ],
)
def test_examples(amount: str, currency: str | None, text: str) -> None:
    assert money_text(Decimal(amount), currency) == text


def test_unknown_currencies_have_two_digits() -> None:
    assert minor_units("XYZ") == minor_units("") == 2


@given(
    st.decimals(min_value=-(10**12), max_value=10**12, places=6, allow_nan=False, allow_infinity=False),
    st.integers(min_value=0, max_value=6),
)
def test_formatting_is_exact_plain_and_has_the_minor_unit(amount: Decimal, digits: int) -> None:
    text = format_money(amount, digits)
    assert Decimal(text) == amount
    assert "E" not in text and "e" not in text
    decimals = len(text.split(".")[1]) if "." in text else 0
    assert decimals >= digits
