"""Real outbound messages match the generated schemas: events go through the real actions and
domain rules (in memory, on a :class:`UnitOfWork`), then through the real
:class:`OutboxBuilder`; every message value must validate against its file in
``schemas/outbound/`` (per webhook type: ``schemas/outbound/webhooks/<type>.json``) and against
its message's payload in ``schemas/asyncapi.json``, and its headers against that message's
headers. Every webhook type must be produced at least once."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import fields
from datetime import datetime, timedelta
from functools import cache
from typing import Any, get_args

import pytest
from jsonschema import Draft7Validator, Draft202012Validator, FormatChecker

from services.config.settings import Topics
from services.contract.examples import seed_item_level_checkout
from services.contract.outbound import (
    DLQ_HEADERS,
    EventResultMessage,
    TransactionSnapshot,
    TransactionStatusMessage,
    WebhookMessage,
    WebhookType,
)
from services.domain.transaction import Transaction
from services.service_layer.actions import ACTIONS
from services.service_layer.batch import BatchCore
from services.service_layer.decoding import Decoded, Invalid, RawRecord
from services.service_layer.messages import OutboxBuilder, OutboxMessage
from services.service_layer.unit_of_work import UnitOfWork
from tests.unit.builders import AT, CUSTOMER, PENDING_SECONDS, TID, make_program, rich_customer
from tools.schemas import MONEY_PATTERN, SCHEMAS_DIR

TOPICS = Topics()
WEBHOOK_SECRET = "whsec_" + "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="
PROGRAM = make_program(
    pending_period={"seconds": PENDING_SECONDS},
    exchange_rates={"JPY": "0.0062"},
    shares={"campaign": "0.1", "partner": "0.05", "platform": "0.02"},
)
T_REJECT, T_GUEST, T_YEN, T_EXPIRE, T_SOLO = "t-reject", "t-guest", "t-yen", "t-expire", "t-solo"


@cache
def _file_validator(relative: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS_DIR / relative).read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


@cache
def _asyncapi() -> dict[str, Any]:
    document: dict[str, Any] = json.loads((SCHEMAS_DIR / "asyncapi.json").read_text())
    return document


@cache
def _asyncapi_validator(message: str, part: str) -> Draft7Validator:
    """A message's payload or headers schema, with the document's components to resolve in."""
    document = _asyncapi()
    schema = {**document["components"]["messages"][message][part], "components": document["components"]}
    return Draft7Validator(schema, format_checker=FormatChecker())


def _errors(validator: Draft7Validator | Draft202012Validator, instance: Any) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message[:300]}" for e in validator.iter_errors(instance)]


class Scenario:
    """Runs events through the real actions and collects the outbox messages they make."""

    def __init__(self) -> None:
        self.uow = UnitOfWork()
        self.uow.customers[("acme", CUSTOMER)] = rich_customer(100)
        # Signed, so that the Standard Webhooks headers are checked against the AsyncAPI too.
        self.builder = OutboxBuilder(TOPICS, {PROGRAM.name: [WEBHOOK_SECRET]})
        self.core = BatchCore({PROGRAM.name: PROGRAM}, ACTIONS, self.builder)
        self.messages: list[OutboxMessage] = []
        self.n = 0

    def send(self, body: dict[str, Any], at: datetime = AT) -> None:
        """One event through the batch core (drafts, parking and releases included)."""
        self.n += 1
        action = body["action"]
        event: Any = ACTIONS[action].model.model_validate(body)
        decoded = Decoded(
            source=f"test:0:{self.n}",
            event=event,
            program=PROGRAM.name,
            event_id=f"event-{self.n}",
            action=action,
            occurred_at=at,
            transaction_id=getattr(event.data, "transaction_id", None),
        )
        before = len(self.uow.outbox)
        self.core.apply(self.uow, [decoded], [True])
        self.messages += self.uow.outbox[before:]

    def snapshots(self) -> list[dict[str, Any]]:
        return [
            json.loads(m.value)["transaction"] for m in self.messages if m.topic == TOPICS.transaction_status
        ]


def _checkout(tid: str, customer: str | None = CUSTOMER, **data: Any) -> dict[str, Any]:
    body = seed_item_level_checkout()
    body["data"].update(transaction_id=tid, **data)
    if customer is None:
        del body["customer"]
        body["guest"] = "true"
        body["data"]["points_burned"] = 0
    else:
        body["customer"] = customer
    return body


def _event(action: str, by: str | None = CUSTOMER, **data: Any) -> dict[str, Any]:
    """An event of ``action`` sent for customer ``by`` (None: an event with no customer)."""
    body: dict[str, Any] = {"action": action, "data": data}
    if by is not None:
        body["customer"] = by
    return body


def _run_everything() -> Scenario:
    s = Scenario()
    later = AT + timedelta(hours=1)
    # Catalog: coupons (one a gift card) and the product and store enrichment reads.
    for code in ("C1", "C2", "C3", "C4"):
        s.send(_event("coupon_assign", None, code=code, customer=CUSTOMER))
    s.send(
        _event(
            "coupon_assign", None, code="G1", customer=CUSTOMER, type="gift_card", balance=50, currency="EUR"
        )
    )
    s.uow.catalog[("acme", "product", "001")] = {
        "product_id": "001",
        "category": "shirts",
        "image_url": "i.png",
    }
    s.uow.catalog[("acme", "store", "S1")] = {
        "store_id": "S1",
        "name": "Main street",
        "city": "Paris",
        "latitude": "48.8566",
        "longitude": "2.3522",
    }

    # An accept before its checkout: a draft (status change None -> draft), the event parks
    # (its checkout never comes here).
    s.send(_event("checkout_accept", transaction_id="t-never"))
    s.send(_checkout(TID, coupons=["C1"], offers=["O1", "O2"], store="S1"), at=later)
    s.send(
        _event(
            "checkout_update",
            transaction_id=TID,
            total=160,
            points_burned=5,
            items=[{"subtotal": 160}],
            store="S1",
        ),
        at=later,
    )
    s.send(_event("enrich", transaction_id=TID, product_ids=["001"], store="S1"), at=later)
    s.send(_event("checkout_accept", transaction_id=TID), at=later)
    s.send(_event("partial_refund", transaction_id=TID, amount="20.5"), at=later)
    s.send(_event("partial_refund", transaction_id=TID, amount=10, offers=["O1"]), at=later)
    s.send(_event("offer_unredeem", transaction_id=TID, offers=["O2"]), at=later)
    s.send(_event("refund", transaction_id=TID), at=later)
    s.send(_event("refund", transaction_id=TID), at=later)  # rejected: already_refunded

    # Item refunds on an accepted checkout.
    s.send(_checkout(T_SOLO), at=later)
    s.send(_event("checkout_accept", transaction_id=T_SOLO), at=later)
    s.send(_event("refund_item", transaction_id=T_SOLO, product_id="001", quantity=1), at=later)

    # Reject, give back the burned points and the coupon.
    s.send(_checkout(T_REJECT, coupons=["C4"]), at=later)
    s.send(_event("checkout_reject", transaction_id=T_REJECT), at=later)
    s.send(_event("point_unspend", transaction_id=T_REJECT), at=later)
    s.send(_event("coupon_unredeem", transaction_id=T_REJECT, code="C4"), at=later)

    # A guest checkout (no customer: webhooks keyed by transaction id), then claimed.
    s.send(_checkout(T_GUEST, None, offers=["O3"]), at=later)
    s.send(_event("checkout_claim", transaction_id=T_GUEST), at=later)

    # Another currency: money with JPY's minor unit (none).
    s.send(
        _checkout(T_YEN, currency="JPY", total=15000, items=[{"subtotal": 15000, "quantity": 3}]), at=later
    )

    # The pending timer's accept (internal).
    s.send(_checkout(T_EXPIRE), at=later)
    due = later + timedelta(seconds=PENDING_SECONDS)
    s.send(_event("auto_expire", None, transaction_id=T_EXPIRE), at=due)

    # Coupons redeemed on their own: a gift card in part, an amount coupon whole; one invalidated.
    s.send(_event("coupon_redeem", code="G1", amount=20, transaction_id="pos-1"), at=later)
    s.send(_event("coupon_redeem", code="C2"), at=later)
    # ... and given back on their own (coupon_unredeem without a transaction).
    s.send(_event("coupon_unredeem", code="G1", amount=5), at=later)
    s.send(_event("coupon_unredeem", code="C2"), at=later)
    s.send(_event("coupon_invalidate", None, code="C3", reason="fraud"), at=later)
    s.send(_event("coupon_invalidate", None, code="G1"), at=later)

    # The DLQ.
    record = RawRecord(TOPICS.checkouts, 3, 42, b"k", b"{not json", (), 0)
    s.messages.append(s.builder.dead_letter(Invalid(record, "malformed_json", "bad", "acme", None, None)))
    record = RawRecord(TOPICS.catalog, 0, 7, None, b"{}", (), 0)
    s.messages.append(
        s.builder.dead_letter(Invalid(record, "schema_violation", "x" * 5000, "acme", None, None))
    )
    return s


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return _run_everything()


def test_every_webhook_type_is_produced(scenario: Scenario) -> None:
    types = Counter(dict(m.headers)["webhook-type"] for m in scenario.messages if m.topic == TOPICS.webhooks)
    assert set(types) == set(get_args(WebhookType)), (
        f"not produced: {set(get_args(WebhookType)) - set(types)}"
    )
    assert {m.topic for m in scenario.messages} == {
        TOPICS.transaction_status,
        TOPICS.webhooks,
        TOPICS.event_results,
        TOPICS.dlq,
    }
    outcomes = Counter(
        json.loads(m.value)["outcome"] for m in scenario.messages if m.topic == TOPICS.event_results
    )
    assert set(outcomes) == {"applied", "parked", "rejected"}


def test_webhooks_match_their_type_schema(scenario: Scenario) -> None:
    for message in (m for m in scenario.messages if m.topic == TOPICS.webhooks):
        value = json.loads(message.value)
        headers = dict(message.headers)
        kind = headers["webhook-type"]
        assert value["type"] == kind
        assert _errors(_file_validator(f"outbound/webhooks/{kind}.json"), value) == [], (kind, value)
        assert _errors(_file_validator("outbound/webhook.json"), value) == [], kind
        assert _errors(_asyncapi_validator(kind, "payload"), value) == [], kind
        assert _errors(_asyncapi_validator(kind, "headers"), headers) == [], (kind, headers)
        data = value["data"]
        customer = data["transaction"]["customer"] if "transaction" in data else data["customer"]
        if customer is not None:
            assert message.key == customer.encode(), kind


def test_guest_webhooks_are_keyed_by_transaction_id(scenario: Scenario) -> None:
    for message in (m for m in scenario.messages if m.topic == TOPICS.webhooks):
        data = json.loads(message.value)["data"]
        if "transaction" in data:
            data = data["transaction"]
        if data.get("customer", "") is None:
            assert message.key == data["transaction_id"].encode(), dict(message.headers)


def test_a_wrong_shape_is_refused(scenario: Scenario) -> None:
    """The per-type schemas are exact: another type's data, or an extra field, fails."""
    points = next(m for m in scenario.messages if dict(m.headers).get("webhook-type") == "points.earned")
    value = json.loads(points.value)
    assert _errors(
        _file_validator("outbound/webhooks/transaction.created.json"),
        {**value, "type": "transaction.created"},
    )
    value["data"]["surprise"] = 1
    assert _errors(_file_validator("outbound/webhooks/points.earned.json"), value)
    assert _errors(_file_validator("outbound/webhook.json"), value)


