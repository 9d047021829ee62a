"""Every inbound action: what it locks and which domain rule applies it (DESIGN.md section 2).

Thin glue between the unit of work and the pure domain. A transaction that does not exist yet
becomes a draft and the event parks (services/service_layer/docs/parking.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from services.contract import inbound
from services.domain.catalog import (
    Coupon,
    assign_coupon,
    coupons_for_checkout,
    give_back_coupon,
    invalidate_coupon,
    redeem_coupon,
    unredeem_standalone_coupon,
)
from services.domain.checkout import (
    catalog_categories,
    claim_guest_checkout,
    products_without_category,
    register_checkout,
)
from services.domain.customer import Customer
from services.domain.effects import Effects, Parked, Rejected
from services.domain.enrichment import enrich_transaction
from services.domain.lifecycle import (
    accept_checkout,
    check_customer,
    expire_pending,
    reject_checkout,
    unspend_points,
    update_checkout,
)
from services.domain.money import money_text
from services.domain.program import Program
from services.domain.purchase import Checkout, CheckoutUpdate, PurchaseItem
from services.domain.refunds import partial_refund, refund, refund_item, unredeem_coupon, unredeem_offers
from services.domain.transaction import Status, Transaction
from services.service_layer.registry import Action, TopicHandler
from services.service_layer.unit_of_work import Needs, UnitOfWork


def to_item(item: inbound.CheckoutItem) -> PurchaseItem:
    """A wire order line as the domain's: the rules never see the contract's models."""
    return PurchaseItem(
        product_id=item.product_id,
        product_name=item.product_name,
        product_url=item.product_url,
        category=item.category,
        price=item.price,
        quantity=item.quantity,
        discount=item.discount,
        subtotal=item.subtotal,
        points_rewarded=item.points_rewarded,
    )


def to_items(items: Iterable[inbound.CheckoutItem]) -> tuple[PurchaseItem, ...]:
    return tuple(to_item(item) for item in items)


def to_checkout(event: inbound.CheckoutEvent) -> Checkout:
    data = event.data
    return Checkout(
        transaction_id=data.transaction_id,
        total=data.total,
        customer=event.customer,
        guest=event.guest,
        currency=data.currency,
        points_burned=data.points_burned,
        points_rewarded=data.points_rewarded,
        items=to_items(data.items),
        coupons=tuple(data.coupons),
        offers=tuple(data.offers),
        store=data.store,
        auto_accept=data.auto_accept,
        type=data.type,
        metadata=data.metadata,
        utm_data=data.utm_data,
    )


def to_checkout_update(event: inbound.CheckoutUpdateEvent) -> CheckoutUpdate:
    data = event.data
    return CheckoutUpdate(
        transaction_id=data.transaction_id,
        total=data.total,
        currency=data.currency,
        points_burned=data.points_burned,
        points_rewarded=data.points_rewarded,
        items=to_items(data.items),
        store=data.store,
        auto_accept=data.auto_accept,
        metadata=data.metadata,
    )


def _keys(program: str, event: Any) -> Needs:
    customers = [(program, event.customer)] if event.customer else []
    return Needs(customers=customers, transactions=[(program, event.data.transaction_id)])


def _purchase_keys(program: str, event: Any) -> Needs:
    """A checkout or update also reads the catalog products of items sent without a category
    (their catalog category feeds the category earn rules); a checkout locks its coupons."""
    needs = _keys(program, event)
    needs.catalog = [(program, "product", pid) for pid in products_without_category(event.data.items)]
    needs.coupons = [(program, code) for code in getattr(event.data, "coupons", [])]
    return needs


def _categories(uow: UnitOfWork, program: str, items: Iterable[PurchaseItem]) -> dict[str, str]:
    return catalog_categories(items, lambda pid: uow.catalog.get((program, "product", pid)))


def _no_rows(program: str, event: Any) -> Needs:
    return Needs()


def _catalog_write(kind: str, id_field: str, delete: bool = False) -> Any:
    """product/store/offer upsert and delete: last writer wins, per entity, in partition order."""

    def apply(uow: UnitOfWork, program: Program, event: Any, effects: Effects) -> None:
        doc = None if delete else event.data.model_dump(mode="json")
        uow.put_catalog((program.name, kind, getattr(event.data, id_field)), doc)

    return apply


def registration_to_enrich(status: dict[str, Any]) -> dict[str, Any] | None:
    """A ``loyalty.transaction-status`` message: a registration (from none or draft) becomes an
    internal ``enrich`` event keyed ``enrich:<transaction id>``; any other change is skipped."""
    if status.get("from_status") not in (None, "draft") or status.get("to_status") in (None, "draft"):
        return None
    txn: dict[str, Any] = status["transaction"] if isinstance(status.get("transaction"), dict) else {}
    items: list[Any] = txn["items"] if isinstance(txn.get("items"), list) else []
    return {
        "action": "enrich",
        "event_id": f"enrich:{status.get('transaction_id')}",
        "program": status.get("program"),
        "customer": status.get("customer"),
        "occurred_at": status.get("at"),
        "data": {
            "transaction_id": status.get("transaction_id"),
            "product_ids": [i["product_id"] for i in items if isinstance(i, dict) and i.get("product_id")],
            "store": txn.get("store"),
        },
    }


def _enrich_needs(program: str, event: inbound.EnrichEvent) -> Needs:
    needs = _keys(program, event)
    needs.catalog = [(program, "product", pid) for pid in event.data.product_ids]
    if event.data.store:
        needs.catalog.append((program, "store", event.data.store))
    return needs


def _enrich(uow: UnitOfWork, program: Program, event: inbound.EnrichEvent, effects: Effects) -> None:
    txn = uow.transaction(program.name, event.data.transaction_id)
    if txn is None:
        raise Rejected("unknown_transaction", f"transaction {event.data.transaction_id} is not registered")
    enrich_transaction(program, txn, lambda kind, id_: uow.catalog.get((program.name, kind, id_)), effects)
    uow.put_transaction(txn)


def _coupon_assign(
    uow: UnitOfWork, program: Program, event: inbound.CouponAssignEvent, effects: Effects
) -> None:
    coupon = Coupon(**event.data.model_dump(), assigned_at=effects.meta.occurred_at)
    uow.put_coupon(program.name, assign_coupon(uow.coupons.get((program.name, coupon.code)), coupon))


def _transaction_or_draft(uow: UnitOfWork, program: Program, event: Any) -> Transaction:
    """The event's transaction; if it does not exist yet, the event parks (and the pipeline
    registers a draft for it)."""
    tid = event.data.transaction_id
    txn = uow.transaction(program.name, tid)
    if txn is None:
        raise Parked("awaiting_checkout", f"transaction {tid} has no checkout yet")
    return txn


def _owner(uow: UnitOfWork, txn: Transaction) -> Customer | None:
    return uow.customer(txn.program, txn.customer) if txn.customer else None


def _checkout(uow: UnitOfWork, program: Program, event: inbound.CheckoutEvent, effects: Effects) -> None:
    existing = uow.transaction(program.name, event.data.transaction_id)
    customer = uow.customer(program.name, event.customer) if event.customer else None
    checkout = to_checkout(event)
    categories = _categories(uow, program.name, checkout.items)
    codes = event.data.coupons
    redeemed = coupons_for_checkout(
        codes,
        {c: uow.coupons.get((program.name, c)) for c in codes},
        event.customer,
        effects.meta.occurred_at,
    )
    uow.put_transaction(register_checkout(program, checkout, customer, existing, effects, categories))
    for coupon in redeemed:
        uow.put_coupon(program.name, coupon)


def _coupon_redeem(
    uow: UnitOfWork, program: Program, event: inbound.CouponRedeemEvent, effects: Effects
) -> None:
    data = event.data
    key = (program.name, data.code)
    coupon = redeem_coupon(
        uow.coupons.get(key), data.code, event.customer, data.amount, effects.meta.occurred_at
    )
    uow.put_coupon(program.name, coupon)
    currency = coupon.currency or program.currency
    effects.benefit(
        "coupon.redeemed",
        event.customer,
        {
            "coupon": data.code,
            "transaction_id": data.transaction_id,
            "customer": event.customer,
            "amount": None if data.amount is None else money_text(data.amount, currency),
            "balance": None if coupon.balance is None else money_text(coupon.balance, currency),
            "status": coupon.status.value,
        },
    )


def _coupon_invalidate(
    uow: UnitOfWork, program: Program, event: inbound.CouponInvalidateEvent, effects: Effects
) -> None:
    code = event.data.code
    coupon = invalidate_coupon(uow.coupons.get((program.name, code)), code)
    uow.put_coupon(program.name, coupon)
    effects.benefit(
        "coupon.invalidated",
        coupon.customer,
        {
            "coupon": code,
            "customer": coupon.customer,
            "status": coupon.status.value,
            "reason": event.data.reason,
        },
    )


def _claim(uow: UnitOfWork, program: Program, event: inbound.CheckoutClaimEvent, effects: Effects) -> None:
    txn = _transaction_or_draft(uow, program, event)
    claim_guest_checkout(uow.customer(program.name, event.customer), txn, effects)
    uow.put_transaction(txn)


def _update(uow: UnitOfWork, program: Program, event: inbound.CheckoutUpdateEvent, effects: Effects) -> None:
    txn = _transaction_or_draft(uow, program, event)
    check_customer(event.customer, txn)
    update = to_checkout_update(event)
    categories = _categories(uow, program.name, update.items)
    update_checkout(program, update, _owner(uow, txn), txn, effects, categories)
    uow.put_transaction(txn)


def _lifecycle(rule: Any) -> Any:
    """accept / reject / unspend: same glue, different rule."""

    def apply(uow: UnitOfWork, program: Program, event: Any, effects: Effects) -> None:
        txn = _transaction_or_draft(uow, program, event)
        check_customer(event.customer, txn)
        rule(_owner(uow, txn), txn, effects)
        uow.put_transaction(txn)

    return apply


def _auto_expire(uow: UnitOfWork, program: Program, event: inbound.AutoExpireEvent, effects: Effects) -> None:
    txn = uow.transaction(program.name, event.data.transaction_id)
    if txn is None:
        raise Rejected("unknown_transaction", f"transaction {event.data.transaction_id} is gone")
    expire_pending(program, _owner(uow, txn), txn, effects)
    uow.put_transaction(txn)


def _refund(rule: Any) -> Any:
    """refund / partial_refund / refund_item: same glue, different rule."""

    def apply(uow: UnitOfWork, program: Program, event: Any, effects: Effects) -> None:
        txn = _transaction_or_draft(uow, program, event)
        check_customer(event.customer, txn)
        owner = _owner(uow, txn)
        given_back = set(txn.coupons_unredeemed)
        rule(owner, txn, event.data, effects)
        uow.put_transaction(txn)
        if owner is not None and txn.status is Status.refunded:
            uow.mark_purchase_dates_stale((program.name, owner.customer_id))
        # Coupons the transaction gave back can be used again (locked with the transaction).
        for code in set(txn.coupons_unredeemed) - given_back:
            if (coupon := uow.coupons.get((program.name, code))) is not None:
                uow.put_coupon(program.name, give_back_coupon(coupon, getattr(event.data, "amount", None)))

    return apply


_unredeem_with_transaction = _refund(lambda c, txn, d, fx: unredeem_coupon(txn, d.code, fx))


def _coupon_unredeem_needs(program: str, event: inbound.CouponUnredeemEvent) -> Needs:
    """With a transaction: the transaction (its coupons come with it); standalone: the customer
    and the coupon, as ``coupon_redeem``."""
    if event.data.transaction_id is not None:
        return _keys(program, event)
    return Needs(
        customers=[(program, event.customer)] if event.customer else [], coupons=[(program, event.data.code)]
    )


def _coupon_unredeem(
    uow: UnitOfWork, program: Program, event: inbound.CouponUnredeemEvent, effects: Effects
) -> None:
    """``coupon_unredeem``: with a ``transaction_id``, a coupon redeemed with that purchase;
    without, what a standalone ``coupon_redeem`` spent (a gift card's amount, or a used-up
    coupon), announced by ``coupon.unredeemed`` with the amount and the balance."""
    if event.data.transaction_id is not None:
        _unredeem_with_transaction(uow, program, event, effects)
        return
    data = event.data
    customer = event.customer or ""  # required by the model when standalone
    coupon = unredeem_standalone_coupon(
        uow.coupons.get((program.name, data.code)), data.code, customer, data.amount
    )
    uow.put_coupon(program.name, coupon)
    currency = coupon.currency or program.currency
    effects.benefit(
        "coupon.unredeemed",
        customer,
        {
            "coupon": data.code,
            "transaction_id": None,
            "customer": customer,
            "amount": None if data.amount is None else money_text(data.amount, currency),
            "balance": None if coupon.balance is None else money_text(coupon.balance, currency),
            "status": coupon.status.value,
        },
    )


ACTIONS: dict[str, Action] = {
    "checkout": Action(inbound.CheckoutEvent, _purchase_keys, _checkout),
    "checkout_claim": Action(inbound.CheckoutClaimEvent, _keys, _claim),
    "coupon_redeem": Action(
        inbound.CouponRedeemEvent,
        lambda program, event: Needs(
            customers=[(program, event.customer)], coupons=[(program, event.data.code)]
        ),
        _coupon_redeem,
    ),
    "checkout_update": Action(inbound.CheckoutUpdateEvent, _purchase_keys, _update),
    "checkout_accept": Action(inbound.CheckoutAcceptEvent, _keys, _lifecycle(accept_checkout)),
    "checkout_reject": Action(inbound.CheckoutRejectEvent, _keys, _lifecycle(reject_checkout)),
    "point_unspend": Action(inbound.PointUnspendEvent, _keys, _lifecycle(unspend_points)),
    "auto_expire": Action(inbound.AutoExpireEvent, _keys, _auto_expire),
    "refund": Action(inbound.RefundEvent, _keys, _refund(lambda c, txn, d, fx: refund(c, txn, d.offers, fx))),
    "partial_refund": Action(
        inbound.PartialRefundEvent,
        _keys,
        _refund(lambda c, txn, d, fx: partial_refund(c, txn, d.amount, d.offers, fx)),
    ),
    "refund_item": Action(
        inbound.RefundItemEvent,
        _keys,
        _refund(
            lambda c, txn, d, fx: refund_item(c, txn, d.product_id, d.quantity, d.subtotal, d.offers, fx)
        ),
    ),
    "product_upsert": Action(inbound.ProductUpsertEvent, _no_rows, _catalog_write("product", "product_id")),
    "product_delete": Action(
        inbound.ProductDeleteEvent, _no_rows, _catalog_write("product", "product_id", delete=True)
    ),
    "store_upsert": Action(inbound.StoreUpsertEvent, _no_rows, _catalog_write("store", "store_id")),
    "store_delete": Action(
        inbound.StoreDeleteEvent, _no_rows, _catalog_write("store", "store_id", delete=True)
    ),
    "offer_upsert": Action(inbound.OfferUpsertEvent, _no_rows, _catalog_write("offer", "offer_id")),
    "enrich": Action(inbound.EnrichEvent, _enrich_needs, _enrich),
    "coupon_assign": Action(
        inbound.CouponAssignEvent,
        lambda program, event: Needs(coupons=[(program, event.data.code)]),
        _coupon_assign,
    ),
    "coupon_invalidate": Action(
        inbound.CouponInvalidateEvent,
        lambda program, event: Needs(coupons=[(program, event.data.code)]),
        _coupon_invalidate,
    ),
    "offer_unredeem": Action(
        inbound.OfferUnredeemEvent, _keys, _refund(lambda c, txn, d, fx: unredeem_offers(txn, d.offers, fx))
    ),
    "coupon_unredeem": Action(inbound.CouponUnredeemEvent, _coupon_unredeem_needs, _coupon_unredeem),
}


def checkout_ingestion() -> TopicHandler:
    return TopicHandler(
        "checkout-ingestion", "checkouts", frozenset({"checkout", "checkout_claim", "coupon_redeem"}), ACTIONS
    )


def pending_lifecycle() -> TopicHandler:
    return TopicHandler(
        "pending-lifecycle",
        "lifecycle",
        frozenset({"checkout_update", "checkout_accept", "checkout_reject", "point_unspend"}),
        ACTIONS,
    )


def refunds() -> TopicHandler:
    return TopicHandler(
        "refunds",
        "refunds",
        frozenset({"refund", "partial_refund", "refund_item", "offer_unredeem", "coupon_unredeem"}),
        ACTIONS,
    )


def transaction_enrichment() -> TopicHandler:
    """The enrichment consumer's second subscription: registrations on transaction-status."""
    return TopicHandler(
        "enrichment", "transaction_status", frozenset({"enrich"}), ACTIONS, registration_to_enrich
    )


def enrichment() -> TopicHandler:
    return TopicHandler(
        "enrichment",
        "catalog",
        frozenset(
            {
                "product_upsert",
                "product_delete",
                "store_upsert",
                "store_delete",
                "offer_upsert",
                "coupon_assign",
                "coupon_invalidate",
            }
        ),
        ACTIONS,
    )
