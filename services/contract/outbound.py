"""Outbound message shapes (DESIGN.md section 3). ``schemas/outbound/*.json`` is generated
from these models. Money in snapshots is a decimal string; points are integers."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from services.domain.transaction import Status

WebhookType = Literal[
    "transaction.created",
    "transaction.updated",
    "transaction.accepted",
    "transaction.rejected",
    "transaction.partially_refunded",
    "transaction.refunded",
    "transaction.claimed",
    "transaction.enriched",
    "points.earned",
    "points.pending",
    "points.burned",
    "points.revoked",
    "points.restored",
    "coupon.redeemed",
    "coupon.unredeemed",
    "offer.redeemed",
    "offer.unredeemed",
]

Outcome = Literal["applied", "duplicate", "parked", "rejected"]


class Cause(BaseModel):
    event_id: str
    action: str


class TransactionStatusMessage(BaseModel):
    """``loyalty.transaction-status``, keyed by transaction id."""

    program: str
    transaction_id: str
    customer: str | None
    from_status: Status | None
    to_status: Status
    at: datetime
    cause: Cause
    transaction: dict[str, Any] = Field(description="The transaction snapshot after the change.")


class WebhookMessage(BaseModel):
    """``loyalty.webhooks``, keyed by customer id (transaction id for an unclaimed guest
    checkout); headers ``webhook-type`` and, when the program has a secret,
    ``signature: sha256=<hex HMAC-SHA256 of the value bytes>``."""

    id: str
    type: WebhookType
    program: str
    occurred_at: datetime
    data: dict[str, Any]


class ResultError(BaseModel):
    code: str
    message: str


class PointsEffects(BaseModel):
    points_earned: int = 0
    points_pending: int = 0
    points_burned: int = 0
    points_revoked: int = 0
    points_restored: int = 0


class EventResultMessage(BaseModel):
    """``loyalty.event-results``, keyed by event id: the asynchronous API response."""

    event_id: str
    program: str
    action: str | None
    transaction_id: str | None
    outcome: Outcome
    error: ResultError | None
    effects: PointsEffects


DLQ_HEADERS = ("error-code", "error-message", "source-topic", "source-partition", "source-offset")
