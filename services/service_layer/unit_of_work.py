"""The state one batch works on: rows loaded (and locked) once, changed in memory by the
domain, then written back set-based by :mod:`services.adapters.repository`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.domain.catalog import Coupon
from services.domain.customer import Customer, LedgerEntry
from services.domain.effects import Effects
from services.domain.transaction import Transaction
from services.service_layer.messages import OutboxMessage
from services.service_layer.tracing import TraceContext

Key = tuple[str, str]  # (program, id)
CatalogKey = tuple[str, str, str]  # (program, kind, id)


@dataclass
class Needs:
    """The rows an event needs: customers, transactions and coupons are locked (in that
    order), catalog entries are only read."""

    customers: list[Key] = field(default_factory=list)
    transactions: list[Key] = field(default_factory=list)
    coupons: list[Key] = field(default_factory=list)
    catalog: list[CatalogKey] = field(default_factory=list)

    def add(self, other: Needs) -> None:
        self.customers += other.customers
        self.transactions += other.transactions
        self.coupons += other.coupons
        self.catalog += other.catalog


@dataclass(slots=True)  # a value, not frozen: one is built per status change (domain/purchase.py)
class HistoryRow:
    program: str
    transaction_id: str
    from_status: str | None
    to_status: str
    event_key: str
    action: str
    at: datetime


@dataclass
class ParkedEvent:
    """A stored parked event; ``id`` is None until it is written."""

    program: str
    transaction_id: str
    event_id: str
    action: str
    body: dict[str, Any]
    occurred_at: datetime
    source: str
    reason: str
    # The parking event's span: the messages of its release continue its trace.
    trace: TraceContext | None = None
    id: int | None = None


@dataclass
class UnitOfWork:
    customers: dict[Key, Customer] = field(default_factory=dict)
    transactions: dict[Key, Transaction] = field(default_factory=dict)
    stored_transactions: set[Key] = field(default_factory=set)  # exist in the database
    touched_customers: set[Key] = field(default_factory=set)
    touched_transactions: set[Key] = field(default_factory=set)
    ledger: list[LedgerEntry] = field(default_factory=list)
    history: list[HistoryRow] = field(default_factory=list)
    outbox: list[OutboxMessage] = field(default_factory=list)
    parked: dict[Key, list[ParkedEvent]] = field(default_factory=dict)  # by transaction
    new_parked: list[ParkedEvent] = field(default_factory=list)
    released_parked: list[int] = field(default_factory=list)
    # Customers whose first/last purchase dates must be recomputed from their remaining
    # purchases (a purchase was fully refunded): done set-based when saving.
    stale_purchase_dates: set[Key] = field(default_factory=set)
    # The snapshot an applied event took of a transaction as its last act on it (for its status
    # change or webhook): the state saving stores, so it is not taken again. Dropped whenever
    # an event takes the transaction, as that event may change it (docs/batching.md).
    snapshots: dict[Key, dict[str, Any]] = field(default_factory=dict)

    # Reference data: catalog entries read or written (None: absent or deleted), coupons.
    catalog: dict[CatalogKey, dict[str, Any] | None] = field(default_factory=dict)
    changed_catalog: set[CatalogKey] = field(default_factory=set)
    coupons: dict[Key, Coupon | None] = field(default_factory=dict)
    changed_coupons: set[Key] = field(default_factory=set)

    # How to undo the current event's changes (None: no event under way). Rules change
    # customers and transactions in place, so each is copied when an event first takes it.
    _undo: list[Callable[[], None]] | None = field(default=None, repr=False)
    _kept: set[tuple[str, object]] = field(default_factory=set, repr=False)
    # The stored documents of loaded transactions no event has taken yet: undoing the first
    # event that takes one reads it again, so no copy is made up front (few events are undone).
    _documents: dict[Key, Mapping[str, Any]] = field(default_factory=dict, repr=False)

    def begin_event(self) -> None:
        """From here until ``end_event``, every change can be undone by ``rollback_event``:
        an event applies wholly or leaves the unit of work exactly as it was."""
        self._undo, self._kept = [], set()

    def end_event(self) -> None:
        self._undo = None

    def rollback_event(self) -> None:
        undo, self._undo = self._undo or [], None
        for restore in reversed(undo):
            restore()

    def _keep(self, kind: str, key: object, restore: Callable[[], None]) -> None:
        if self._undo is not None and (kind, key) not in self._kept:
            self._kept.add((kind, key))
            self._undo.append(restore)

    def _keep_entry(self, kind: str, entries: dict[Any, Any], key: Any, changed: set[Any]) -> None:
        """Remember an entry as it is now (or its absence) and whether it was changed."""
        if self._undo is None or (kind, key) in self._kept:
            return
        present, before, was_changed = key in entries, entries.get(key), key in changed

        def restore() -> None:
            if present:
                entries[key] = before
            else:
                entries.pop(key, None)
            if not was_changed:
                changed.discard(key)

        self._keep(kind, key, restore)

    def put_catalog(self, key: CatalogKey, doc: dict[str, Any] | None) -> None:
        self._keep_entry("catalog", self.catalog, key, self.changed_catalog)
        self.catalog[key] = doc
        self.changed_catalog.add(key)

    def put_coupon(self, program: str, coupon: Coupon) -> None:
        key = (program, coupon.code)
        self._keep_entry("coupon", self.coupons, key, self.changed_coupons)
        self.coupons[key] = coupon
        self.changed_coupons.add(key)

    def park(self, event: ParkedEvent) -> None:
        self.parked.setdefault((event.program, event.transaction_id), []).append(event)
        self.new_parked.append(event)

    def unpark(self, event: ParkedEvent) -> None:
        self.parked[(event.program, event.transaction_id)].remove(event)
        if event.id is None:
            self.new_parked.remove(event)
        else:
            self.released_parked.append(event.id)

    def customer(self, program: str, customer_id: str) -> Customer:
        """A loaded (and locked) customer; missing ones were created empty when loading."""
        key = (program, customer_id)
        customer = self.customers[key]
        if self._undo is not None and ("customer", key) not in self._kept:
            # The copy kept is the one changed; built from its fields (a third of replace()'s cost).
            self.customers[key] = Customer(**vars(customer))
            self._keep_entry("customer", self.customers, key, self.touched_customers)
            self.customers[key] = customer
        self.touched_customers.add(key)
        return customer

    def load_transaction(self, document: Mapping[str, Any]) -> None:
        """A stored transaction, locked, from its document (current version)."""
        txn = Transaction.from_document(document)
        key = (txn.program, txn.transaction_id)
        self.transactions[key] = txn
        self.stored_transactions.add(key)
        self._documents[key] = document

    def transaction(self, program: str, transaction_id: str) -> Transaction | None:
        key = (program, transaction_id)
        self.snapshots.pop(key, None)
        txn = self.transactions.get(key)
        if txn is not None and self._undo is not None and ("transaction", key) not in self._kept:
            if (document := self._documents.pop(key, None)) is not None:
                self._keep("transaction", key, self._reloader(key, document))
            else:
                self.transactions[key] = txn.clone()
                self._keep_entry("transaction", self.transactions, key, self.touched_transactions)
                self.transactions[key] = txn
        return txn

    def _reloader(self, key: Key, document: Mapping[str, Any]) -> Callable[[], None]:
        """Undo for a transaction taken as loaded: it is read again from its document, which
        the rules never change (they replace a transaction's dicts whole, as ``clone`` relies on)."""
        was_touched = key in self.touched_transactions

        def reload() -> None:
            self.transactions[key] = Transaction.from_document(document)
            self._documents[key] = document  # as loaded again
            if not was_touched:
                self.touched_transactions.discard(key)

        return reload

    def put_transaction(self, txn: Transaction) -> None:
        key = (txn.program, txn.transaction_id)
        self.snapshots.pop(key, None)
        self._documents.pop(key, None)
        self._keep_entry("transaction", self.transactions, key, self.touched_transactions)
        self.transactions[key] = txn
        self.touched_transactions.add(key)

    def mark_purchase_dates_stale(self, key: Key) -> None:
        if key not in self.stale_purchase_dates:
            self._keep("stale", key, lambda: self.stale_purchase_dates.discard(key))
            self.stale_purchase_dates.add(key)

    def record(self, effects: Effects) -> None:
        self.ledger.extend(effects.ledger)
        meta = effects.meta
        self.snapshots.update(effects.snapshots)
        for change in effects.status_changes:
            self.history.append(
                HistoryRow(
                    program=meta.program,
                    transaction_id=change.transaction["transaction_id"],
                    from_status=change.from_status.value if change.from_status else None,
                    to_status=change.to_status.value,
                    event_key=meta.event_id,
                    action=meta.action,
                    at=meta.occurred_at,
                )
            )
