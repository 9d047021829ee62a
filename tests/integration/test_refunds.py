"""Refunds end to end: checkout, lifecycle and refunds consumers together on the real broker
and database. Refunds give back exactly what the purchase gave."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.domain.program import Program
from services.service_layer.actions import checkout_ingestion, enrichment, pending_lifecycle, refunds
from tests.harness import Engine, make_program
from tests.integration.conftest import Db
from tests.integration.test_pending_lifecycle import at, event

pytestmark = pytest.mark.integration

ITEMS = [
    {"product_id": "shirt", "price": "19.99", "quantity": 3, "subtotal": "59.97", "category": "shoes"},
    {"product_id": "socks", "price": "4.00", "quantity": 2, "subtotal": "8.00"},
]


def engine_for(kafka: str, database_url: str, *programs: Program) -> Engine:
    handlers = [enrichment(), checkout_ingestion(), pending_lifecycle(), refunds()]
    return Engine(kafka, database_url, handlers, list(programs))


def assign(customer: str, code: str, event_id: str) -> dict[str, Any]:
    return {"action": "coupon_assign", "event_id": event_id, "customer": customer, "data": {"code": code}}


def program(**fields: Any) -> Program:
    earn = {
        "level": "item",
        "points_per_unit": "1.5",
        "rounding": "half_up",
        "category_multipliers": {"shoes": 2},
    }
    return make_program(f"ref-{uuid.uuid4().hex[:6]}", earn=earn, **fields)


async def play(engine: Engine, *bodies: dict[str, Any]) -> dict[str, dict[str, Any]]:
    for body in bodies:
        topic = {
            "checkout": "checkouts",
            "checkout_accept": "lifecycle",
            "checkout_reject": "lifecycle",
            "coupon_assign": "catalog",
        }.get(body["action"], "refunds")
        await engine.send(body, topic=topic)
        await engine.wait_for_result(body["event_id"])
    return {v["event_id"]: v for v in engine.values("event_results")}


async def test_full_refund_returns_everything_to_before_the_purchase(kafka_bootstrap, database_url, dbq: Db):
    p = program()
    c = "returner"
    async with engine_for(kafka_bootstrap, database_url, p) as engine:
        await play(engine, event("checkout", c, "earlier", "e0", 0, total=200), assign(c, "WELCOME5", "a0"))
        before = await dbq.balances(p.name, c)
        await play(
            engine,
            event(
                "checkout",
                c,
                "T",
                "buy",
                10,
                total="67.97",
                points_burned=50,
                items=ITEMS,
                coupons=["WELCOME5"],
                offers=["bogo"],
            ),
        )
        after_purchase = await dbq.balances(p.name, c)
        results = await play(engine, event("refund", c, "T", "back", 20, offers=["bogo"]))
        await engine.wait_for("webhooks", 12)
    assert after_purchase != before
    assert await dbq.balances(p.name, c) == before
    txn = await dbq.transaction(p.name, "T")
    assert txn["status"] == "refunded" and Decimal(txn["refunded"]) == Decimal("67.97")
    assert txn["points_revoked"] == txn["points_earned"] and txn["points_restored"] == 50
    assert txn["coupons_unredeemed"] == ["WELCOME5"] and txn["offers_unredeemed"] == ["bogo"]
    assert [i["refunded_quantity"] for i in txn["items"]] == ["3", "2"]
    effects = results["back"]["effects"]
    assert (effects["points_revoked"], effects["points_restored"]) == (txn["points_earned"], 50)
    types = [dict(r.headers)["webhook-type"].decode() for r in engine.received["webhooks"]]
    for expected in (
        "points.revoked",
        "points.restored",
        "coupon.unredeemed",
        "offer.unredeemed",
        "transaction.refunded",
    ):
        assert expected in types
    assert await dbq.ledger_mismatches(p.name) == []


async def test_full_refunds_move_purchase_dates_to_the_purchases_that_still_count(
    kafka_bootstrap, database_url, dbq: Db
):
    p = program()
    c = "regular"
    dates = {minute: datetime.fromisoformat(at(minute)) for minute in (0, 10, 20, 30)}

    async def purchase_dates() -> tuple[datetime | None, datetime | None]:
        row = await dbq.customer(p.name, c)
        assert row is not None
        return row["purchase_first_date"], row["purchase_last_date"]

    async with engine_for(kafka_bootstrap, database_url, p) as engine:
        await play(engine, *(event("checkout", c, f"T{m}", f"buy{m}", m, total=10) for m in dates))
        assert await purchase_dates() == (dates[0], dates[30])
        await play(engine, event("refund", c, "T10", "back10", 40))  # between: nothing moves
        assert await purchase_dates() == (dates[0], dates[30])
        await play(engine, event("refund", c, "T0", "back0", 41))
        assert await purchase_dates() == (dates[20], dates[30])
        await play(engine, event("partial_refund", c, "T30", "part30", 42, amount="4"))  # still counts
        assert await purchase_dates() == (dates[20], dates[30])
        await play(engine, event("refund", c, "T30", "back30", 43))
        assert await purchase_dates() == (dates[20], dates[20])
        await play(engine, event("refund", c, "T20", "back20", 44))
        assert await purchase_dates() == (None, None)


async def test_partial_and_item_refunds_covering_everything_equal_one_refund(
    kafka_bootstrap, database_url, dbq: Db
):
    p = program()
    async with engine_for(kafka_bootstrap, database_url, p) as engine:
        for c in ("whole", "pieces"):
            await play(engine, event("checkout", c, f"{c}-0", f"{c}-seed", 0, total=100))
            await play(
                engine, event("checkout", c, c, f"{c}-buy", 1, total="67.97", points_burned=30, items=ITEMS)
            )
        await play(engine, event("refund", "whole", "whole", "whole-back", 2))
        results = await play(
            engine,
            event("refund_item", "pieces", "pieces", "p1", 2, product_id="shirt", quantity=1),
            event("refund_item", "pieces", "pieces", "p2", 3, product_id="socks", quantity=2),
            event("partial_refund", "pieces", "pieces", "p3", 4, amount="20.00"),
            # The last units take exactly what is left (19.98), however the amounts fell.
            event("refund_item", "pieces", "pieces", "p4", 5, product_id="shirt", quantity=2),
        )
    assert [results[e]["outcome"] for e in ("p1", "p2", "p3", "p4")] == ["applied"] * 4
    whole, pieces = await dbq.balances(p.name, "whole"), await dbq.balances(p.name, "pieces")
    assert whole == pieces
    a, b = await dbq.transaction(p.name, "whole"), await dbq.transaction(p.name, "pieces")
    for field in ("status", "refunded", "points_revoked", "points_restored", "points_earned"):
        assert a[field] == b[field], field
    revoked = sum(results[e]["effects"]["points_revoked"] for e in ("p1", "p2", "p3", "p4"))
    assert revoked == b["points_earned"]


async def test_refund_rules_and_ordering(kafka_bootstrap, database_url, dbq: Db):
    p = program(pending_period={"seconds": 3600})
    c = "careful"
    async with engine_for(kafka_bootstrap, database_url, p) as engine:
        results = await play(
            engine,
            # Refund before its checkout: a draft, parked; applied once checkout and accept came.
            event("partial_refund", c, "early", "early-refund", 5, amount=10),
            event("checkout", c, "early", "early-buy", 0, total=40),
            event("checkout_accept", c, "early", "early-accept", 1),
            # Refund of a rejected transaction.
            event("checkout", c, "gone", "gone-buy", 0, total=40),
            event("checkout_reject", c, "gone", "gone-reject", 1),
            event("refund", c, "gone", "gone-refund", 2),
            # Over-refund and a duplicate.
            event("checkout", c, "small", "small-buy", 0, total=20),
            event("checkout_accept", c, "small", "small-accept", 1),
            event("partial_refund", c, "small", "too-much", 2, amount="20.01"),
            event("partial_refund", c, "small", "fine", 3, amount=5),
        )
        await engine.send(event("partial_refund", c, "small", "fine", 3, amount=5), topic="refunds")
        await engine.wait_for("event_results", len(engine.received["event_results"]) + 1)
    outcomes = [(v["event_id"], v["outcome"]) for v in engine.values("event_results")]
    assert ("early-refund", "parked") in outcomes and results["early-refund"]["outcome"] == "applied"
    assert results["early-refund"]["effects"]["points_revoked"] == 15  # 40 * 1.5 = 60 earned, a quarter back
    assert results["gone-refund"]["error"]["code"] == "transaction_rejected"
    assert results["too-much"]["error"]["code"] == "over_refund"
    assert outcomes.count(("fine", "applied")) == 1 and outcomes.count(("fine", "duplicate")) == 1
    early = await dbq.transaction(p.name, "early")
    assert early["status"] == "partially_refunded" and Decimal(early["refunded"]) == 10
    small = await dbq.transaction(p.name, "small")
    assert Decimal(small["refunded"]) == 5
    assert await dbq.ledger_mismatches(p.name) == []


# --- Property: a full refund restores the customer exactly ---------------------------------------

RATE_PROGRAMS = [
    {"earn": {"level": "item", "points_per_unit": "1", "rounding": "floor"}},
    {
        "earn": {
            "level": "item",
            "points_per_unit": "2.5",
            "rounding": "half_up",
            "category_multipliers": {"shoes": "1.5"},
        },
        "pending_period": {"seconds": 3600},
    },
    {
        "earn": {
            "level": "transaction",
            "points_per_unit": "0.7",
            "rounding": "ceil",
            "campaigns": [{"id": "bonus", "points": 7, "points_per_unit": "0.1"}],
        }
    },
]


@pytest.fixture(scope="module")
async def refund_engine(kafka_bootstrap: str, database_url: str) -> AsyncIterator[Engine]:
    programs = [
        make_program(f"rate{n}-{uuid.uuid4().hex[:6]}", **fields) for n, fields in enumerate(RATE_PROGRAMS)
    ]
    async with engine_for(kafka_bootstrap, database_url, *programs) as engine:
        yield engine


CART_ITEM = st.fixed_dictionaries(
    {
        "product_id": st.sampled_from(["a", "b", "c", "d"]),
        "subtotal": st.decimals(min_value=0, max_value=500, places=2).map(str),
        "quantity": st.integers(min_value=1, max_value=4),
        "category": st.sampled_from(["shoes", "hats"]),
    }
)


@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    program_index=st.integers(min_value=0, max_value=len(RATE_PROGRAMS) - 1),
    items=st.lists(CART_ITEM, min_size=1, max_size=4),
    prior=st.integers(min_value=0, max_value=300),
    burn_share=st.fractions(min_value=0, max_value=1),
)
async def test_checkout_accept_full_refund_restores_the_customer(
    refund_engine: Engine, dbq: Db, program_index, items, prior, burn_share
):
    engine = refund_engine
    name = list(engine.programs)[program_index]
    run = uuid.uuid4().hex[:8]
    c = f"prop-{run}"
    total = str(sum(Decimal(i["subtotal"]) for i in items))
    # Earlier history: a purchase earning points to burn (accepted at once or after its period).
    history = [event("checkout", c, f"{run}-0", f"{run}-e0", 0, total=prior)]
    if engine.programs[name].pending_period:
        history.append(event("checkout_accept", c, f"{run}-0", f"{run}-e0a", 1))
    await play(engine, *[{**b, "program": name} for b in history])
    before = await dbq.balances(name, c)
    burn = int(before["spendable"] * burn_share)
    steps = [event("checkout", c, run, f"{run}-buy", 10, total=total, points_burned=burn, items=items)]
    if engine.programs[name].pending_period:
        steps.append(event("checkout_accept", c, run, f"{run}-acc", 11))
    steps.append(event("refund", c, run, f"{run}-back", 20))
    results = await play(engine, *[{**b, "program": name} for b in steps])
    assert results[f"{run}-back"]["outcome"] == "applied", results[f"{run}-back"]
    assert await dbq.balances(name, c) == before
    assert await dbq.ledger_mismatches(name) == []


async def test_coupon_stays_redeemed_after_reject_until_coupon_unredeem(
    kafka_bootstrap, database_url, dbq: Db
):
    p = program(pending_period={"seconds": 3600})
    c = "couponer"
    async with engine_for(kafka_bootstrap, database_url, p) as engine:
        results = await play(
            engine,
            assign(c, "C24RR562", "a0"),
            event("checkout", c, "T", "buy", 0, total=30, coupons=["C24RR562"], offers=["o1"]),
            event("checkout_reject", c, "T", "no", 1),
            event("coupon_unredeem", c, "T", "coupon-back", 2, code="C24RR562"),
            event("offer_unredeem", c, "T", "offer-back", 3, offers=["o1"]),
            event("coupon_unredeem", c, "T", "coupon-again", 4, code="C24RR562"),
        )
        # created, coupon.redeemed, offer.redeemed, points.pending, rejected, then the two given back.
        await engine.wait_for("webhooks", 7)
    assert results["coupon-back"]["outcome"] == results["offer-back"]["outcome"] == "applied"
    assert results["coupon-again"]["error"]["code"] == "unknown_coupon"
    txn = await dbq.transaction(p.name, "T")
    assert (txn["status"], txn["coupons_unredeemed"], txn["offers_unredeemed"]) == (
        "rejected",
        ["C24RR562"],
        ["o1"],
    )
    types = [dict(r.headers)["webhook-type"].decode() for r in engine.received["webhooks"]]
    assert types.count("coupon.unredeemed") == 1 and types.count("offer.unredeemed") == 1
