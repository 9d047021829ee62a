"""Order-independent convergence (DESIGN.md 5.3), drawn thousands of times in memory: a
transaction's events, as the platform sent them (the causal order), against every arrival
order their partitions allow, cut into polled batches at random. Both end in the same state,
and balances equal the ledger after every batch. The real-broker suite
(tests/integration/test_convergence.py) proves the shell keeps what this proves of the core."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from services.domain.program import Program
from tests.core.engine import TOPIC_OF_ACTION, MemoryEngine, lane_of

PROGRAM = Program.model_validate(
    {
        "name": "mem",
        "earn": {"level": "item", "campaigns": [{"id": "big", "points": 5, "conditions": {"min_total": 50}}]},
        "pending_period": {"seconds": 3600},
    }
)
TID, OWNER, CLAIMER = "T", "owner", "claimer"

STEPS = [
    "update",
    "accept",
    "reject",
    "unspend",
    "partial_refund",
    "refund",
    "refund_item",
    "offer_unredeem",
    "coupon_unredeem",
    "claim",
]


def at(minute: int) -> str:
    return f"2026-03-01T12:{minute:02d}:00+00:00"


def body(action: str, event_id: str, customer: str | None, minute: int, **data: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "action": action,
        "event_id": event_id,
        "occurred_at": at(minute),
        "data": {"transaction_id": TID, **data},
    }
    if customer is not None:
        event["customer"] = customer
    return event


def scenario(steps: list[str], guest: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Set-up events (the coupon the checkout redeems), then the transaction's events in the
    order the platform sent them."""
    owner = None if guest else OWNER
    setup = [{"action": "coupon_assign", "event_id": "assign", "data": {"code": "C1", "customer": OWNER}}]
    items = [
        {"product_id": "p1", "subtotal": 40, "quantity": 2},
        {"product_id": "p2", "subtotal": 20, "category": "shoes"},
    ]
    checkout = body("checkout", "co", owner, 0, total=60, items=items, offers=["o1"])
    if guest:
        checkout["guest"] = True
    else:
        checkout["data"]["coupons"] = ["C1"]
    events = [checkout]
    for n, step in enumerate(steps, start=1):
        eid = f"{n}-{step}"
        simple = {
            "accept": "checkout_accept",
            "reject": "checkout_reject",
            "unspend": "point_unspend",
            "refund": "refund",
        }
        if step == "update":
            update_items = [{"product_id": f"p{n}", "subtotal": 20 * n, "quantity": n}]
            events.append(body("checkout_update", eid, owner, n, total=20 * n, items=update_items))
        elif step == "claim":
            events.append(body("checkout_claim", eid, CLAIMER, n))
        elif step == "partial_refund":
            events.append(body("partial_refund", eid, owner, n, amount=5))
        elif step == "refund_item":
            events.append(body("refund_item", eid, owner, n, product_id="p1", quantity=1))
        elif step == "offer_unredeem":
            events.append(body("offer_unredeem", eid, owner, n, offers=["o1"]))
        elif step == "coupon_unredeem":
            events.append(body("coupon_unredeem", eid, owner, n, code="C1"))
        else:
            events.append(body(simple[step], eid, owner, n))
    return setup, events


def arrival(events: list[dict[str, Any]], picks: list[int]) -> list[dict[str, Any]]:
    """A merge of the lanes, each in its own order, chosen by ``picks``."""
    lanes: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for event in events:
        lanes.setdefault(lane_of(event), []).append(event)
    order: list[dict[str, Any]] = []
    while open_lanes := [lane for lane in lanes.values() if lane]:
        order.append(open_lanes[picks[len(order) % len(picks)] % len(open_lanes)].pop(0))
    return order


def batches(events: list[dict[str, Any]], joins: list[bool]) -> list[list[dict[str, Any]]]:
    """Consecutive records of one topic may come in one poll."""
    polled: list[list[dict[str, Any]]] = []
    for n, event in enumerate(events):
        same_topic = (
            bool(polled) and TOPIC_OF_ACTION[polled[-1][-1]["action"]] == TOPIC_OF_ACTION[event["action"]]
        )
        if same_topic and joins[n % len(joins)]:
            polled[-1].append(event)
        else:
            polled.append([event])
    return polled


def play(setup: list[dict[str, Any]], polls: list[list[dict[str, Any]]]) -> dict[str, Any]:
    engine = MemoryEngine(PROGRAM)

    async def run() -> None:
        await engine.send(setup)
        for poll in polls:
            await engine.send(poll)
            assert engine.storage.ledger_mismatches() == [], poll

    asyncio.run(run())
    state = engine.storage.state
    txn = state.transactions[("mem", TID)]
    return {
        "transaction": txn.snapshot(),
        "customers": {key: asdict(c) for key, c in sorted(state.customers.items())},
        "parked": sorted(p.event_id for waiting in state.parked.values() for p in waiting),
        "coupon": state.coupons[("mem", "C1")].model_dump(),
    }


@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    steps=st.lists(st.sampled_from(STEPS), min_size=1, max_size=6),
    guest=st.booleans(),
    picks=st.lists(st.integers(min_value=0, max_value=6), min_size=1, max_size=8),
    joins=st.lists(st.booleans(), min_size=1, max_size=8),
)
# A coupon given back by hand must not overtake the refunds sent before it on its lane, parked
# while the transaction is pending: the full refund gives the coupon back, then this is refused.
@example(
    steps=["partial_refund", "accept", "refund", "coupon_unredeem"], guest=False, picks=[0], joins=[False]
)
# ...but a claim parked before its checkout (another key) must not hold the checkout back.
@example(steps=["claim"], guest=False, picks=[1], joins=[False])
def test_every_arrival_order_ends_in_the_causal_order_state(
    steps: list[str], guest: bool, picks: list[int], joins: list[bool]
) -> None:
    setup, events = scenario(steps, guest)
    causal = play(setup, [[event] for event in events])
    arrived = play(setup, batches(arrival(events, picks), joins))
    assert arrived == causal
