"""allocate(): largest-remainder split of a non-negative integer by Decimal weights."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.domain.allocation import allocate

# Weights as the inbound contract allows them: up to 18 digits, 6 of them decimals.
weights_st = st.lists(
    st.decimals(min_value=0, max_value=Decimal("999999999999.999999"), places=6),
    min_size=1,
    max_size=30,
)
# Points are bounded by the contract at 10**12.
whole_st = st.integers(min_value=0, max_value=10**12)


def exact_shares(whole: int, weights: list[Decimal]) -> list[Fraction]:
    total = sum((Fraction(w) for w in weights), Fraction(0))
    if total == 0:
        return [Fraction(whole, len(weights))] * len(weights)
    return [whole * Fraction(w) / total for w in weights]


@given(whole_st, weights_st)
def test_parts_sum_exactly_to_the_whole(whole: int, weights: list[Decimal]) -> None:
    parts = allocate(whole, weights)
    assert len(parts) == len(weights)
    assert sum(parts) == whole
    assert all(isinstance(p, int) and p >= 0 for p in parts)


@given(whole_st, weights_st)
def test_each_part_is_within_one_of_its_exact_share(whole: int, weights: list[Decimal]) -> None:
    parts = allocate(whole, weights)
    for part, share in zip(parts, exact_shares(whole, weights), strict=True):
        assert abs(part - share) < 1


@given(
    st.integers(min_value=0, max_value=10**6),
    st.lists(
        st.decimals(min_value=0, max_value=Decimal("1e20"), allow_nan=False, allow_infinity=False),
        min_size=1,
        max_size=10,
    ),
)
def test_parts_sum_for_arbitrary_decimal_weights(whole: int, weights: list[Decimal]) -> None:
    parts = allocate(whole, weights)
    assert sum(parts) == whole
    for part, share in zip(parts, exact_shares(whole, weights), strict=True):
        assert abs(part - share) < 1


@given(whole_st, st.integers(min_value=1, max_value=50))
def test_zero_weights_split_evenly(whole: int, n: int) -> None:
    parts = allocate(whole, [Decimal(0)] * n)
    assert sum(parts) == whole
    assert max(parts) - min(parts) <= 1
    # Ties go to the earlier parts first.
    assert parts == sorted(parts, reverse=True)


@pytest.mark.parametrize(
    ("whole", "weights", "expected"),
    [
        (10, [Decimal(95), Decimal(50)], [7, 3]),  # 6.55 / 3.45: the extra unit goes to .55
        (10, [Decimal(1), Decimal(1), Decimal(1)], [4, 3, 3]),  # ties: earlier first
        (0, [Decimal(3), Decimal(7)], [0, 0]),
        (5, [Decimal(0), Decimal(2)], [0, 5]),
        (7, [Decimal(0), Decimal(0)], [4, 3]),
        (100, [Decimal("0.5")], [100]),
        (1, [Decimal(1), Decimal(2)], [0, 1]),
    ],
)
def test_examples(whole: int, weights: list[Decimal], expected: list[int]) -> None:
    assert allocate(whole, weights) == expected


def test_no_weights_gives_no_parts() -> None:
    assert allocate(0, []) == []
    with pytest.raises(ValueError):
        allocate(5, [])


def test_negative_whole_raises() -> None:
    with pytest.raises(ValueError):
        allocate(-1, [Decimal(1)])


def test_negative_weight_raises() -> None:
    with pytest.raises(ValueError):
        allocate(10, [Decimal(1), Decimal(-1)])
    with pytest.raises(ValueError):
        allocate(0, [Decimal("-0.000001")])
