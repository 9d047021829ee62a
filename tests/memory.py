"""The pipeline's store port on dictionaries, for the in-memory suite of the batch core.

It keeps what the PostgreSQL adapter keeps, with the same meaning: rows are copied in on load
and out on save (a unit of work never shares objects with the store), the inbox decides
duplicates, parked events get ids in arrival order, a saved full refund recomputes purchase
dates from the purchases that still count. One consumer at a time, so no locks."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from services.domain.catalog import Coupon
from services.domain.customer import Customer, LedgerEntry
from services.domain.transaction import Status, Transaction
from services.service_layer.messages import OutboxMessage
from services.service_layer.store import InboxRow
from services.service_layer.unit_of_work import CatalogKey, HistoryRow, Key, ParkedEvent, UnitOfWork

T = TypeVar("T")


@dataclass
class MemoryState:
    inbox: set[Key] = field(default_factory=set)
    customers: dict[Key, Customer] = field(default_factory=dict)
    transactions: dict[Key, Transaction] = field(default_factory=dict)
    parked: dict[Key, list[ParkedEvent]] = field(default_factory=dict)
    coupons: dict[Key, Coupon] = field(default_factory=dict)
    catalog: dict[CatalogKey, dict[str, Any]] = field(default_factory=dict)
    ledger: list[LedgerEntry] = field(default_factory=list)
    history: list[HistoryRow] = field(default_factory=list)
    outbox: list[OutboxMessage] = field(default_factory=list)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))


class MemoryStore:
    def __init__(self, state: MemoryState) -> None:
        self.state = state

    async def claim_inbox(self, rows: Sequence[InboxRow]) -> set[Key]:
        new = {(program, key) for program, key, _, _ in rows} - self.state.inbox
        self.state.inbox |= new
        return new

    async def lock_transactions(self, uow: UnitOfWork, keys: Sequence[Key]) -> None:
        for key in keys:
            if (txn := self.state.transactions.get(key)) is not None:
                uow.load_transaction(txn.snapshot())  # as the database hands it over: a document
            if waiting := self.state.parked.get(key):
                uow.parked[key] = [replace(p) for p in waiting]

    async def lock_customers(self, uow: UnitOfWork, keys: Sequence[Key]) -> None:
        for key in keys:
            stored = self.state.customers.setdefault(key, Customer(*key))
            uow.customers[key] = replace(stored)

    async def lock_coupons(self, uow: UnitOfWork, keys: Sequence[Key]) -> None:
        for key in keys:
            uow.coupons[key] = self.state.coupons.get(key)  # immutable: rules replace them

    async def read_catalog(self, uow: UnitOfWork, keys: Sequence[CatalogKey]) -> None:
        for key in keys:
            uow.catalog[key] = self.state.catalog.get(key)

    async def save(self, uow: UnitOfWork) -> None:
        state = self.state
        for key in uow.touched_customers:
            state.customers[key] = replace(uow.customers[key])
        for key in uow.touched_transactions:
            txn = uow.transactions[key]
            # The snapshot the unit of work kept is the document PostgreSQL stores: it must be
            # the transaction's state, which every drawn interleaving of the core suite checks.
            kept = uow.snapshots.get(key)
            assert kept is None or kept == txn.snapshot(), f"the snapshot kept of {key} is stale"
            state.transactions[key] = txn.clone()
        state.ledger += uow.ledger
        state.history += uow.history
        released = set(uow.released_parked)
        for key, waiting in list(state.parked.items()):
            state.parked[key] = [p for p in waiting if p.id not in released]
        for parked in uow.new_parked:
            stored = replace(parked, id=next(state.ids))
            state.parked.setdefault((parked.program, parked.transaction_id), []).append(stored)
        for catalog_key in uow.changed_catalog:
            if (doc := uow.catalog[catalog_key]) is None:
                state.catalog.pop(catalog_key, None)
            else:
                state.catalog[catalog_key] = doc
        for coupon_key in uow.changed_coupons:
            if (coupon := uow.coupons[coupon_key]) is not None:
                state.coupons[coupon_key] = coupon
        for program, customer_id in uow.stale_purchase_dates:
            dates = [
                t.occurred_at
                for (p, _), t in state.transactions.items()
                if p == program
                and t.customer == customer_id
                and t.status in (Status.accepted, Status.partially_refunded)
            ]
            state.customers[(program, customer_id)] = replace(
                state.customers[(program, customer_id)],
                purchase_first_date=min(dates, default=None),
                purchase_last_date=max(dates, default=None),
            )
        state.outbox += uow.outbox


class MemoryStorage:
    def __init__(self, state: MemoryState | None = None) -> None:
        self.state = state or MemoryState()

    async def transaction(self, what: str, work: Callable[[MemoryStore], Awaitable[T]]) -> T:
        return await work(MemoryStore(self.state))

    def ledger_mismatches(self) -> list[Key]:
        """Customers whose balances differ from the sums of their ledger entries' deltas."""
        sums: dict[Key, list[int]] = {}
        for entry in self.state.ledger:
            total = sums.setdefault((entry.program, entry.customer_id), [0, 0, 0, 0])
            for n, delta in enumerate((entry.score, entry.spendable, entry.pending, entry.spent)):
                total[n] += delta
        return [
            key
            for key, c in self.state.customers.items()
            if [c.score, c.spendable, c.pending, c.spent] != sums.get(key, [0, 0, 0, 0])
        ]
