"""The batch core (docs/batching.md, docs/parking.md): what a polled batch does between loading
its rows and saving them, as a plain synchronous function over a loaded unit of work. No I/O,
so the in-memory suite runs it through thousands of drawn interleavings.

For each item in order: an invalid record gets a DLQ message (and a rejected result when its
event id is known); a duplicate a ``duplicate`` result; an event of an unknown program is
rejected; any other event is attempted. An event applies wholly or leaves the unit of work
as it was (``UnitOfWork.begin_event``); one that parks on a transaction that does not exist
yet registers a draft for it. After an event applies, the events parked on its transaction
are retried (``_release``).

Every item is an event span (docs/tracing.md): the messages it causes carry its
``traceparent``, a released event's those of its own trace.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import structlog

from services.domain.effects import Effects, EventMeta, Parked, Rejected
from services.domain.program import Program
from services.domain.transaction import Transaction
from services.service_layer.decoding import Decoded, Invalid
from services.service_layer.messages import OutboxBuilder
from services.service_layer.registry import Action
from services.service_layer.tracing import IDS_ONLY, TraceContext, Tracer, stamp
from services.service_layer.unit_of_work import Needs, ParkedEvent, UnitOfWork

log = structlog.get_logger(__name__)

Item = Decoded[Any] | Invalid


def _meta(decoded: Decoded[Any]) -> EventMeta:
    return EventMeta(decoded.program, decoded.event_id, decoded.action, decoded.occurred_at)


def lane(source: str, customer: str | None) -> tuple[str, str | None]:
    """The ordered stream an event of a transaction came from: its topic (a source is
    ``topic:partition:offset``, or ``timer``) and its record key, the customer id (the
    transaction id for a guest's events, which name no customer: DESIGN.md section 2). Kafka
    keeps one key's records in the order they were sent; records of other keys, even in the
    same partition, may have been sent in any order."""
    return source.split(":", 1)[0], customer


class BatchCore:
    def __init__(
        self,
        programs: Mapping[str, Program],
        registry: Mapping[str, Action],
        builder: OutboxBuilder,
        tracer: Tracer = IDS_ONLY,
    ):
        self.programs = programs
        self.registry = registry
        self.builder = builder
        self.tracer = tracer

    def needs(self, items: Sequence[Item], fresh: Sequence[bool]) -> Needs:
        """The rows the new events of a batch lock (and read)."""
        needs = Needs()
        for item, is_new in zip(items, fresh, strict=True):
            if is_new and isinstance(item, Decoded) and item.program in self.programs:
                needs.add(self.registry[item.action].needs(item.program, item.event))
        return needs

    def parked_needs(self, parked: ParkedEvent) -> Needs:
        action = self.registry[parked.action]
        return action.needs(parked.program, action.model.model_validate(parked.body))

    def apply(self, uow: UnitOfWork, items: Sequence[Item], fresh: Sequence[bool]) -> list[str]:
        """Apply a batch to a loaded unit of work; return each outcome (events released from
        parking add ``released_<outcome>``). The outbox messages are in ``uow.outbox``."""
        outcomes: list[str] = []
        for item, is_new in zip(items, fresh, strict=True):
            outcomes.append(self._handle(uow, item, is_new, outcomes))
        return outcomes

    def _handle(self, uow: UnitOfWork, item: Item, is_new: bool, outcomes: list[str]) -> str:
        """Handle one item in its span: its messages carry the span's trace context; then,
        once it applied, release the events parked on its transaction (each in its own)."""
        span = self.tracer.event(item)
        mark = len(uow.outbox)
        outcome = self._handle_item(uow, item, is_new, span.context)
        stamp(uow.outbox, mark, span.context)
        span.end(outcome)
        if outcome == "applied" and isinstance(item, Decoded) and item.transaction_id is not None:
            self._release(uow, self.programs[item.program], item.transaction_id, item.event_id, outcomes)
        return outcome

    def _handle_item(self, uow: UnitOfWork, item: Item, is_new: bool, trace: TraceContext) -> str:
        if isinstance(item, Invalid):
            if not is_new:
                return "duplicate"
            log.warning(
                "invalid_message",
                code=item.code,
                reason=item.message,
                source=item.record.source,
                event_id=item.event_id,
            )
            uow.outbox.append(self.builder.dead_letter(item))
            if item.event_id is not None:
                uow.outbox.append(
                    self.builder.result(
                        event_id=item.event_id,
                        program=item.program,
                        action=item.action,
                        transaction_id=None,
                        outcome="rejected",
                        error=(item.code, item.message),
                    )
                )
            return "dead_lettered"
        if not is_new:
            uow.outbox.append(self.builder.decoded_result(item, "duplicate"))
            return "duplicate"
        program = self.programs.get(item.program)
        if program is None:
            uow.outbox.append(
                self.builder.decoded_result(
                    item, "rejected", ("unknown_program", f"program {item.program!r} is not configured")
                )
            )
            return "rejected"
        outcome = self._behind_parked(uow, item) or self._attempt(uow, program, item)
        if isinstance(outcome, Parked):
            uow.park(
                ParkedEvent(
                    program=item.program,
                    transaction_id=item.transaction_id or "",
                    event_id=item.event_id,
                    action=item.action,
                    body=item.event.model_dump(mode="json"),
                    occurred_at=item.occurred_at,
                    source=item.source,
                    reason=outcome.code,
                    trace=trace,  # once released, it continues this event's trace
                )
            )
            uow.outbox.append(self.builder.decoded_result(item, "parked", (outcome.code, outcome.message)))
            return "parked"
        return outcome

    @staticmethod
    def _behind_parked(uow: UnitOfWork, item: Decoded[Any]) -> Parked | None:
        """An event never overtakes an earlier event of its own lane still parked on its
        transaction: applied first, it could make the earlier one end otherwise than in the
        order they were sent (a coupon given back by hand before the full refund sent ahead of
        it, which then finds the coupon already back). It parks behind it instead."""
        if item.transaction_id is None:
            return None
        own = lane(item.source, getattr(item.event, "customer", None))
        for parked in uow.parked.get((item.program, item.transaction_id), ()):
            if lane(parked.source, parked.body.get("customer")) == own:
                return Parked(
                    "awaiting_earlier_event",
                    f"event {parked.event_id}, sent before it on {own[0]} with the same key, is"
                    f" parked ({parked.reason}); this one waits behind it",
                )
        return None

    def _attempt(self, uow: UnitOfWork, program: Program, item: Decoded[Any]) -> str | Parked:
        """Apply one event, recording its effects and its final result; a parked event's
        result is left to the caller (parked now, or still parked on a retry)."""
        effects = Effects(_meta(item))
        uow.begin_event()
        try:
            self.registry[item.action].apply(uow, program, item.event, effects)
        except Rejected as rejected:
            uow.rollback_event()
            log.info(
                "event_rejected",
                event_id=item.event_id,
                code=rejected.code,
                reason=rejected.message,
                transaction_id=item.transaction_id,
                source=item.source,
            )
            uow.outbox.append(
                self.builder.decoded_result(item, "rejected", (rejected.code, rejected.message))
            )
            return "rejected"
        except Parked as parked:
            uow.rollback_event()
            self._register_draft(uow, program, item)
            return parked
        except BaseException:
            uow.rollback_event()
            raise
        uow.end_event()
        uow.record(effects)
        uow.outbox.extend(self.builder.effects(program, effects))
        uow.outbox.append(self.builder.decoded_result(item, "applied", effects=effects))
        return "applied"

    def _register_draft(self, uow: UnitOfWork, program: Program, item: Decoded[Any]) -> None:
        """An event for a transaction that does not exist yet registers it as a draft (as
        Antavo does), announced on the status topic; its checkout fills it in later."""
        tid = item.transaction_id
        if tid is None or uow.transaction(program.name, tid) is not None:
            return
        effects = Effects(_meta(item))
        draft = Transaction.draft(program.name, tid, item.occurred_at)
        uow.put_transaction(draft)
        effects.transition(draft, None)
        uow.record(effects)
        uow.outbox.extend(self.builder.effects(program, effects))

    def _release(
        self, uow: UnitOfWork, program: Program, transaction_id: str, by: str, outcomes: list[str]
    ) -> None:
        """Retry the events parked on a transaction that just changed, in arrival order: each
        time one moves (applied, or rejected for good), start again from the earliest still
        parked, since the change it made may be what an earlier one waits for. Ends when a
        whole pass moves none."""
        waiting = uow.parked.get((program.name, transaction_id))
        while waiting and (released := self._release_first_movable(uow, program, waiting, by)):
            outcomes.append(f"released_{released}")

    def _release_first_movable(
        self, uow: UnitOfWork, program: Program, waiting: list[ParkedEvent], by: str
    ) -> str | None:
        # Lanes with an earlier event still parked: their later events wait behind it.
        held: set[tuple[str, str | None]] = set()
        for parked in waiting:
            if lane(parked.source, parked.body.get("customer")) in held:
                continue
            decoded = Decoded(
                source=parked.source,
                event=self.registry[parked.action].model.model_validate(parked.body),
                program=parked.program,
                event_id=parked.event_id,
                action=parked.action,
                occurred_at=parked.occurred_at,
                transaction_id=parked.transaction_id,
                trace=parked.trace,
            )
            mark = len(uow.outbox)
            outcome = self._attempt(uow, program, decoded)
            if isinstance(outcome, Parked):
                held.add(lane(parked.source, parked.body.get("customer")))
                continue
            # Its span only once it moves (a retry that stays parked wrote nothing).
            span = self.tracer.event(decoded, released_by=by)
            stamp(uow.outbox, mark, span.context)
            span.end(outcome)
            uow.unpark(parked)
            return outcome
        return None
