"""Splitting an integer quantity (points, minor units) in proportion to weights, exactly.

Largest-remainder method: each part gets the floor of its exact share, then the units left
over go to the largest fractional remainders (ties: earlier parts first). The parts always
sum to the whole, so nothing drifts however a transaction is later split.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal


def allocate(whole: int, weights: Sequence[Decimal]) -> list[int]:
    if whole < 0:
        raise ValueError("allocate() splits a non-negative whole")
    if not weights:
        if whole:
            raise ValueError("cannot split a non-zero whole into no parts")
        return []
    if any(w < 0 for w in weights):
        raise ValueError("weights are non-negative")
    if whole == 0:
        return [0] * len(weights)  # most checkouts burn nothing: no division, no sort
    total_weight = sum(weights, Decimal(0))
    if total_weight == 0:
        # Nothing to weigh by: split evenly.
        weights = [Decimal(1)] * len(weights)
        total_weight = Decimal(len(weights))
    exact = [whole * w / total_weight for w in weights]
    parts = [int(share) for share in exact]  # shares are >= 0, so int() floors
    left = whole - sum(parts)
    by_remainder = sorted(range(len(exact)), key=lambda i: (-(exact[i] - parts[i]), i))
    for i in by_remainder[:left]:
        parts[i] += 1
    return parts


def proportional_share(whole: int, part: Decimal, total: Decimal) -> int:
    """``floor(whole * part / total)``; the whole once ``part`` reaches ``total``."""
    if part >= total:
        return whole
    if total <= 0:
        return 0
    return int(whole * part / total)  # non-negative, so int() floors