def test_status_changes_match_the_schema(scenario: Scenario) -> None:
    statuses = [m for m in scenario.messages if m.topic == TOPICS.transaction_status]
    assert {json.loads(m.value)["to_status"] for m in statuses} >= {
        "draft",
        "pending",
        "accepted",
        "rejected",
        "partially_refunded",
        "refunded",
    }
    for message in statuses:
        value = json.loads(message.value)
        assert _errors(_file_validator("outbound/transaction-status.json"), value) == [], value
        assert _errors(_asyncapi_validator("transaction-status", "payload"), value) == []
        assert message.key == value["transaction_id"].encode()
    for snapshot in scenario.snapshots():
        assert _errors(_file_validator("outbound/transaction-snapshot.json"), snapshot) == []


def test_snapshot_schema_is_the_whole_transaction(scenario: Scenario) -> None:
    """Every field of the aggregate is in the schema, required, and nothing else; money fields
    are decimal strings (the JPY one without decimals)."""
    schema = json.loads((SCHEMAS_DIR / "outbound" / "transaction-snapshot.json").read_text())
    aggregate = {f.name for f in fields(Transaction)}
    assert set(schema["properties"]) == aggregate == set(TransactionSnapshot.model_fields)
    assert set(schema["required"]) == aggregate
    assert schema["additionalProperties"] is False
    assert schema["properties"]["total"]["pattern"] == MONEY_PATTERN
    enriched = [s for s in scenario.snapshots() if s["enriched_at"] is not None]
    assert enriched and enriched[0]["store_details"]["city"] == "Paris" and enriched[0]["shares"]
    yen = next(s for s in scenario.snapshots() if s["currency"] == "JPY")
    assert yen["total"] == "15000" and yen["items"][0]["subtotal"] == "15000"
    euro = next(s for s in scenario.snapshots() if s["transaction_id"] == TID and s["refunded"] != "0.00")
    assert euro["refunded"] == "20.50"


