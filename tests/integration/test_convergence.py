"""Order-independent convergence (DESIGN.md 5.3) on the real broker and database: checkout
ingestion, pending lifecycle and refunds together, events for one transaction arriving in any
order their partitions allow. The in-memory core suite draws far more interleavings; this one
proves that the shell (parking, loading, locking, release) keeps the promise."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.service_layer.actions import checkout_ingestion, pending_lifecycle, refunds
from tests.harness import Engine
from tests.integration.conftest import CUSTOMER_STATE, Db
from tests.integration.test_pending_lifecycle import event, pending_program

pytestmark = pytest.mark.integration

TOPIC = {
    "checkout": "checkouts",
    "checkout_claim": "checkouts",
    "checkout_update": "lifecycle",
    "checkout_accept": "lifecycle",
    "checkout_reject": "lifecycle",
    "point_unspend": "lifecycle",
}


def key_of(body: dict[str, Any]) -> str:
    """As DESIGN.md section 2 keys records: the customer id, the transaction id for a guest."""
    return str(body.get("customer") or body["data"]["transaction_id"])


def lane_of(body: dict[str, Any]) -> tuple[str, str]:
    """Records of one topic and key share a partition, so they keep their order; records of
    different lanes arrive in any order."""
    return TOPIC.get(body["action"], "refunds"), key_of(body)


async def play(engine: Engine, bodies: list[dict[str, Any]]) -> None:
    """One event at a time, each handled before the next is sent: that is the arrival order."""
    for body in bodies:
        await engine.send(body, key=key_of(body), topic=lane_of(body)[0])
        await engine.wait_for_result(body["event_id"])


def finals(engine: Engine) -> dict[str, dict[str, Any]]:
    return {v["event_id"]: v for v in engine.values("event_results") if v["outcome"] != "parked"}


@pytest.fixture(scope="module")
async def engine(kafka_bootstrap: str, database_url: str) -> AsyncIterator[Engine]:
    program = pending_program(
        earn={"level": "item", "campaigns": [{"id": "big", "points": 5, "conditions": {"min_total": 60}}]}
    )
    handlers = [checkout_ingestion(), pending_lifecycle(), refunds()]
    async with Engine(kafka_bootstrap, database_url, handlers, [program]) as running:
        yield running


def program_of(engine: Engine) -> str:
    return next(iter(engine.programs))


# --- Defects found by the contract checks -----------------------------------------------------


@pytest.mark.parametrize("third", ["partial_refund", "refund"])
async def test_parked_events_are_released_in_arrival_order(engine: Engine, dbq: Db, third: str):
    """A refund of 30, an accept, then a refund of 80 (or a full refund), all parked before the
    checkout: the accept makes the first refund applicable, so it goes before the third."""
    tid, c = f"ord-{uuid.uuid4().hex[:6]}", f"ord-{uuid.uuid4().hex[:6]}"
    last = {"amount": 80} if third == "partial_refund" else {}
    await play(
        engine,
        [
            event("partial_refund", c, tid, f"{tid}-r30", 2, amount=30),
            event("checkout_accept", c, tid, f"{tid}-acc", 1),
            event(third, c, tid, f"{tid}-r3", 3, **last),
            event("checkout", c, tid, f"{tid}-co", 0, total=100, points_rewarded=100),
        ],
    )
    results = await engine.final_results([f"{tid}-r30", f"{tid}-acc", f"{tid}-r3"])
    assert results[f"{tid}-r30"]["outcome"] == "applied"
    assert results[f"{tid}-r30"]["effects"]["points_revoked"] == 30
    txn = await dbq.transaction(program_of(engine), tid)
    if third == "partial_refund":
        assert results[f"{tid}-r3"]["error"]["code"] == "over_refund"
        assert (txn["status"], txn["refunded"]) == ("partially_refunded", "30.00")
    else:
        assert results[f"{tid}-r3"]["outcome"] == "applied"
        assert results[f"{tid}-r3"]["effects"]["points_revoked"] == 70
        assert (txn["status"], txn["refunded"]) == ("refunded", "100.00")
    history = await dbq.pool.fetch(
        "SELECT at FROM status_history WHERE program = $1 AND transaction_id = $2 AND to_status <> 'draft'"
        " ORDER BY id",
        program_of(engine),
        tid,
    )
    assert [h["at"] for h in history] == sorted(h["at"] for h in history)
    assert await dbq.ledger_mismatches(program_of(engine)) == []


async def test_a_claim_before_its_guest_checkout_is_applied_by_the_checkout(engine: Engine, dbq: Db):
    """The claim (keyed by the customer) and the guest checkout (keyed by the transaction) sit
    on different partitions: claim first parks, and the checkout releases it."""
    tid, claimer = f"g-{uuid.uuid4().hex[:6]}", f"claimer-{uuid.uuid4().hex[:6]}"
    guest = {"action": "checkout", "guest": "true", "event_id": f"{tid}-co", "data": {"transaction_id": tid}}
    guest["data"].update(total=50, items=[{"product_id": "p", "subtotal": 50}])
    await play(
        engine,
        [
            event("checkout_claim", claimer, tid, f"{tid}-claim", 1),
            guest,
            # The platform knows the order as a guest's: its accept names nobody.
            event("checkout_accept", None, tid, f"{tid}-acc", 2),
        ],
    )
    results = await engine.final_results([f"{tid}-claim", f"{tid}-acc"])
    assert results[f"{tid}-claim"]["outcome"] == "applied"
    assert results[f"{tid}-claim"]["effects"]["points_pending"] == 50
    assert results[f"{tid}-acc"]["outcome"] == "applied"
    txn = await dbq.transaction(program_of(engine), tid)
    assert (txn["customer"], txn["guest"], txn["status"]) == (claimer, True, "accepted")
    balances = await dbq.balances(program_of(engine), claimer)
    assert (balances["score"], balances["pending"]) == (50, 0)
    assert not await dbq.pool.fetchval("SELECT count(*) FROM parked_events WHERE transaction_id = $1", tid)
    assert await dbq.ledger_mismatches(program_of(engine)) == []


# --- The property: every interleaving the partitions allow ends in the causal-order state ----

STEP = st.sampled_from(
    ["update", "accept", "reject", "unspend", "partial_refund", "refund", "offer_unredeem", "claim"]
)


def scenario(steps: list[str], guest: bool, run: str) -> list[dict[str, Any]]:
    """The causal order: the checkout, then the steps as the platform sent them."""
    tid, owner, claimer = f"{run}-t", f"{run}-owner", f"{run}-claimer"
    customer = None if guest else owner
    items = [{"product_id": "p0", "subtotal": 30, "category": "shoes"}]
    checkout = event("checkout", customer, tid, f"{tid}-co", 0, total=30, items=items, offers=["o1"])
    if guest:
        checkout["guest"] = True
    bodies = [checkout]
    for n, step in enumerate(steps, start=1):
        eid = f"{tid}-{n}-{step}"
        if step == "update":
            total = 20 * n
            update_items = [{"product_id": f"p{n}", "subtotal": total, "quantity": n}]
            bodies.append(event("checkout_update", customer, tid, eid, n, total=total, items=update_items))
        elif step == "claim":
            bodies.append(event("checkout_claim", claimer, tid, eid, n))
        elif step == "partial_refund":
            bodies.append(event("partial_refund", customer, tid, eid, n, amount=5))
        elif step == "offer_unredeem":
            bodies.append(event("offer_unredeem", customer, tid, eid, n, offers=["o1"]))
        else:
            action = {"accept": "checkout_accept", "reject": "checkout_reject", "unspend": "point_unspend"}
            bodies.append(event(action.get(step, step), customer, tid, eid, n))
    return bodies


def arrivals(bodies: list[dict[str, Any]], picks: list[int]) -> list[dict[str, Any]]:
    """A merge of the lanes, each in its own order, chosen by ``picks``."""
    lanes: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for body in bodies:
        lanes.setdefault(lane_of(body), []).append(body)
    order: list[dict[str, Any]] = []
    while open_lanes := [lane for lane in lanes.values() if lane]:
        order.append(open_lanes[picks[len(order)] % len(open_lanes)].pop(0))
    return order


async def state(dbq: Db, program: str, run: str) -> dict[str, Any]:
    tid = f"{run}-t"
    txn = await dbq.transaction(program, tid)
    assert txn is not None
    txn.pop("transaction_id")
    txn["customer"] = txn["customer"] and txn["customer"].removeprefix(f"{run}-")
    still_parked = sorted(
        r["event_id"].removeprefix(f"{tid}-")
        for r in await dbq.pool.fetch(
            "SELECT event_id FROM parked_events WHERE program = $1 AND transaction_id = $2", program, tid
        )
    )
    customers = {}
    for role in ("owner", "claimer"):
        row = await dbq.customer(program, f"{run}-{role}")
        customers[role] = None if row is None else {k: row[k] for k in CUSTOMER_STATE}
    return {"transaction": txn, **customers, "parked": still_parked}


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    steps=st.lists(STEP, min_size=1, max_size=5),
    guest=st.booleans(),
    picks=st.lists(st.integers(min_value=0, max_value=5), min_size=6, max_size=6),
)
async def test_any_interleaving_converges_to_the_causal_order_state(
    engine: Engine, dbq: Db, steps: list[str], guest: bool, picks: list[int]
):
    program = program_of(engine)
    states = []
    for mode in ("causal", "arrival"):
        run = f"{mode}-{uuid.uuid4().hex[:8]}"
        bodies = scenario(steps, guest, run)
        await play(engine, bodies if mode == "causal" else arrivals(bodies, picks))
        states.append(await state(dbq, program, run))
    assert states[0] == states[1]
    assert await dbq.ledger_mismatches(program) == []
