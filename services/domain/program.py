"""A loyalty program (tenant) and its rules: plain, validated values with no I/O.

Loaded from the programs YAML file (see ``services.config.programs``); every field has a default
so that a minimal program is ``{currency: EUR}``.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator


class Rounding(StrEnum):
    floor = "floor"
    ceil = "ceil"
    half_up = "half_up"
    half_even = "half_even"

    @property
    def decimal_mode(self) -> str:
        return _DECIMAL_MODES[self]

    def to_points(self, value: Decimal) -> int:
        return int(value.to_integral_value(rounding=self.decimal_mode))


_DECIMAL_MODES = {
    Rounding.floor: ROUND_FLOOR,
    Rounding.ceil: ROUND_CEILING,
    Rounding.half_up: ROUND_HALF_UP,
    Rounding.half_even: ROUND_HALF_EVEN,
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CampaignConditions(_Strict):
    """All given conditions must hold for the campaign to apply."""

    min_total: Decimal | None = None
    categories: frozenset[str] = frozenset()
    products: frozenset[str] = frozenset()
    stores: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None


class Campaign(_Strict):
    """A bonus campaign (Antavo's 'campaign bonus' node): adds points shown apart as bonus.

    ``points`` is a fixed bonus; ``points_per_unit`` adds points per currency unit of the
    qualifying amount (the items matching the category/product conditions, or the whole
    total when there are none). Both may be given; they add up.
    """

    id: str
    points: int = Field(default=0, ge=0)
    points_per_unit: Decimal = Field(default=Decimal(0), ge=0)
    conditions: CampaignConditions = CampaignConditions()

    @model_validator(mode="after")
    def _gives_something(self) -> Campaign:
        if self.points == 0 and self.points_per_unit == 0:
            raise ValueError(f"campaign {self.id!r} gives no points: set points or points_per_unit")
        return self


class EarnRules(_Strict):
    """How purchases earn points. ``level`` decides item-level (each item's subtotal) or
    transaction-level (the total) earning. Product multipliers win over category ones."""

    level: Literal["item", "transaction"] = "item"
    points_per_unit: Decimal = Field(default=Decimal(1), ge=0)
    rounding: Rounding = Rounding.floor
    category_multipliers: dict[str, Decimal] = Field(default_factory=dict)
    product_multipliers: dict[str, Decimal] = Field(default_factory=dict)
    campaigns: tuple[Campaign, ...] = ()


class BurnRules(_Strict):
    """The value of points when spent: ``points_per_unit`` points buy one currency unit."""

    points_per_unit: Decimal = Field(default=Decimal(10), gt=0)


class PendingPeriod(_Strict):
    """With a period, checkouts wait as ``pending`` until accepted, rejected or the timer."""

    seconds: int = Field(gt=0)
    on_expiry: Literal["accept", "reject"] = "accept"

    @property
    def duration(self) -> timedelta:
        return timedelta(seconds=self.seconds)


class ParkedMaxAge(_Strict):
    """How long an event may stay parked (services/service_layer/docs/parking.md): older, the
    pending timer gives it its final ``rejected`` result, ``parked_expired``. Default 30 days."""

    seconds: int = Field(default=30 * 24 * 3600, gt=0)

    @property
    def duration(self) -> timedelta:
        return timedelta(seconds=self.seconds)


class ShareRates(_Strict):
    """FlipGive-style revenue shares of a transaction's total; the merchant keeps the rest."""

    campaign: Decimal = Field(default=Decimal(0), ge=0, le=1)
    partner: Decimal = Field(default=Decimal(0), ge=0, le=1)
    platform: Decimal = Field(default=Decimal(0), ge=0, le=1)

    @model_validator(mode="after")
    def _at_most_whole(self) -> ShareRates:
        if self.campaign + self.partner + self.platform > 1:
            raise ValueError("campaign + partner + platform shares exceed 1")
        return self


class Program(_Strict):
    name: str
    currency: str = Field(default="EUR", min_length=3, max_length=3)
    # Rates into the program currency: {"USD": "0.92"} means 1 USD = 0.92 program units.
    exchange_rates: dict[str, Decimal] = Field(default_factory=dict)
    earn: EarnRules = EarnRules()
    burn: BurnRules = BurnRules()
    pending_period: PendingPeriod | None = None
    parked_max_age: ParkedMaxAge = ParkedMaxAge()
    shares: ShareRates = ShareRates()
    # Read API keys bound to this program, stored as SHA-256 hex digests, never in clear
    # (services/api/docs/read-api.md; `python -m services.admin hash-api-key` makes one).
    api_keys_sha256: frozenset[Annotated[str, Field(pattern="^[0-9a-f]{64}$")]] = frozenset()
    metadata_schema: dict[str, Any] | None = None

    @field_validator("currency")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    @field_validator("exchange_rates")
    @classmethod
    def _upper_rates(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        return {currency.upper(): rate for currency, rate in value.items()}

    @field_validator("metadata_schema")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            from jsonschema import Draft202012Validator

            Draft202012Validator.check_schema(value)
        return value

    def rate_from(self, currency: str | None) -> Decimal | None:
        """The factor converting ``currency`` into the program currency, or None if unknown."""
        if currency is None or currency.upper() == self.currency:
            return Decimal(1)
        return self.exchange_rates.get(currency.upper())
