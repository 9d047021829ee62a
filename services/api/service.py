"""What each read API request does, between the HTTP layer and the SQL: reads rows, applies
the same domain code the consumers use (burn rates, checkout pricing), builds the views.
No HTTP here: failures are :class:`NotFound`, or the domain's ``Rejected``."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal

import asyncpg

from services.api import queries
from services.contract.api import (
    USABLE_COUPONS,
    Balances,
    BurnRateView,
    CampaignPointsView,
    CouponFilters,
    CouponView,
    CustomerView,
    ItemPoints,
    LedgerEntryView,
    PointsPreview,
    PointsPreviewRequest,
    PurchaseAttributes,
    PurchasePoints,
    StatusChange,
    TransactionFilters,
)
from services.domain.burn import burn_rates
from services.domain.catalog import Coupon
from services.domain.checkout import catalog_categories, price_purchase, products_without_category
from services.domain.money import format_money, minor_units, money_text
from services.domain.program import Program
from services.domain.purchase import Purchase
from services.service_layer.actions import to_items


class NotFound(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class TransactionSlice:
    """One page of stored transaction documents (JSON text) and whether more follow."""

    docs: list[bytes]
    has_more: bool


async def transaction_page(
    pool: asyncpg.Pool, program: Program, customer_id: str, filters: TransactionFilters
) -> TransactionSlice:
    async with pool.acquire() as conn:
        # One row more than the page tells whether a next page exists, without counting.
        docs = await queries.transaction_docs(conn, program.name, customer_id, filters, filters.limit + 1)
        # Only an empty page pays for telling "no such customer" from "nothing matches".
        if not docs and not await queries.customer_exists(conn, program.name, customer_id):
            raise _no_customer(customer_id)
    return TransactionSlice(docs[: filters.limit], len(docs) > filters.limit)


@dataclass(frozen=True)
class TransactionRecord:
    """One transaction: its stored document (JSON text, spliced as is, so its money keeps the
    transaction currency's minor units), its status history and its points ledger."""

    doc: bytes
    status_history: list[StatusChange]
    points_ledger: list[LedgerEntryView]


async def transaction_detail(pool: asyncpg.Pool, program: Program, transaction_id: str) -> TransactionRecord:
    async with pool.acquire() as conn:
        doc = await queries.transaction_doc(conn, program.name, transaction_id)
        if doc is None:
            raise NotFound("transaction_not_found", f"no transaction {transaction_id!r} in this program")
        history = await queries.status_history(conn, program.name, transaction_id)
        ledger = await queries.ledger_entries(conn, program.name, transaction_id)
    return TransactionRecord(
        doc=doc.encode(),
        status_history=[StatusChange(**row) for row in history],
        points_ledger=[LedgerEntryView(**row) for row in ledger],
    )


async def customer_view(pool: asyncpg.Pool, program: Program, customer_id: str) -> CustomerView:
    async with pool.acquire() as conn:
        customer = await queries.customer(conn, program.name, customer_id)
    if customer is None:
        raise _no_customer(customer_id)
    digits = minor_units(program.currency)
    return CustomerView(
        customer_id=customer.customer_id,
        balances=Balances(
            score=customer.score, spendable=customer.spendable, pending=customer.pending, spent=customer.spent
        ),
        purchase=PurchaseAttributes(
            total=format_money(customer.purchase_total, digits),
            count=customer.purchase_count,
            items=customer.purchase_items,
            avg_total=_money(_rounded(customer.purchase_avg_total, digits), digits),
            avg_items=_rounded(customer.purchase_avg_items, 4),
            first_date=customer.purchase_first_date,
            last_date=customer.purchase_last_date,
        ),
        burn_rates=[
            BurnRateView(
                **{
                    **asdict(rate),
                    "amount": money_text(Decimal(rate.amount), rate.currency),
                    "converted_amount": money_text(Decimal(rate.converted_amount), rate.currency),
                }
            )
            for rate in burn_rates(program, customer.spendable)
        ],
    )


async def customer_coupons(
    pool: asyncpg.Pool, program: Program, customer_id: str, filters: CouponFilters
) -> list[CouponView]:
    """The customer's coupons in the statuses asked for (by default the usable ones: claimed
    and partially redeemed), soonest expiry first, then by code."""
    statuses = [s.value for s in filters.status or USABLE_COUPONS]
    async with pool.acquire() as conn:
        docs = await queries.coupon_docs(conn, program.name, customer_id, statuses)
        # As for transactions: only an empty list pays for telling "no such customer" apart.
        # A customer with coupons is known, even before any purchase created its profile.
        if not docs and not await queries.customer_exists(conn, program.name, customer_id):
            raise _no_customer(customer_id)
    coupons = [Coupon.model_validate(doc) for doc in docs]
    never = datetime.max.replace(tzinfo=UTC)
    coupons.sort(key=lambda c: (c.expires_at or never, c.code))
    return [_coupon_view(program, c) for c in coupons]


def _coupon_view(program: Program, coupon: Coupon) -> CouponView:
    if coupon.type == "percent":
        # A percentage, not money: as given, without currency digits.
        currency = coupon.currency
        value = None if coupon.value is None else format_money(coupon.value, 0)
    else:
        currency = coupon.currency or program.currency
        value = None if coupon.value is None else money_text(coupon.value, currency)
    return CouponView(
        code=coupon.code,
        status=coupon.status,
        type=coupon.type,
        value=value,
        balance=None if coupon.balance is None else money_text(coupon.balance, currency),
        currency=currency,
        expires_at=coupon.expires_at,
        pool=coupon.pool,
        created_at=coupon.assigned_at,
    )


async def points_preview(pool: asyncpg.Pool, program: Program, cart: PointsPreviewRequest) -> PointsPreview:
    """What a checkout of this cart would earn now: the checkout's own pricing, catalog
    categories included, and nothing written."""
    purchase = Purchase(
        total=cart.total,
        currency=cart.currency,
        items=to_items(cart.items),
        store=cart.store,
        points_rewarded=cart.points_rewarded,
    )
    wanted = products_without_category(purchase.items)
    products = {}
    if wanted:
        async with pool.acquire() as conn:
            products = await queries.product_docs(conn, program.name, wanted)
    pricing = price_purchase(
        program,
        purchase,
        points_burned=0,
        purchase_type=cart.type.value,
        occurred_at=cart.occurred_at or datetime.now(UTC),
        categories=catalog_categories(purchase.items, products.get),
    )
    earn = pricing.earn
    return PointsPreview(
        purchase=PurchasePoints(base=earn.base, bonus=earn.bonus, points=earn.points),
        campaigns=[CampaignPointsView(campaign=c.campaign, points=c.points) for c in earn.campaigns],
        items=[
            ItemPoints(product_id=item.product_id, category=item.category, points=item.points_rewarded)
            for item in pricing.items
        ],
    )


def _money(value: Decimal | None, digits: int) -> str | None:
    return None if value is None else format_money(value, digits)


def _rounded(value: Decimal | None, digits: int) -> Decimal | None:
    """Averages to the currency's minor unit (items: to the quantity's 4 places), not 28 digits."""
    return None if value is None else value.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_EVEN)


def _no_customer(customer_id: str) -> NotFound:
    return NotFound("customer_not_found", f"no customer {customer_id!r} in this program")
