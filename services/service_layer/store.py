"""The port the pipeline writes through: one database transaction's reads (with row locks) and
its set-based write, and the rule that decides which rows a batch locks, in which order
(services/adapters/docs/concurrency.md). ``services.adapters.repository`` implements it on
PostgreSQL; the in-memory suite implements it on dictionaries."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

from services.service_layer.unit_of_work import CatalogKey, Key, Needs, ParkedEvent, UnitOfWork

T = TypeVar("T")

InboxRow = tuple[str, str, str | None, str]  # (program, event_key, action, source)


class Store(Protocol):
    """One open transaction."""

    async def claim_inbox(self, rows: Sequence[InboxRow]) -> set[Key]:
        """Record the rows; return the keys that were new (the others are duplicates)."""
        ...

    async def lock_transactions(self, uow: UnitOfWork, keys: Sequence[Key]) -> None:
        """Lock the transactions that exist (sorted) and load them with their parked events."""
        ...

    async def lock_customers(self, uow: UnitOfWork, keys: Sequence[Key]) -> None:
        """Create missing customers empty, then lock and load them all (sorted)."""
        ...

    async def lock_coupons(self, uow: UnitOfWork, keys: Sequence[Key]) -> None:
        """Lock and load the coupons (sorted); an absent one is loaded as None."""
        ...

    async def read_catalog(self, uow: UnitOfWork, keys: Sequence[CatalogKey]) -> None:
        """Read catalog entries, unlocked (reference data); an absent one is loaded as None."""
        ...

    async def save(self, uow: UnitOfWork) -> None:
        """Write everything the unit of work changed and its outbox messages."""
        ...


class Storage(Protocol):
    async def transaction(self, what: str, work: Callable[[Store], Awaitable[T]]) -> T:
        """Run ``work`` in one transaction, committed when it returns; retried whole when the
        failure is transient (connection lost, deadlock), so ``work`` must start afresh."""
        ...


async def load(
    store: Store, uow: UnitOfWork, needs: Needs, parked_needs: Callable[[ParkedEvent], Needs]
) -> None:
    """Lock transactions, then customers, then coupons; read catalog entries.

    A locked transaction brings in what a change to it may touch: its owner (an event about a
    claimed guest checkout need not name the claimer), its coupons (refunds give them back) and
    the rows its parked events need (a claimer waiting for the guest checkout), so a release is
    never left for a later change. Read under the transaction's lock, none of these can change
    before the batch commits."""
    await store.lock_transactions(uow, sorted(set(needs.transactions)))
    rows = Needs(customers=list(needs.customers), coupons=list(needs.coupons), catalog=list(needs.catalog))
    for txn in uow.transactions.values():
        if txn.customer:
            rows.customers.append((txn.program, txn.customer))
        rows.coupons += [(txn.program, code) for code in txn.coupons]
    for waiting in uow.parked.values():
        for parked in waiting:
            rows.add(parked_needs(parked))
    await store.lock_customers(uow, sorted(set(rows.customers)))
    await store.lock_coupons(uow, sorted(set(rows.coupons)))
    await store.read_catalog(uow, sorted(set(rows.catalog) - uow.catalog.keys()))
