"""Money on output: a plain decimal string with the currency's minor units (DESIGN.md section 2).

``Decimal("1E+2")`` in EUR is ``"100.00"``, ``Decimal("0.5")`` is ``"0.50"``, and JPY has no
minor unit (``"100"``), KWD three (``"1.500"``). Formatting never loses a digit: an amount more
precise than its currency's minor unit keeps its extra digits (``"10.005"``), since inputs may
carry up to six decimals and rounding them away on output would change the sum of a ledger.
"""

from __future__ import annotations

from decimal import Decimal

# ISO 4217 currencies whose minor unit is not two digits; every other code has two.
_MINOR_UNITS: dict[str, int] = {
    **dict.fromkeys(
        (
            "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW",
            "PYG", "RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF",
        ),
        0,
    ),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    **dict.fromkeys(("CLF", "UYW"), 4),
}  # fmt: skip

DEFAULT_MINOR_UNITS = 2


def minor_units(currency: str | None) -> int:
    """Digits of the currency's minor unit (2 for EUR cents); 2 when the currency is unknown."""
    if not currency:
        return DEFAULT_MINOR_UNITS
    return _MINOR_UNITS.get(currency.upper(), DEFAULT_MINOR_UNITS)


_QUANTUM = {digits: Decimal(1).scaleb(-digits) for digits in range(7)}


def format_money(amount: Decimal, digits: int = DEFAULT_MINOR_UNITS) -> str:
    """``amount`` as a plain decimal string with at least ``digits`` decimals, never an exponent."""
    if not amount.is_finite():
        raise ValueError(f"not a finite amount: {amount}")
    exact = amount.quantize(_QUANTUM[digits])
    if exact == amount:
        # str() writes no exponent for at most six decimals, at a third of format()'s cost.
        return str(exact)
    return f"{amount.normalize():f}"  # more decimals than the minor unit: keep the significant ones


def money_text(amount: Decimal, currency: str | None) -> str:
    return format_money(amount, minor_units(currency))
