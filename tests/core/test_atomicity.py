"""An event applies wholly or leaves the unit of work exactly as it was, whatever its rule did
before refusing it: the batch core undoes it (``UnitOfWork.begin_event``), so a rule that
raises after moving points cannot break ``balance == sum(ledger)``."""

from __future__ import annotations

import asyncio
import copy
from dataclasses import asdict
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.config.settings import Topics
from services.contract.inbound import CheckoutAcceptEvent
from services.domain.catalog import Coupon
from services.domain.checkout import register_checkout
from services.domain.customer import Customer, Movement
from services.domain.effects import Effects, Rejected
from services.domain.program import Program
from services.domain.transaction import Status
from services.service_layer.actions import ACTIONS
from services.service_layer.batch import BatchCore
from services.service_layer.decoding import Decoded
from services.service_layer.messages import OutboxBuilder
from services.service_layer.registry import Action
from services.service_layer.unit_of_work import Needs, UnitOfWork
from tests.core.engine import MemoryEngine
from tests.unit.builders import AT, make_program, rich_customer, seed
from tests.unit.builders import effects as make_effects

PROGRAM = make_program()


def _unit_of_work(loaded: bool) -> UnitOfWork:
    """``loaded``: the transaction comes from its stored document, as the repository loads it
    (undone by reading it again), else it is put in place (undone from a copy)."""
    uow = UnitOfWork()
    customer = rich_customer(100)
    uow.customers[(customer.program, customer.customer_id)] = customer
    txn = register_checkout(PROGRAM, seed(), customer, None, make_effects())
    if loaded:
        uow.load_transaction(txn.snapshot())
    else:
        uow.transactions[(txn.program, txn.transaction_id)] = txn
    uow.coupons[("acme", "C1")] = Coupon(code="C1", customer=customer.customer_id)
    return uow


def _state(uow: UnitOfWork) -> dict[str, Any]:
    return {
        "customers": {k: asdict(c) for k, c in uow.customers.items()},
        "transactions": {k: t.snapshot() for k, t in uow.transactions.items()},
        "coupons": copy.deepcopy(uow.coupons),
        "catalog": copy.deepcopy(uow.catalog),
        "touched": (set(uow.touched_customers), set(uow.touched_transactions), set(uow.changed_coupons)),
        "stale": set(uow.stale_purchase_dates),
        "ledger": list(uow.ledger),
        "history": list(uow.history),
    }


def _faulty(uow: UnitOfWork, program: Program, event: Any, effects: Effects) -> None:
    """Changes everything it can reach, then refuses."""
    txn = uow.transaction(program.name, event.data.transaction_id)
    assert txn is not None and txn.customer is not None
    customer = uow.customer(program.name, txn.customer)
    effects.move(customer, Movement.earned, 500, txn.transaction_id)
    txn.status = Status.refunded
    txn.items[0].refunded_quantity += 1
    txn.coupons.append("C1")
    uow.put_coupon(program.name, Coupon(code="C1", customer="someone else"))
    uow.put_catalog((program.name, "product", "x"), {"product_id": "x"})
    uow.mark_purchase_dates_stale((program.name, txn.customer))
    uow.put_transaction(txn)
    raise Rejected("late_refusal", "a rule that refuses after changing things")


def _accept(event_id: str, action: str = "checkout_accept") -> Decoded[CheckoutAcceptEvent]:
    """An accept of the seeded transaction, handled as ``action`` (a rule the test registers)."""
    event = CheckoutAcceptEvent.model_validate(
        {"action": "checkout_accept", "data": {"transaction_id": "1703545579"}}
    )
    return Decoded(f"test:0:{event_id}", event, "acme", event_id, action, AT, "1703545579")


@pytest.mark.parametrize("loaded", [True, False], ids=["loaded", "put"])
def test_a_rule_refusing_after_changes_leaves_the_unit_of_work_as_it_was(loaded: bool) -> None:
    registry = {**ACTIONS, "checkout_accept": Action(CheckoutAcceptEvent, lambda p, e: Needs(), _faulty)}
    core = BatchCore({PROGRAM.name: PROGRAM}, registry, OutboxBuilder(Topics()))
    uow = _unit_of_work(loaded)
    before = _state(uow)
    # Twice: the second refusal undoes from what the first one's undo left.
    assert core.apply(uow, [_accept("e1"), _accept("e2")], [True, True]) == ["rejected", "rejected"]
    assert _state(uow) == before


