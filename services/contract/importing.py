"""The historical import's record (``loyalty import transactions FILE``): one whole, final
transaction per JSON line or CSV row. Amounts are ``Decimal`` (lines are parsed with
``parse_float=Decimal``), points integers; a field this model does not name is refused, as
everywhere. Items use the checkout's vocabulary (:class:`services.contract.inbound.CheckoutItem`).

A transaction is ``accepted``, ``refunded`` or ``partially_refunded`` (``refunded``, the amount
refunded, is then required and below ``total``). ``points_earned`` is what the purchase earned
(before refunds); when absent, the program's earn rules at ``occurred_at`` compute it, with the
checkout's own pricing. ``points_revoked`` (refunded ones only) overrides the proportional share
the refund rules revoke.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal, Self

from pydantic import AwareDatetime, Field, model_validator

from services.contract.free_form import FreeForm
from services.contract.inbound import CheckoutItem, Id, NonNegativeMoney, Points, PositiveMoney, _Body
from services.domain.transaction import IntentType

ImportStatus = Literal["accepted", "refunded", "partially_refunded"]

# The CSV columns, in this order in a written file (any order, any subset with a header row
# naming them, is read; an unknown column refuses the file). An empty cell is an absent field;
# ``items`` is a JSON array of checkout items, ``metadata`` a JSON object.
CSV_COLUMNS = (
    "program",
    "customer",
    "transaction_id",
    "status",
    "occurred_at",
    "accepted_at",
    "refunded_at",
    "total",
    "currency",
    "refunded",
    "points_earned",
    "points_burned",
    "points_revoked",
    "store",
    "type",
    "items",
    "metadata",
)
CSV_JSON_COLUMNS = frozenset({"items", "metadata"})


class ImportRecord(_Body):
    program: Id | None = None
    # Only customer transactions are imported: a guest's purchase changes nobody's balances.
    customer: Id
    transaction_id: Id
    status: ImportStatus
    occurred_at: AwareDatetime
    accepted_at: AwareDatetime | None = None  # default: occurred_at
    refunded_at: AwareDatetime | None = None  # default: accepted_at
    total: NonNegativeMoney
    currency: Annotated[str, Field(min_length=3, max_length=3)] | None = None
    refunded: PositiveMoney | None = None
    items: list[CheckoutItem] = Field(default_factory=list, max_length=1000)
    points_earned: Points | None = None
    points_burned: Points = 0
    points_revoked: Points | None = None
    store: Id | None = None
    type: IntentType = IntentType.Shop
    metadata: FreeForm | None = None

    @model_validator(mode="after")
    def _final_state(self) -> Self:
        if self.status == "partially_refunded":
            if self.refunded is None:
                raise ValueError("refunded: required for a partially_refunded transaction")
            if self.refunded >= self.total:
                raise ValueError("refunded: a partial refund is below the total")
        elif self.status == "refunded":
            if self.refunded is not None and self.refunded != self.total:
                raise ValueError("refunded: a refunded transaction gives back its whole total")
            if self.total == Decimal(0):
                raise ValueError("total: a refunded transaction has a total above 0")
        else:
            if self.refunded is not None or self.points_revoked is not None or self.refunded_at is not None:
                raise ValueError("refunded, refunded_at, points_revoked: only for refunded transactions")
        revoked, earned = self.points_revoked, self.points_earned
        if revoked is not None and earned is not None and revoked > earned:
            raise ValueError("points_revoked: more than points_earned")
        return self
