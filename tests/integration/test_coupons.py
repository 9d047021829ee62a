"""Coupons and offers at checkout, gift cards, and giving them back, on the real broker and
database: enrichment (coupon_assign), checkout ingestion, lifecycle and refunds together."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from services.service_layer.actions import checkout_ingestion, enrichment, pending_lifecycle, refunds
from tests.harness import Engine, make_program
from tests.integration.conftest import Db

pytestmark = pytest.mark.integration

TOPICS = {
    "coupon_assign": "catalog",
    "checkout": "checkouts",
    "coupon_redeem": "checkouts",
    "checkout_accept": "lifecycle",
    "checkout_reject": "lifecycle",
    "refund": "refunds",
    "coupon_unredeem": "refunds",
    "coupon_invalidate": "catalog",
}


def ev(action: str, event_id: str, customer: str | None = None, **data: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"action": action, "event_id": event_id, "data": data}
    if customer is not None:
        body["customer"] = customer
    return body


async def play(engine: Engine, *bodies: dict[str, Any]) -> dict[str, dict[str, Any]]:
    for body in bodies:
        key = body["data"].get("code") if TOPICS[body["action"]] == "catalog" else None
        await engine.send(body, key=key, topic=TOPICS[body["action"]])
        await engine.wait_for_result(body["event_id"])
    return {v["event_id"]: v for v in engine.values("event_results")}


@pytest.fixture
async def engine(kafka_bootstrap: str, database_url: str):
    program = make_program(f"cpn-{uuid.uuid4().hex[:6]}", pending_period={"seconds": 3600})
    handlers = [enrichment(), checkout_ingestion(), pending_lifecycle(), refunds()]
    async with Engine(kafka_bootstrap, database_url, handlers, [program]) as running:
        yield running


async def coupon_state(dbq: Db, engine: Engine, code: str) -> tuple[str, str | None]:
    row = await dbq.pool.fetchrow(
        "SELECT status, doc->>'balance' AS balance FROM coupons WHERE program = $1 AND code = $2",
        next(iter(engine.programs)),
        code,
    )
    return row["status"], row["balance"]


async def test_checkout_coupons_must_be_the_customers_claimed_and_unexpired(engine: Engine, dbq: Db):
    results = await play(
        engine,
        ev("coupon_assign", "a1", code="MINE", customer="ann", value=5),
        ev("coupon_assign", "a2", code="OLD", customer="ann", value=5, expires_at="2020-01-01T00:00:00Z"),
        ev("coupon_assign", "a3", code="BOBS", customer="bob", value=5),
        ev("checkout", "foreign", "ann", transaction_id="T1", total=50, coupons=["BOBS"]),
        ev("checkout", "expired", "ann", transaction_id="T2", total=50, coupons=["OLD"]),
        ev("checkout", "unknown", "ann", transaction_id="T3", total=50, coupons=["NOPE"]),
        ev("checkout", "good", "ann", transaction_id="T4", total=50, coupons=["MINE"], offers=["bogo"]),
        ev("checkout", "again", "ann", transaction_id="T5", total=50, coupons=["MINE"]),
    )
    assert results["a1"]["outcome"] == "applied", results["a1"]
    codes = {e: results[e]["error"]["code"] for e in ("foreign", "expired", "unknown", "again")}
    assert codes == {
        "foreign": "coupon_not_owned",
        "expired": "coupon_expired",
        "unknown": "unknown_coupon",
        "again": "coupon_redeemed",
    }
    assert results["good"]["outcome"] == "applied"
    for rejected in ("T1", "T2", "T3", "T5"):
        assert await dbq.transaction(next(iter(engine.programs)), rejected) is None
    assert await coupon_state(dbq, engine, "MINE") == ("redeemed", None)
    assert await coupon_state(dbq, engine, "BOBS") == ("claimed", None)
    await engine.wait_for("webhooks", 4)
    types = [dict(r.headers)["webhook-type"].decode() for r in engine.received["webhooks"]]
    assert types.count("coupon.redeemed") == 1 and types.count("offer.redeemed") == 1


async def test_gift_card_spent_over_three_checkouts_until_exhausted(engine: Engine, dbq: Db):
    steps = [
        ev("coupon_assign", "gift", code="GIFT", customer="gus", type="gift_card", value=100, balance=100)
    ]
    for n, amount in enumerate(("40", "35.50", "24.50"), start=1):
        steps.append(ev("checkout", f"buy{n}", "gus", transaction_id=f"G{n}", total=amount))
        steps.append(
            ev("coupon_redeem", f"spend{n}", "gus", code="GIFT", transaction_id=f"G{n}", amount=amount)
        )
    steps.append(ev("coupon_redeem", "spend4", "gus", code="GIFT", amount="1"))
    steps.append(
        ev("coupon_assign", "gift2", code="GIFT2", customer="gus", type="gift_card", value=10, balance=10)
    )
    steps.append(ev("checkout", "by-checkout", "gus", transaction_id="G5", total=5, coupons=["GIFT2"]))
    steps.append(ev("coupon_redeem", "too-much", "gus", code="GIFT2", amount="10.01"))
    results = await play(engine, *steps)
    assert [results[f"spend{n}"]["outcome"] for n in (1, 2, 3)] == ["applied"] * 3
    assert results["spend4"]["error"]["code"] == "coupon_redeemed"
    assert results["by-checkout"]["error"]["code"] == "gift_card_needs_amount"
    assert results["too-much"]["error"]["code"] == "insufficient_balance"
    assert await coupon_state(dbq, engine, "GIFT") == ("redeemed", "0.00")
    assert await coupon_state(dbq, engine, "GIFT2") == ("claimed", "10")
    await engine.wait_for("webhooks", 9)  # 3 pending checkouts x 2, then 3 coupon.redeemed
    redeemed = [
        json.loads(r.value)["data"]
        for r in engine.received["webhooks"]
        if dict(r.headers)["webhook-type"] == b"coupon.redeemed"
    ]
    assert [(d["balance"], d["status"]) for d in redeemed] == [
        ("60.00", "partially_redeemed"),  # money in the currency's minor units
        ("24.50", "partially_redeemed"),
        ("0.00", "redeemed"),
    ]


async def test_refund_and_unredeem_give_coupons_back(engine: Engine, dbq: Db):
    results = await play(
        engine,
        ev("coupon_assign", "a1", code="BACK", customer="rita", value=5),
        ev("coupon_assign", "a2", code="STUCK", customer="rita", value=5),
        ev("checkout", "buy", "rita", transaction_id="R1", total=50, coupons=["BACK"], offers=["o1"]),
        ev("checkout_accept", "accept", "rita", transaction_id="R1"),
        ev("refund", "refund", "rita", transaction_id="R1", offers=["o1"]),
        ev("checkout", "buy2", "rita", transaction_id="R2", total=50, coupons=["STUCK"]),
        ev("checkout_reject", "reject", "rita", transaction_id="R2"),
    )
    assert results["refund"]["outcome"] == "applied"
    assert await coupon_state(dbq, engine, "BACK") == ("claimed", None)  # a full refund gives it back
    assert await coupon_state(dbq, engine, "STUCK") == ("redeemed", None)  # a reject does not
    results = await play(engine, ev("coupon_unredeem", "unredeem", "rita", transaction_id="R2", code="STUCK"))
    assert results["unredeem"]["outcome"] == "applied"
    assert await coupon_state(dbq, engine, "STUCK") == ("claimed", None)
    txn = await dbq.transaction(next(iter(engine.programs)), "R1")
    assert (txn["coupons_unredeemed"], txn["offers_unredeemed"]) == (["BACK"], ["o1"])


async def test_an_invalidated_coupon_can_no_longer_be_redeemed(engine: Engine, dbq: Db):
    """Antavo: benefits a refund does not revoke are invalidated by their own event."""
    results = await play(
        engine,
        ev("coupon_assign", "i1", code="GONE", customer="ivy", value=5),
        ev("coupon_assign", "i2", code="USED", customer="ivy", value=5),
        ev("checkout", "i-buy", "ivy", transaction_id="I1", total=20, coupons=["USED"]),
        ev("coupon_invalidate", "i-inv", code="GONE", reason="fraud review"),
        ev("coupon_invalidate", "i-inv-used", code="USED"),
        ev("coupon_invalidate", "i-inv-unknown", code="NOPE"),
        ev("checkout", "i-buy2", "ivy", transaction_id="I2", total=20, coupons=["GONE"]),
        ev("coupon_redeem", "i-redeem", "ivy", code="GONE"),
        ev("coupon_assign", "i-again", code="GONE", customer="ivy", value=10),
    )
    assert results["i-inv"]["outcome"] == "applied"
    assert results["i-inv-used"]["error"]["code"] == "coupon_redeemed"
    assert results["i-inv-unknown"]["error"]["code"] == "unknown_coupon"
    for refused in ("i-buy2", "i-redeem", "i-again"):
        assert results[refused]["error"]["code"] == "coupon_invalidated", refused
    assert await coupon_state(dbq, engine, "GONE") == ("invalidated", None)
    await engine.wait_for("webhooks", 4)  # created, coupon.redeemed, points.pending; coupon.invalidated
    invalidated = [
        (r.key, json.loads(r.value))
        for r in engine.received["webhooks"]
        if dict(r.headers)["webhook-type"] == b"coupon.invalidated"
    ]
    assert invalidated == [
        (
            b"ivy",
            {
                **invalidated[0][1],
                "type": "coupon.invalidated",
                "data": {
                    "coupon": "GONE",
                    "customer": "ivy",
                    "status": "invalidated",
                    "reason": "fraud review",
                },
            },
        )
    ]


async def test_a_standalone_unredeem_gives_a_gift_card_back_what_a_standalone_redeem_spent(
    engine: Engine, dbq: Db
):
    results = await play(
        engine,
        ev("coupon_assign", "s1", code="CARD", customer="sol", type="gift_card", value=50, balance=50),
        ev("coupon_assign", "s2", code="ONCE", customer="sol", value=5),
        ev("coupon_redeem", "s-spend", "sol", code="CARD", amount="20"),
        ev("coupon_redeem", "s-use", "sol", code="ONCE"),
        ev("coupon_unredeem", "s-back", "sol", code="CARD", amount="20"),
        ev("coupon_unredeem", "s-too-much", "sol", code="CARD", amount="0.01"),
        ev("coupon_unredeem", "s-no-amount", "sol", code="CARD"),
        ev("coupon_unredeem", "s-not-mine", "tom", code="CARD", amount="1"),
        ev("coupon_unredeem", "s-unknown", "sol", code="NOPE", amount="1"),
        ev("coupon_unredeem", "s-once", "sol", code="ONCE"),
        ev("coupon_unredeem", "s-once-again", "sol", code="ONCE"),
    )
    for applied in ("s-spend", "s-use", "s-back", "s-once"):
        assert results[applied]["outcome"] == "applied", results[applied]
    codes = {
        e: results[e]["error"]["code"]
        for e in ("s-too-much", "s-no-amount", "s-not-mine", "s-unknown", "s-once-again")
    }
    assert codes == {
        "s-too-much": "over_unredeem",
        "s-no-amount": "amount_required",
        "s-not-mine": "coupon_not_owned",
        "s-unknown": "unknown_coupon",
        "s-once-again": "coupon_not_redeemed",
    }
    assert results["s-back"]["transaction_id"] is None
    assert await coupon_state(dbq, engine, "CARD") == ("claimed", "50")
    assert await coupon_state(dbq, engine, "ONCE") == ("claimed", None)
    await engine.wait_for("webhooks", 4)  # coupon.redeemed x 2, coupon.unredeemed x 2
    unredeemed = [
        (r.key, json.loads(r.value)["data"])
        for r in engine.received["webhooks"]
        if dict(r.headers)["webhook-type"] == b"coupon.unredeemed"
    ]
    assert unredeemed == [
        (
            b"sol",
            {
                "coupon": "CARD",
                "transaction_id": None,
                "customer": "sol",
                "amount": "20.00",
                "balance": "50.00",
                "status": "claimed",
            },
        ),
        (
            b"sol",
            {
                "coupon": "ONCE",
                "transaction_id": None,
                "customer": "sol",
                "amount": None,
                "balance": None,
                "status": "claimed",
            },
        ),
    ]


async def test_a_standalone_unredeem_names_its_customer(engine: Engine):
    await engine.send(ev("coupon_unredeem", "s-nobody", code="CARD", amount="1"), key="x", topic="refunds")
    await engine.wait_for_result("s-nobody")
    [result] = engine.values("event_results", lambda r: r.key == b"s-nobody")
    assert result["error"]["code"] == "schema_violation", result
    assert "customer is required" in result["error"]["message"]