def _changes(uow: UnitOfWork, program: Program, event: Any, effects: Effects) -> None:
    """Changes the transaction in place, and is applied."""
    txn = uow.transaction(program.name, event.data.transaction_id)
    assert txn is not None
    txn.items[0].refunded_quantity += 1
    txn.coupons.append("C2")


def test_an_event_after_an_applied_one_is_undone_to_what_the_applied_one_left() -> None:
    """Once an event changed a loaded transaction, its document is no longer its state: the
    next event's undo must not read it again."""
    registry = {
        **ACTIONS,
        "checkout_accept": Action(CheckoutAcceptEvent, lambda p, e: Needs(), _changes),
        "checkout_reject": Action(CheckoutAcceptEvent, lambda p, e: Needs(), _faulty),
    }
    core = BatchCore({PROGRAM.name: PROGRAM}, registry, OutboxBuilder(Topics()))
    changed = _unit_of_work(loaded=True)
    assert core.apply(changed, [_accept("e1")], [True]) == ["applied"]
    uow = _unit_of_work(loaded=True)
    refused = _accept("e2", action="checkout_reject")
    assert core.apply(uow, [_accept("e1"), refused], [True, True]) == ["applied", "rejected"]
    as_loaded = _state(_unit_of_work(loaded=True))["transactions"]
    assert _state(uow)["transactions"] == _state(changed)["transactions"] != as_loaded


# --- Random events, some refused: balances equal the ledger after every one ---------------------

RANDOM_PROGRAM = Program.model_validate(
    {"name": "atom", "earn": {"level": "item"}, "pending_period": {"seconds": 3600}}
)
CUSTOMERS = ["ann", "bob"]
TRANSACTIONS = ["T1", "T2", "T3"]


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    action = draw(
        st.sampled_from(
            ["checkout", "checkout_accept", "checkout_reject", "point_unspend", "checkout_update",
             "partial_refund", "refund", "refund_item", "coupon_redeem", "coupon_assign"]
        )
    )  # fmt: skip
    customer = draw(st.sampled_from(CUSTOMERS))
    tid = draw(st.sampled_from(TRANSACTIONS))
    amount = draw(st.integers(min_value=1, max_value=120))
    data: dict[str, Any] = {"transaction_id": tid}
    if action == "checkout":
        data |= {
            "total": amount,
            "points_burned": draw(st.integers(min_value=0, max_value=150)),
            "items": [{"product_id": "p", "subtotal": amount, "quantity": 2}],
            "coupons": draw(st.lists(st.sampled_from(["G", "A"]), max_size=1)),
        }
    elif action == "checkout_update":
        data |= {"total": amount, "points_burned": draw(st.integers(min_value=0, max_value=150))}
    elif action == "partial_refund":
        data["amount"] = amount
    elif action == "refund_item":
        data |= {
            "product_id": draw(st.sampled_from(["p", "q"])),
            "quantity": draw(st.sampled_from([1, 2, 3])),
        }
    elif action == "coupon_redeem":
        data = {"code": draw(st.sampled_from(["G", "A"])), "amount": amount}
    elif action == "coupon_assign":
        code = draw(st.sampled_from(["G", "A"]))
        return {
            "action": action,
            "data": {"code": code, "customer": customer, "type": "gift_card" if code == "G" else "amount",
                     "balance": 50, "value": 50},
        }  # fmt: skip
    return {"action": action, "customer": customer, "data": data}


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(events(), min_size=1, max_size=25))
def test_balances_equal_the_ledger_after_every_event(bodies: list[dict[str, Any]]) -> None:
    engine = MemoryEngine(RANDOM_PROGRAM)

    async def run() -> None:
        for n, body in enumerate(bodies):
            before = _stored(engine)
            await engine.send([{**body, "event_id": f"e{n}"}])
            assert engine.storage.ledger_mismatches() == [], body
            if engine.results()[f"e{n}"]["outcome"] == "rejected":
                assert _stored(engine) == before, body

    asyncio.run(run())


def _stored(engine: MemoryEngine) -> dict[str, Any]:
    state = engine.storage.state
    return {
        "customers": {k: asdict(c) for k, c in state.customers.items() if c != Customer(*k)},
        "transactions": {k: t.snapshot() for k, t in state.transactions.items()},
        "coupons": dict(state.coupons),
        "ledger": len(state.ledger),
    }
