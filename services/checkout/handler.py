"""Checkout ingestion: ``checkout`` and ``checkout_claim`` on ``loyalty.checkouts``."""

from __future__ import annotations

from pydantic import TypeAdapter

from services.contract.inbound import CheckoutClaimEvent, CheckoutEvent, CheckoutsTopicEvent
from services.core.records import Decoded
from services.core.unit_of_work import Key, UnitOfWork
from services.domain.checkout import claim_guest_checkout, register_checkout
from services.domain.effects import Effects
from services.domain.program import Program

CheckoutsEvent = CheckoutEvent | CheckoutClaimEvent


class CheckoutIngestion:
    service = "checkout-ingestion"
    adapter: TypeAdapter[CheckoutsEvent] = TypeAdapter(CheckoutsTopicEvent)
    actions = frozenset({"checkout", "checkout_claim"})

    def lock_keys(self, decoded: Decoded[CheckoutsEvent]) -> tuple[list[Key], list[Key]]:
        event = decoded.event
        customers = [(decoded.program, event.customer)] if event.customer else []
        return customers, [(decoded.program, event.data.transaction_id)]

    def apply(
        self, uow: UnitOfWork, program: Program, decoded: Decoded[CheckoutsEvent], effects: Effects
    ) -> None:
        event = decoded.event
        existing = uow.transaction(decoded.program, event.data.transaction_id)
        if isinstance(event, CheckoutEvent):
            customer = uow.customer(decoded.program, event.customer) if event.customer else None
            uow.put_transaction(register_checkout(program, event, customer, existing, effects))
        else:
            claim_guest_checkout(event, uow.customer(decoded.program, event.customer), existing, effects)
            if existing is not None:
                uow.put_transaction(existing)
