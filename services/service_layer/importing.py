"""The historical import's pure part (``loyalty import transactions FILE``): file lines in,
validated records or rejects out; then, over a loaded unit of work, each record applied by the
consumers' own rules, so an imported transaction leaves exactly what the consumers would have.

A record is registered by :func:`register_checkout` on the program without its pending period
(it is final: accepted at once, earning at its purchase date by the rules in force then, or
exactly ``points_earned``), then refunded by :func:`refund` / :func:`partial_refund`. Each
record applies wholly or not at all (``UnitOfWork.begin_event``). Its idempotency key is
``import:<transaction id>`` (the inbox key, and the event key of its ledger entries and status
history rows), claimed in the same database transaction as its chunk's writes.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from pydantic import ValidationError

from services.contract.importing import CSV_COLUMNS, CSV_JSON_COLUMNS, ImportRecord
from services.domain.checkout import catalog_categories, products_without_category, register_checkout
from services.domain.customer import Customer, Movement
from services.domain.effects import Effects, EventMeta, Rejected, StatusChange
from services.domain.program import Program
from services.domain.purchase import Checkout
from services.domain.refunds import partial_refund, refund
from services.domain.transaction import Status, Transaction
from services.service_layer.actions import to_items
from services.service_layer.messages import OutboxBuilder
from services.service_layer.unit_of_work import CatalogKey, Key, UnitOfWork

ACTION = "import"
Format = Literal["jsonl", "csv"]


def import_key(transaction_id: str) -> str:
    return f"import:{transaction_id}"


class ImportFileError(Exception):
    """The file as a whole cannot be read (unknown CSV columns): nothing is imported."""


@dataclass(frozen=True)
class Reject:
    line: int
    code: str
    reason: str
    transaction_id: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "code": self.code,
            "reason": self.reason,
            "transaction_id": self.transaction_id,
        }


@dataclass(frozen=True)
class Parsed:
    line: int
    program: str
    record: ImportRecord

    @property
    def key(self) -> Key:
        return (self.program, import_key(self.record.transaction_id))

    @property
    def transaction(self) -> Key:
        return (self.program, self.record.transaction_id)


Outcome = Literal["imported", "duplicate"] | Reject


def _summarise(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "(record)"
        parts.append(f"{where}: {err['msg']}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def _tid(body: Mapping[str, Any]) -> str | None:
    value = body.get("transaction_id")
    return str(value) if isinstance(value, str | int | Decimal) and not isinstance(value, bool) else None


class LineParser:
    """Validates bodies into records; a transaction id seen before in this run is refused."""

    def __init__(self, programs: Mapping[str, Program], default_program: str) -> None:
        self.programs = programs
        self.default_program = default_program
        self._seen: dict[Key, int] = {}

    def body(self, line: int, body: Any) -> Parsed | Reject:
        if not isinstance(body, dict):
            return Reject(line, "schema_violation", "a line is a JSON object")
        try:
            record = ImportRecord.model_validate(body)
        except ValidationError as exc:
            return Reject(line, "schema_violation", _summarise(exc), _tid(body))
        tid = record.transaction_id
        program = record.program or self.default_program
        if program not in self.programs:
            return Reject(line, "unknown_program", f"program {program!r} is not configured", tid)
        first = self._seen.setdefault((program, tid), line)
        if first != line:
            return Reject(line, "duplicate_transaction_id", f"transaction {tid} is on line {first} too", tid)
        return Parsed(line, program, record)

    def jsonl(self, lines: Iterable[tuple[int, bytes]]) -> Iterator[Parsed | Reject]:
        for number, raw in lines:
            if not raw.strip():
                continue
            try:
                body = json.loads(raw, parse_float=Decimal)
            except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
                yield Reject(number, "malformed_json", str(exc))
                continue
            yield self.body(number, body)

    def csv(self, lines: Iterable[str]) -> Iterator[Parsed | Reject]:
        reader = csv.DictReader(lines, strict=True)
        header = reader.fieldnames or []
        unknown = [c for c in header if c not in CSV_COLUMNS]
        if unknown or len(set(header)) != len(header):
            raise ImportFileError(
                f"CSV columns {unknown or header} are not in the import's column set: "
                + ", ".join(CSV_COLUMNS)
            )
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield Reject(reader.line_num, "malformed_csv", str(exc))
                continue
            number = reader.line_num
            if None in row:
                yield Reject(number, "malformed_csv", "more cells than columns", _tid(row))
                continue
            body: dict[str, Any] = {}
            try:
                for column, cell in row.items():
                    if cell is None or cell == "":
                        continue
                    body[column] = (
                        json.loads(cell, parse_float=Decimal) if column in CSV_JSON_COLUMNS else cell
                    )
            except ValueError as exc:
                yield Reject(number, "malformed_json", f"{column}: {exc}", _tid(row))
                continue
            yield self.body(number, body)


def to_checkout(record: ImportRecord) -> Checkout:
    return Checkout(
        transaction_id=record.transaction_id,
        total=record.total,
        customer=record.customer,
        currency=record.currency,
        points_burned=record.points_burned,
        points_rewarded=record.points_earned,
        items=to_items(record.items),
        store=record.store,
        type=record.type,
        metadata=record.metadata,
    )


def catalog_needs(items: Iterable[Parsed]) -> list[CatalogKey]:
    """Catalog products of items sent without a category (their category feeds the earn rules)."""
    return [
        (p.program, "product", pid)
        for p in items
        for pid in products_without_category(to_items(p.record.items))
    ]


class _Quiet(Effects):
    """Effects without messages (no ``--emit-events``): the ledger entries and status changes
    the rules record, without building the snapshots and webhooks nobody would publish."""

    def move(self, customer: Customer, movement: Movement, points: int, transaction_id: str) -> None:
        if points:
            self._post(customer, movement, points, transaction_id)

    def transition(
        self,
        txn: Transaction,
        from_status: Status | None,
        webhook: str | None = None,
        snapshot: dict[str, Any] | None = None,
    ) -> None:
        self.status_changes.append(
            StatusChange({"transaction_id": txn.transaction_id}, from_status, txn.status)
        )

    def benefit(self, webhook: str, customer: str | None, data: dict[str, Any]) -> None:
        return None

    def announce(self, webhook: str, txn: Transaction) -> dict[str, Any]:
        return {}


class ImportCore:
    """Applies parsed records to a loaded unit of work, as the consumers' rules do; with a
    builder, their status changes and webhooks go to the outbox too (``--emit-events``)."""

    def __init__(self, programs: Mapping[str, Program], builder: OutboxBuilder | None = None) -> None:
        # Imported transactions are final: registered accepted, without the pending period.
        self.programs = {name: p.model_copy(update={"pending_period": None}) for name, p in programs.items()}
        self.builder = builder

    def apply(
        self,
        uow: UnitOfWork,
        items: Sequence[Parsed],
        fresh: Sequence[bool],
        existing: Mapping[Key, bool],
    ) -> list[Outcome]:
        """``fresh``: the item's inbox key was new; ``existing``: transactions already stored,
        True when an earlier import registered it (its key purged from the inbox since)."""
        outcomes: list[Outcome] = []
        for item, is_new in zip(items, fresh, strict=True):
            if not is_new:
                outcomes.append("duplicate")
            elif (imported := existing.get(item.transaction)) is not None:
                if imported:
                    outcomes.append("duplicate")
                else:
                    tid = item.record.transaction_id
                    outcomes.append(
                        Reject(
                            item.line, "transaction_exists", f"transaction {tid} is already registered", tid
                        )
                    )
            else:
                outcomes.append(self._apply_one(uow, item))
        return outcomes

    def _apply_one(self, uow: UnitOfWork, item: Parsed) -> Outcome:
        program = self.programs[item.program]
        record = item.record
        key = import_key(record.transaction_id)
        kind = Effects if self.builder is not None else _Quiet
        effects = kind(EventMeta(program.name, key, ACTION, record.occurred_at))
        refund_effects: Effects | None = None
        uow.begin_event()
        try:
            customer = uow.customer(program.name, record.customer)
            categories = catalog_categories(
                to_checkout(record).items, lambda pid: uow.catalog.get((program.name, "product", pid))
            )
            txn = register_checkout(program, to_checkout(record), customer, None, effects, categories)
            accepted_at = record.accepted_at or record.occurred_at
            txn.accepted_at = accepted_at
            txn.touch(accepted_at)
            if record.status != "accepted":
                at = record.refunded_at or accepted_at
                refund_effects = kind(EventMeta(program.name, key, ACTION, at))
                if record.status == "refunded":
                    refund(customer, txn, [], refund_effects)
                    uow.mark_purchase_dates_stale((program.name, customer.customer_id))
                else:
                    assert record.refunded is not None  # the record's validator
                    partial_refund(customer, txn, record.refunded, [], refund_effects)
                if record.points_revoked is not None:
                    self._revoke_exactly(record.points_revoked, customer, txn, refund_effects)
            uow.put_transaction(txn)
        except Rejected as rejected:
            uow.rollback_event()
            return Reject(item.line, rejected.code, rejected.message, record.transaction_id)
        except BaseException:
            uow.rollback_event()
            raise
        uow.end_event()
        for done in (effects, refund_effects):
            if done is not None:
                uow.record(done)
                if self.builder is not None:
                    uow.outbox.extend(self.builder.effects(program, done))
        return "imported"

    @staticmethod
    def _revoke_exactly(points: int, customer: Customer, txn: Transaction, effects: Effects) -> None:
        """The file says what refunds revoked: move the difference from the proportional share."""
        if points > txn.points_earned:
            raise Rejected(
                "over_revoke", f"points_revoked {points} exceeds the {txn.points_earned} points earned"
            )
        diff = points - txn.points_revoked
        if diff > 0:
            effects.move(customer, Movement.revoked, diff, txn.transaction_id)
        elif diff < 0:
            effects.move(customer, Movement.earned, -diff, txn.transaction_id)
        txn.points_revoked = points