def test_event_results_match_the_schema(scenario: Scenario) -> None:
    results = [m for m in scenario.messages if m.topic == TOPICS.event_results]
    for message in results:
        value = json.loads(message.value)
        headers = dict(message.headers)
        assert _errors(_file_validator("outbound/event-result.json"), value) == [], value
        assert _errors(_asyncapi_validator("event-result", "payload"), value) == []
        assert _errors(_asyncapi_validator("event-result", "headers"), headers) == []
        assert message.key == value["event_id"].encode()
        assert value["internal"] == (headers.get("internal") == "true")
    assert any(json.loads(m.value)["internal"] for m in results)


def test_dead_letters_match_the_headers(scenario: Scenario) -> None:
    dead = [m for m in scenario.messages if m.topic == TOPICS.dlq]
    assert len(dead) == 2
    for message in dead:
        headers = dict(message.headers)
        assert list(headers) == list(DLQ_HEADERS)
        assert _errors(_asyncapi_validator("dlq", "headers"), headers) == []


def test_messages_are_the_bytes_the_contract_models_give(scenario: Scenario) -> None:
    """The builder encodes plain dicts for speed: the bytes must be those of the models."""
    models = {
        TOPICS.transaction_status: TransactionStatusMessage,
        TOPICS.webhooks: WebhookMessage,
        TOPICS.event_results: EventResultMessage,
    }
    checked = 0
    for message in scenario.messages:
        if (model := models.get(message.topic)) is not None:
            assert model.model_validate_json(message.value).model_dump_json().encode() == message.value
            checked += 1
    assert checked > 50
