"""The read API over real HTTP, on state built by the real consumers (checkout ingestion,
pending lifecycle, refunds, enrichment) on the real broker and database.

Expected answers come from what the test sent (``Sent``), never from the database."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from services.config.programs import dump_programs
from services.config.settings import Settings
from services.contract.api import MAX_FLIPGIVE_PAGE, MAX_PAGE
from services.domain.program import Program
from services.domain.transaction import Transaction
from services.service_layer.actions import (
    checkout_ingestion,
    enrichment,
    pending_lifecycle,
    refunds,
    transaction_enrichment,
)
from tests.api_server import free_port, serve_api
from tests.harness import ROOT, Engine, make_program
from tests.integration.conftest import Db

pytestmark = pytest.mark.integration

BASE = datetime(2030, 1, 1, tzinfo=UTC)
EARN = {
    "level": "item",
    "category_multipliers": {"shoes": 2},
    "product_multipliers": {"002": "1.5"},
    "campaigns": [{"id": "big-basket", "points": 15, "conditions": {"min_total": 100}}],
}


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass
class Sent:
    """What was sent for one transaction of the listed customer: the expected view."""

    transaction_id: str
    created_at: datetime
    type: str
    status: str = "pending"
    accepted_at: datetime | None = None


@dataclass
class World:
    engine: Engine
    api: httpx.AsyncClient
    pool: asyncpg.Pool
    a: Program
    b: Program
    key_a: str
    key_b: str
    alice: str
    sent: dict[str, Sent] = field(default_factory=dict)

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key_a}"}

    async def get(self, path: str, key: str | None = None, **params: Any) -> httpx.Response:
        return await self.api.get(path, params=params, headers=self.auth(key))

    def listing(self, customer: str | None = None, program: Program | None = None) -> str:
        return f"/v1/programs/{(program or self.a).name}/customers/{customer or self.alice}/transactions"

    def expected(
        self,
        *,
        status: tuple[str, ...] = (),
        types: tuple[str, ...] = (),
        created: tuple[datetime | None, datetime | None] = (None, None),
        accepted: tuple[datetime | None, datetime | None] = (None, None),
        order_by: str = "created_at",
        order: str = "desc",
        supported: bool | None = None,
    ) -> list[str]:
        def within(value: datetime | None, bounds: tuple[datetime | None, datetime | None]) -> bool:
            gt, lt = bounds
            if gt is None and lt is None:
                return True
            return value is not None and (gt is None or value > gt) and (lt is None or value < lt)

        rows = [
            s
            for s in self.sent.values()
            if (not status or s.status in status)
            and (not types or s.type in types)
            and within(s.created_at, created)
            and within(s.accepted_at, accepted)
            and (supported is None or (s.accepted_at is not None) == supported)
        ]
        present = [s for s in rows if getattr(s, order_by) is not None]
        absent = [s for s in rows if getattr(s, order_by) is None]
        for group in (present, absent):
            group.sort(
                key=lambda s: (getattr(s, order_by) or BASE, s.transaction_id), reverse=order == "desc"
            )
        return [s.transaction_id for s in present + absent]


def checkout(program: Program, customer: str, tid: str, at: datetime, kind: str = "Shop") -> dict[str, Any]:
    return {
        "event_id": f"co-{tid}",
        "program": program.name,
        "customer": customer,
        "action": "checkout",
        "occurred_at": at.isoformat(),
        "data": {
            "transaction_id": tid,
            "type": kind,
            "total": "75.00",
            "store": "s1",
            "items": [
                {"product_id": "001", "quantity": 2, "subtotal": "40.00"},
                {"product_id": "002", "subtotal": "35.00"},
            ],
        },
    }


def event(
    program: Program, customer: str, action: str, tid: str, at: datetime, **data: Any
) -> dict[str, Any]:
    return {
        "event_id": f"{action}-{tid}",
        "program": program.name,
        "customer": customer,
        "action": action,
        "occurred_at": at.isoformat(),
        "data": {"transaction_id": tid, **data},
    }


async def send_all(engine: Engine, bodies: list[dict[str, Any]], topic: str) -> None:
    for body in bodies:
        await engine.send(body, topic=topic)
    results = await engine.final_results([b["event_id"] for b in bodies], timeout=60)
    failed = [results[b["event_id"]] for b in bodies if results[b["event_id"]]["outcome"] != "applied"]
    assert not failed, failed


async def build_world(engine: Engine, world: World) -> None:
    """Alice (program A, 14-day pending period) gets 12 transactions a day apart: 1-8
    accepted (in the reverse order of creation), 9 rejected, 10-12 left pending; then 2 is
    refunded, 4 partially refunded and 5 has an item returned. Program B has its own data,
    and a customer id also used in A."""
    a, b = world.a, world.b
    catalog = [
        {"action": "product_upsert", "program": p.name, "event_id": f"{p.name}-{pid}", "data": data}
        for p in (a, b)
        for pid, data in (
            ("001", {"product_id": "001", "name": "Trail shoe", "category": "shoes"}),
            ("002", {"product_id": "002", "name": "Socks", "url": "https://shop.example/socks"}),
        )
    ] + [
        {
            "action": "store_upsert",
            "program": p.name,
            "event_id": f"{p.name}-s1",
            "data": {"store_id": "s1", "name": "Main St", "city": "Leeds"},
        }
        for p in (a, b)
    ]
    await send_all(engine, catalog, "catalog")
    checkouts = []
    for i in range(1, 13):
        tid = f"t{i:02d}"
        sent = Sent(tid, BASE + timedelta(days=i), "Buy" if i % 3 == 0 else "Shop")
        world.sent[tid] = sent
        checkouts.append(checkout(a, world.alice, tid, sent.created_at, sent.type))
    checkouts += [
        checkout(a, "shared", "a-shared-1", BASE),
        checkout(b, "shared", "b-shared-1", BASE),
        checkout(b, "shared", "b-shared-2", BASE + timedelta(days=1)),
    ]
    await send_all(engine, checkouts, "checkouts")
    lifecycle = []
    for i in range(1, 9):
        sent = world.sent[f"t{i:02d}"]
        sent.status, sent.accepted_at = "accepted", BASE + timedelta(days=20, hours=-i)
        lifecycle.append(event(a, world.alice, "checkout_accept", sent.transaction_id, sent.accepted_at))
    world.sent["t09"].status = "rejected"
    lifecycle.append(event(a, world.alice, "checkout_reject", "t09", BASE + timedelta(days=20)))
    await send_all(engine, lifecycle, "lifecycle")
    late = BASE + timedelta(days=30)
    await send_all(
        engine,
        [
            event(a, world.alice, "refund", "t02", late),
            event(a, world.alice, "partial_refund", "t04", late, amount="10.00"),
            event(a, world.alice, "refund_item", "t05", late, product_id="001", quantity=1),
        ],
        "refunds",
    )
    world.sent["t02"].status = "refunded"
    world.sent["t04"].status = world.sent["t05"].status = "partially_refunded"
    # Registrations are enriched from loyalty.transaction-status: wait for all 15.
    ids = [*world.sent, "a-shared-1"]
    for _ in range(600):
        rows = await world.pool.fetch(
            "SELECT transaction_id FROM transactions WHERE program = $1 AND doc->>'enriched_at' IS NOT NULL",
            a.name,
        )
        if {r["transaction_id"] for r in rows} >= set(ids):
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("transactions were not enriched in 30 s")


@pytest.fixture(scope="module")
async def world(kafka_bootstrap: str, database_url: str, db: asyncpg.Pool) -> AsyncIterator[World]:
    tag = uuid.uuid4().hex[:6]
    key_a, key_b = f"key-a-{tag}", f"key-b-{tag}"
    a = make_program(
        f"api-a-{tag}",
        earn=EARN,
        pending_period={"seconds": 1209600},
        exchange_rates={"USD": "0.92"},
        api_keys_sha256=[key_digest(key_a)],
    )
    b = make_program(f"api-b-{tag}", earn=EARN, api_keys_sha256=[key_digest(key_b)])
    handlers = [checkout_ingestion(), pending_lifecycle(), refunds(), enrichment(), transaction_enrichment()]
    async with (
        Engine(kafka_bootstrap, database_url, handlers, [a, b]) as engine,
        serve_api(database_url, [a, b]) as api,
    ):
        state = World(engine, api, db, a, b, key_a, key_b, alice=f"alice-{tag}")
        await build_world(engine, state)
        yield state


# --- list: filters, order, pagination ---------------------------------------------------------


async def ids_of(world: World, **params: Any) -> list[str]:
    response = await world.get(world.listing(), **params)
    assert response.status_code == 200, response.text
    return [t["transaction_id"] for t in response.json()["data"]]


async def test_default_list_is_newest_first_and_documents_are_transactions(world: World):
    response = await world.get(world.listing())
    body = response.json()
    assert [t["transaction_id"] for t in body["data"]] == world.expected()
    assert all(Transaction.from_document(t).customer == world.alice for t in body["data"])
    assert body["meta"] == {"limit": 50, "offset": 0, "count": 12}
    assert body["links"]["next"] is None


@pytest.mark.parametrize(
    "status",
    [
        ("pending",),
        ("accepted",),
        ("rejected",),
        ("refunded",),
        ("partially_refunded",),
        ("accepted", "refunded"),
    ],
)
async def test_status_filter(world: World, status: tuple[str, ...]):
    assert await ids_of(world, status=list(status)) == world.expected(status=status)


@pytest.mark.parametrize("types", [("Buy",), ("Shop",), ("Buy", "Shop"), ("Reload",)])
async def test_type_filter(world: World, types: tuple[str, ...]):
    assert await ids_of(world, type=list(types)) == world.expected(types=types)


async def test_created_at_range_both_ends_exclusive(world: World):
    gt, lt = BASE + timedelta(days=3), BASE + timedelta(days=8)
    got = await ids_of(world, created_at_gt=gt.isoformat(), created_at_lt=lt.isoformat())
    assert got == world.expected(created=(gt, lt)) == ["t07", "t06", "t05", "t04"]
    assert await ids_of(world, created_at_gt=gt.isoformat()) == world.expected(created=(gt, None))
    assert await ids_of(world, created_at_lt=lt.isoformat()) == world.expected(created=(None, lt))


async def test_created_at_accepts_epoch_seconds(world: World):
    gt = BASE + timedelta(days=10)
    assert await ids_of(world, created_at_gt=int(gt.timestamp())) == ["t12", "t11"]


async def test_accepted_at_range(world: World):
    gt, lt = BASE + timedelta(days=20, hours=-7), BASE + timedelta(days=20, hours=-2)
    got = await ids_of(world, accepted_at_gt=gt.isoformat(), accepted_at_lt=lt.isoformat())
    assert got == world.expected(accepted=(gt, lt)) == ["t06", "t05", "t04", "t03"]
    assert await ids_of(world, accepted_at_gt=gt.isoformat()) == world.expected(accepted=(gt, None))
    assert await ids_of(world, accepted_at_lt=lt.isoformat()) == world.expected(accepted=(None, lt))


@pytest.mark.parametrize("order_by", ["created_at", "accepted_at"])
@pytest.mark.parametrize("order", ["asc", "desc", "ASC"])
async def test_order(world: World, order_by: str, order: str):
    got = await ids_of(world, order_by=order_by, order=order)
    assert got == world.expected(order_by=order_by, order=order.lower())
    if order_by == "accepted_at":  # never-accepted ones last, whichever the direction
        assert set(got[-4:]) == {"t09", "t10", "t11", "t12"}


async def test_filters_combine(world: World):
    got = await ids_of(world, status=["accepted", "partially_refunded"], type="Shop", order="asc")
    assert got == world.expected(status=("accepted", "partially_refunded"), types=("Shop",), order="asc")


async def test_pages_follow_next_links_to_the_last_page(world: World):
    seen, pages = [], []
    url: str | None = world.listing() + "?limit=5&order_by=accepted_at"
    while url is not None:
        response = await world.api.get(url, headers=world.auth())
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body["meta"])
        seen += [t["transaction_id"] for t in body["data"]]
        assert body["links"]["self"].endswith(url) or body["links"]["self"] == url
        url = body["links"]["next"]
    assert seen == world.expected(order_by="accepted_at")
    assert pages == [
        {"limit": 5, "offset": 0, "count": 5},
        {"limit": 5, "offset": 5, "count": 5},
        {"limit": 5, "offset": 10, "count": 2},
    ]


async def test_page_exactly_full_has_no_next(world: World):
    body = (await world.get(world.listing(), limit=6, offset=6)).json()
    assert body["meta"]["count"] == 6 and body["links"]["next"] is None


async def test_page_past_the_end_is_empty(world: World):
    response = await world.get(world.listing(), offset=12)
    assert response.status_code == 200
    assert response.json() == {
        "data": [],
        "links": {"self": str(response.request.url), "next": None},
        "meta": {"limit": 50, "offset": 12, "count": 0},
    }


async def test_filter_matching_nothing_is_an_empty_page(world: World):
    assert await ids_of(world, created_at_lt=BASE.isoformat()) == []


async def test_limit_is_capped(world: World):
    body = (await world.get(world.listing(), limit=MAX_PAGE * 20)).json()
    assert body["meta"]["limit"] == MAX_PAGE
    assert len(body["data"]) == 12


# --- FlipGive's spellings -------------------------------------------------------------------------


@pytest.mark.parametrize("types", [("Buy",), ("Shop",), ("Buy", "Shop")])
async def test_intent_type_brackets_are_the_type_filter(world: World, types: tuple[str, ...]):
    assert await ids_of(world, **{"intent_type[]": list(types)}) == world.expected(types=types)


async def test_both_spellings_agreeing_are_accepted(world: World):
    got = await ids_of(world, **{"type": ["Shop", "Buy"], "intent_type[]": ["Buy", "Shop"], "limit": 3})
    assert got == world.expected()[:3]
    body = (
        await world.get(world.listing(), **{"limit": 4, "page[limit]": 4, "offset": 2, "page[offset]": 2})
    ).json()
    assert [t["transaction_id"] for t in body["data"]] == world.expected()[2:6]


async def test_supported_means_accepted_at_some_point_whatever_the_status_now(world: World):
    supported = await ids_of(world, supported="true")
    assert supported == world.expected(supported=True)
    # Refunded whole or in part, they still became financial.
    assert {"t02", "t04", "t05"} <= set(supported)
    assert {world.sent[t].status for t in supported} == {"accepted", "refunded", "partially_refunded"}
    never = await ids_of(world, supported="false")
    assert never == world.expected(supported=False) == ["t12", "t11", "t10", "t09"]
    assert sorted(supported + never) == sorted(world.sent)


async def test_supported_combines_with_other_filters(world: World):
    got = await ids_of(world, **{"supported": "1", "intent_type[]": "Shop", "status": "partially_refunded"})
    assert got == world.expected(supported=True, types=("Shop",), status=("partially_refunded",))
    assert got == ["t05", "t04"]


async def test_supported_at_is_accepted_at(world: World):
    gt, lt = BASE + timedelta(days=20, hours=-7), BASE + timedelta(days=20, hours=-2)
    got = await ids_of(world, supported_at_gt=int(gt.timestamp()), supported_at_lt=lt.isoformat())
    assert got == world.expected(accepted=(gt, lt)) == ["t06", "t05", "t04", "t03"]


async def test_flipgive_pages_follow_next_links_in_flipgive_spelling(world: World):
    seen, pages = [], []
    url: str | None = world.listing() + "?page[limit]=5&intent_type[]=Shop&intent_type[]=Buy&supported=true"
    while url is not None:
        response = await world.api.get(url, headers=world.auth())
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body["meta"])
        seen += [t["transaction_id"] for t in body["data"]]
        assert httpx.URL(body["links"]["self"]).params == httpx.URL(url).params
        url = body["links"]["next"]
        if url is not None:
            params = httpx.URL(url).params
            # The client's spelling, and its filters, carried over.
            assert "limit" not in params and "offset" not in params
            assert params["page[limit]"] == "5"
            assert params.get_list("intent_type[]") == ["Shop", "Buy"]
            assert params["supported"] == "true"
    assert seen == world.expected(supported=True)
    assert [(p["limit"], p["offset"], p["count"]) for p in pages] == [(5, 0, 5), (5, 5, 3)]


async def test_page_offset_alone_keeps_flipgive_spelling(world: World):
    response = await world.get(world.listing(), **{"page[offset]": 2, "limit": 3})
    body = response.json()
    assert [t["transaction_id"] for t in body["data"]] == world.expected()[2:5]
    params = httpx.URL(body["links"]["next"]).params
    assert (params["page[limit]"], params["page[offset]"]) == ("3", "5")
    assert "limit" not in params and "offset" not in params


async def test_page_limit_is_capped_at_flipgives_5000_not_ours(world: World):
    assert (await world.get(world.listing(), **{"page[limit]": 1000})).json()["meta"]["limit"] == 1000
    body = (await world.get(world.listing(), **{"page[limit]": MAX_FLIPGIVE_PAGE * 3})).json()
    assert body["meta"]["limit"] == MAX_FLIPGIVE_PAGE
    assert len(body["data"]) == 12
    assert (await world.get(world.listing(), limit=1000)).json()["meta"]["limit"] == MAX_PAGE


async def test_unknown_customer_is_404(world: World):
    response = await world.get(world.listing(customer="nobody"))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "customer_not_found"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"offset": -1}, "offset"),
        ({"order": "sideways"}, "order"),
        ({"order_by": "total"}, "order_by"),
        ({"status": "draft"}, "status.0"),
        ({"type": "Lease"}, "type.0"),
        ({"created_at_gt": "yesterday"}, "created_at_gt"),
        ({"accepted_at_lt": "2030-01-01T00:00:00"}, "accepted_at_lt"),  # no zone
        ({"sort": "created_at"}, "sort"),  # misspelt parameters are not ignored
        ({"page[limit]": 0}, "page[limit]"),
        ({"page[offset]": -1}, "page[offset]"),
        ({"page_limit": 5}, "page_limit"),
        ({"intent_type[]": "Lease"}, "intent_type[].0"),
        ({"intent_type": "Buy"}, "intent_type"),  # FlipGive's spelling has the brackets
        ({"supported": "maybe"}, "supported"),
        ({"supported_at_gt": "2030-01-01T00:00:00"}, "supported_at_gt"),
        # Both spellings of one parameter, disagreeing: FlipGive's is named.
        ({"limit": 5, "page[limit]": 6}, "page[limit]"),
        ({"offset": 0, "page[offset]": 5}, "page[offset]"),
        ({"type": "Buy", "intent_type[]": "Shop"}, "intent_type[]"),
        ({"accepted_at_gt": 1, "supported_at_gt": 2}, "supported_at_gt"),
    ],
)
async def test_bad_query_parameters_are_422_naming_the_field(
    world: World, params: dict[str, Any], field: str
):
    response = await world.get(world.listing(), **params)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert [(f["location"], f["field"]) for f in error["fields"]] == [("query", field)]
    assert field in error["message"]


# --- access per program -------------------------------------------------------------------------


async def test_no_key_or_unknown_key_is_401(world: World):
    no_key = await world.api.get(world.listing())
    assert no_key.status_code == 401 and no_key.json()["error"]["code"] == "missing_api_key"
    assert no_key.headers["www-authenticate"] == "Bearer"
    unknown = await world.get(world.listing(), key="not-a-key")
    assert unknown.status_code == 401 and unknown.json()["error"]["code"] == "invalid_api_key"


async def test_a_key_of_program_a_sees_nothing_of_program_b(world: World):
    b = world.b
    for path in (
        world.listing(customer="shared", program=b),
        f"/v1/programs/{b.name}/customers/shared",
        f"/v1/programs/{b.name}/transactions/b-shared-1",
        "/v1/programs/no-such-program/customers/shared",
    ):
        response = await world.get(path)
        assert response.status_code == 403, path
        assert response.json()["error"]["code"] == "program_forbidden"
        assert "b-shared" not in response.text
    # Through its own program, the same customer id is A's customer, with A's data only.
    own = await world.get(world.listing(customer="shared"))
    assert [t["transaction_id"] for t in own.json()["data"]] == ["a-shared-1"]
    theirs = await world.get(f"/v1/programs/{world.a.name}/transactions/b-shared-1")
    assert theirs.status_code == 404 and theirs.json()["error"]["code"] == "transaction_not_found"
    # And B's key sees B's.
    response = await world.get(world.listing(customer="shared", program=b), key=world.key_b)
    assert [t["transaction_id"] for t in response.json()["data"]] == ["b-shared-2", "b-shared-1"]


async def test_bad_query_without_a_key_is_401_not_422(world: World):
    response = await world.api.get(world.listing(), params={"limit": 0})
    assert response.status_code == 401


# --- retrieve -----------------------------------------------------------------------------------


async def test_retrieve_item_refund_with_enrichment_history_and_ledger(world: World):
    response = await world.get(f"/v1/programs/{world.a.name}/transactions/t05")
    assert response.status_code == 200, response.text
    detail = response.json()["data"]
    txn = detail["transaction"]
    assert txn["status"] == "partially_refunded"
    shoe, socks = txn["items"]
    assert (shoe["product_id"], shoe["refunded_quantity"], socks["refunded_quantity"]) == ("001", "1", "0")
    # Enrichment copied catalog fields into the lines and the store.
    assert (shoe["product_name"], shoe["category"]) == ("Trail shoe", "shoes")
    assert socks["product_url"] == "https://shop.example/socks"
    assert txn["store_details"]["city"] == "Leeds" and txn["enriched_at"] is not None
    assert [(h["from_status"], h["to_status"], h["action"]) for h in detail["status_history"]] == [
        (None, "pending", "checkout"),
        ("pending", "accepted", "checkout_accept"),
        ("accepted", "partially_refunded", "refund_item"),
    ]
    ledger = detail["points_ledger"]
    assert [e["movement"] for e in ledger] == ["pending", "pending_earned", "revoked"]
    # The ledger of this transaction adds up to what it shows: earned minus revoked.
    assert sum(e["score"] for e in ledger) == txn["points_earned"] - txn["points_revoked"]
    assert sum(e["pending"] for e in ledger) == 0


async def test_retrieve_unknown_transaction_is_404(world: World):
    response = await world.get(f"/v1/programs/{world.a.name}/transactions/t99")
    assert response.status_code == 404 and response.json()["error"]["code"] == "transaction_not_found"


# --- customer: balances, purchase attributes, burn rates ------------------------------------------


async def test_customer_balances_match_the_ledger_and_burn_rates(world: World, dbq: Db):
    response = await world.get(f"/v1/programs/{world.a.name}/customers/{world.alice}")
    assert response.status_code == 200, response.text
    view = response.json()["data"]
    stored = await dbq.balances(world.a.name, world.alice)
    assert view["balances"] == {k: stored[k] for k in ("score", "spendable", "pending", "spent")}
    assert await dbq.ledger_mismatches(world.a.name) == []
    # 3 pending transactions of 75.00: 2 shoes x 20 x 2 + 35 x 1.5 = 132 points each.
    assert view["balances"]["pending"] == 3 * 132
    purchase = view["purchase"]
    # 8 accepted, of which t02 was refunded whole and no longer counts as a purchase; t04
    # gave back 10.00 and t05 one shoe of two (20.00): 7 x 75.00 - 30.00.
    assert purchase["count"] == 7
    assert (purchase["total"], purchase["avg_total"]) == ("495.00", "70.71")
    assert Decimal(purchase["total"]) == stored["purchase_total"]
    spendable = view["balances"]["spendable"]
    eur, usd = view["burn_rates"]
    assert eur == {
        "currency": "EUR",
        "amount": "1.00",
        "points": 10,
        "converted_amount": f"{spendable // 10}.00",
        "unconverted_points": spendable % 10,
    }
    assert (usd["currency"], usd["amount"], usd["points"]) == ("USD", "5.00", 46)


async def test_unknown_customer_view_is_404(world: World):
    response = await world.get(f"/v1/programs/{world.a.name}/customers/nobody")
    assert response.status_code == 404 and response.json()["error"]["code"] == "customer_not_found"


# --- points preview -------------------------------------------------------------------------------


async def test_preview_equals_what_a_real_checkout_then_earns(world: World, dbq: Db):
    b = world.b
    at = BASE + timedelta(days=40)
    cart = {
        "total": "130.00",
        "store": "s1",
        "items": [
            {"product_id": "001", "price": "30.00", "quantity": 2, "discount": "5.00"},  # catalog: shoes
            {"product_id": "002", "subtotal": "45.00"},  # product multiplier 1.5
            {"product_id": "777", "subtotal": "30.00", "category": "books"},
        ],
    }
    tables = ("transactions", "customers", "points_ledger", "inbox", "outbox", "status_history")
    before = {t: await dbq.count(t, b.name) if t != "outbox" else await outbox_rows(dbq) for t in tables}
    response = await world.api.post(
        f"/v1/programs/{b.name}/points-preview",
        json={**cart, "occurred_at": at.isoformat()},
        headers=world.auth(world.key_b),
    )
    assert response.status_code == 200, response.text
    preview = response.json()["data"]
    after = {t: await dbq.count(t, b.name) if t != "outbox" else await outbox_rows(dbq) for t in tables}
    assert after == before  # no side effects
    assert preview["purchase"] == {"base": 110 + 67 + 30, "bonus": 15, "points": 222}
    assert preview["campaigns"] == [{"campaign": "big-basket", "points": 15}]
    assert [i["category"] for i in preview["items"]] == ["shoes", None, "books"]

    body = {
        "event_id": "preview-then-buy",
        "program": b.name,
        "customer": "carol",
        "action": "checkout",
        "occurred_at": at.isoformat(),
        "data": {"transaction_id": "preview-then-buy", **cart},
    }
    await send_all(world.engine, [body], "checkouts")
    txn = (await world.get(f"/v1/programs/{b.name}/transactions/preview-then-buy", key=world.key_b)).json()
    bought = txn["data"]["transaction"]
    assert {"base": bought["points_base"], "bonus": bought["points_bonus"]} == {
        "base": preview["purchase"]["base"],
        "bonus": preview["purchase"]["bonus"],
    }
    assert bought["campaigns"] == preview["campaigns"]
    assert [i["points_rewarded"] for i in bought["items"]] == [i["points"] for i in preview["items"]]
    carol = (await world.get(f"/v1/programs/{b.name}/customers/carol", key=world.key_b)).json()["data"]
    assert carol["balances"]["score"] == preview["purchase"]["points"]


async def outbox_rows(dbq: Db) -> int:
    # Rows ever written (relays delete what they publish, so a count would move by itself).
    return int(await dbq.pool.fetchval("SELECT last_value FROM outbox_id_seq"))


async def test_preview_of_partner_computed_points_adds_no_bonus(world: World):
    """Every item carries points_rewarded: exactly their sum, as the checkout then earns."""
    cart = {
        "total": "130.00",
        "store": "s1",
        "items": [
            {"product_id": "001", "subtotal": "60.00", "points_rewarded": 20},
            {"product_id": "002", "subtotal": "70.00", "points_rewarded": 10},
        ],
    }
    response = await world.api.post(
        f"/v1/programs/{world.b.name}/points-preview", json=cart, headers=world.auth(world.key_b)
    )
    assert response.status_code == 200, response.text
    preview = response.json()["data"]
    assert preview["purchase"] == {"base": 30, "bonus": 0, "points": 30}
    assert preview["campaigns"] == []
    assert [i["points"] for i in preview["items"]] == [20, 10]


async def test_preview_of_a_cart_checkout_would_reject_is_422_with_its_code(world: World):
    response = await world.api.post(
        f"/v1/programs/{world.a.name}/points-preview",
        json={"total": "10", "currency": "JPY"},
        headers=world.auth(),
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "currency_not_supported"


async def test_preview_body_errors_name_the_field(world: World):
    response = await world.api.post(
        f"/v1/programs/{world.a.name}/points-preview",
        json={"total": "-1", "items": [{"product_id": "001"}]},
        headers=world.auth(),
    )
    assert response.status_code == 422
    fields = {(f["location"], f["field"]) for f in response.json()["error"]["fields"]}
    assert fields == {("body", "total"), ("body", "items.0")}


# --- operations -----------------------------------------------------------------------------------


async def test_health_and_readiness(world: World):
    assert (await world.api.get("/healthz")).json() == {"status": "ok"}
    assert (await world.api.get("/readyz")).json() == {"status": "ready"}


async def test_the_api_process_serves_what_make_run_starts(world: World, database_url: str, tmp_path: Path):
    """``python -m services.api`` as an OS process: ready, serving, with request metrics."""
    programs_file = tmp_path / "programs.yaml"
    programs_file.write_text(dump_programs({world.a.name: world.a}))
    port = free_port()
    env = {
        **os.environ,
        **Settings(database_url=database_url, programs_file=programs_file).as_env(),
        "LOYALTY_API_PORT": str(port),
        "LOYALTY_LOG_LEVEL": "WARNING",
    }
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "services.api", cwd=ROOT, env=env)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            for _ in range(200):
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the API process did not become ready in 10 s")
            response = await client.get(world.listing(), headers=world.auth())
            assert [t["transaction_id"] for t in response.json()["data"]] == world.expected()
            metrics = (await client.get("/metrics")).text
            assert 'route="/v1/programs/{program}/customers/{customer_id}/transactions"' in metrics
    finally:
        process.terminate()
        # uvicorn shuts down gracefully, then re-raises the signal it caught.
        assert await asyncio.wait_for(process.wait(), 10) in (0, -signal.SIGTERM)


# --- money in the currency's minor units, and a customer's coupons (Antavo's Display API) ---------


@dataclass
class Shops:
    """Three programs of their own: EUR (coupons), JPY (no minor unit), KWD (three digits)."""

    api: httpx.AsyncClient
    eur: Program
    jpy: Program
    kwd: Program
    keys: dict[str, str]

    async def get(self, program: Program, path: str, key: str | None = None, **params: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key or self.keys[program.name]}"}
        return await self.api.get(f"/v1/programs/{program.name}{path}", params=params, headers=headers)


def assign(program: Program, code: str, customer: str, **data: Any) -> dict[str, Any]:
    return {
        "event_id": f"assign-{code}",
        "program": program.name,
        "action": "coupon_assign",
        "occurred_at": (BASE + timedelta(days=len(code))).isoformat(),
        "data": {"code": code, "customer": customer, **data},
    }


def redeem(program: Program, code: str, customer: str, **data: Any) -> dict[str, Any]:
    return {
        "event_id": f"redeem-{code}",
        "program": program.name,
        "customer": customer,
        "action": "coupon_redeem",
        "occurred_at": (BASE + timedelta(days=40)).isoformat(),
        "data": {"code": code, **data},
    }


def purchase(program: Program, customer: str, tid: str, total: str) -> dict[str, Any]:
    return {
        "event_id": f"co-{tid}",
        "program": program.name,
        "customer": customer,
        "action": "checkout",
        "occurred_at": BASE.isoformat(),
        "data": {"transaction_id": tid, "total": total, "items": [{"product_id": "p1", "subtotal": total}]},
    }


@pytest.fixture(scope="module")
async def shops(kafka_bootstrap: str, database_url: str) -> AsyncIterator[Shops]:
    tag = uuid.uuid4().hex[:6]
    keys = {name: f"key-{name}-{tag}" for name in ("eur", "jpy", "kwd")}
    programs = {
        name: make_program(
            f"api-{name}-{tag}", currency=name.upper(), api_keys_sha256=[key_digest(keys[name])]
        )
        for name in keys
    }
    eur, jpy, kwd = programs["eur"], programs["jpy"], programs["kwd"]
    async with (
        Engine(
            kafka_bootstrap, database_url, [checkout_ingestion(), enrichment()], list(programs.values())
        ) as engine,
        serve_api(database_url, list(programs.values())) as api,
    ):
        await send_all(
            engine,
            [
                assign(eur, "A5", "cora", value=5),
                assign(
                    eur,
                    "GIFT",
                    "cora",
                    type="gift_card",
                    value=50,
                    balance=50,
                    currency="EUR",
                    pool="gift cards",
                    expires_at="2031-01-01T00:00:00Z",
                ),
                assign(eur, "USED", "cora", value=5),
                assign(eur, "SPENT", "cora", type="gift_card", value="10", balance="10"),
                assign(eur, "PCT", "cora", type="percent", value=15),
                assign(eur, "KW", "cora", value="1.5", currency="KWD"),
                assign(eur, "OLD", "cora", value=5, expires_at="2020-01-01T00:00:00Z"),
                assign(eur, "BOBS", "bob", value=5),
                assign(eur, "DORAS", "dora", value="7.5"),
            ],
            "catalog",
        )
        await send_all(
            engine,
            [
                redeem(eur, "GIFT", "cora", amount="20.5"),
                redeem(eur, "USED", "cora"),
                redeem(eur, "SPENT", "cora", amount=10),
                purchase(eur, "cora", "e1", "100"),
                purchase(jpy, "kenji", "j1", "1500"),
                purchase(kwd, "khalid", "k1", "12.5"),
            ],
            "checkouts",
        )
        yield Shops(api, eur, jpy, kwd, {programs[n].name: key for n, key in keys.items()})


async def test_money_has_the_currency_minor_units_in_customer_views(shops: Shops):
    for program, customer, total, rate in (
        (shops.eur, "cora", "100.00", "1.00"),
        (shops.jpy, "kenji", "1500", "1"),
        (shops.kwd, "khalid", "12.500", "1.000"),
    ):
        response = await shops.get(program, f"/customers/{customer}")
        assert response.status_code == 200, response.text
        view = response.json()["data"]
        assert (view["purchase"]["total"], view["purchase"]["avg_total"]) == (total, total), program.currency
        (burn,) = view["burn_rates"]
        assert (burn["currency"], burn["amount"]) == (program.currency, rate)
        # 10 points per unit: what the spendable points buy, in whole units with the digits.
        whole = f"{view['balances']['spendable'] // 10}"
        assert burn["converted_amount"] == (whole if program.currency == "JPY" else f"{whole}.{rate[2:]}")


async def test_money_has_the_currency_minor_units_in_transactions(shops: Shops):
    for program, customer, tid, total, zero in (
        (shops.eur, "cora", "e1", "100.00", "0.00"),
        (shops.jpy, "kenji", "j1", "1500", "0"),
        (shops.kwd, "khalid", "k1", "12.500", "0.000"),
    ):
        detail = await shops.get(program, f"/transactions/{tid}")
        assert detail.status_code == 200, detail.text
        txn = detail.json()["data"]["transaction"]
        assert (txn["total"], txn["refunded"], txn["items"][0]["subtotal"]) == (total, zero, total)
        assert [h["to_status"] for h in detail.json()["data"]["status_history"]] == ["accepted"]
        listed = (await shops.get(program, f"/customers/{customer}/transactions")).json()["data"]
        assert listed == [txn]


async def test_coupons_lists_claimed_and_partially_redeemed_with_money_in_their_currency(shops: Shops):
    response = await shops.get(shops.eur, "/customers/cora/coupons")
    assert response.status_code == 200, response.text
    coupons = response.json()["data"]
    # Soonest expiry first (an expired one is still listed: its status says claimed), then by code.
    assert [c["code"] for c in coupons] == ["OLD", "GIFT", "A5", "KW", "PCT"]
    by_code = {c["code"]: c for c in coupons}
    assert by_code["GIFT"] == {
        "code": "GIFT",
        "status": "partially_redeemed",
        "type": "gift_card",
        "value": "50.00",
        "balance": "29.50",
        "currency": "EUR",
        "expires_at": "2031-01-01T00:00:00Z",
        "pool": "gift cards",
        "created_at": (BASE + timedelta(days=4)).isoformat().replace("+00:00", "Z"),
    }
    # Without a currency of its own a coupon is in the program's.
    assert {k: by_code["A5"][k] for k in ("status", "type", "value", "balance", "currency")} == {
        "status": "claimed",
        "type": "amount",
        "value": "5.00",
        "balance": None,
        "currency": "EUR",
    }
    assert (by_code["KW"]["value"], by_code["KW"]["currency"]) == ("1.500", "KWD")
    assert (by_code["PCT"]["value"], by_code["PCT"]["currency"]) == ("15", None)  # a percentage


async def test_coupons_status_filter_shows_the_others(shops: Shops):
    redeemed = (await shops.get(shops.eur, "/customers/cora/coupons", status="redeemed")).json()["data"]
    assert [(c["code"], c["balance"]) for c in redeemed] == [("SPENT", "0.00"), ("USED", None)]
    both = await shops.get(shops.eur, "/customers/cora/coupons", status=["redeemed", "partially_redeemed"])
    assert [c["code"] for c in both.json()["data"]] == ["GIFT", "SPENT", "USED"]
    bad = await shops.get(shops.eur, "/customers/cora/coupons", status="lost")
    assert bad.status_code == 422
    assert [f["field"] for f in bad.json()["error"]["fields"]] == ["status.0"]
    unknown = await shops.get(shops.eur, "/customers/cora/coupons", code="A5")
    assert unknown.status_code == 422 and unknown.json()["error"]["fields"][0]["field"] == "code"


async def test_coupons_of_a_customer_known_only_by_coupons_or_with_none(shops: Shops):
    # dora has a coupon but never bought anything: she is known through it.
    dora = (await shops.get(shops.eur, "/customers/dora/coupons")).json()["data"]
    assert [(c["code"], c["value"]) for c in dora] == [("DORAS", "7.50")]
    # kenji is a customer of the JPY program with no coupons: an empty list.
    kenji = await shops.get(shops.jpy, "/customers/kenji/coupons")
    assert kenji.status_code == 200 and kenji.json() == {"data": []}
    # As the other customer routes: an unknown customer is a 404.
    nobody = await shops.get(shops.eur, "/customers/nobody/coupons")
    assert nobody.status_code == 404 and nobody.json()["error"]["code"] == "customer_not_found"


async def test_coupons_of_another_program_are_forbidden(shops: Shops):
    response = await shops.get(shops.eur, "/customers/cora/coupons", key=shops.keys[shops.jpy.name])
    assert response.status_code == 403 and response.json()["error"]["code"] == "program_forbidden"
    assert "GIFT" not in response.text
    no_key = await shops.api.get(f"/v1/programs/{shops.eur.name}/customers/cora/coupons")
    assert no_key.status_code == 401
    # The same customer id in another program has none of these coupons.
    assert (await shops.get(shops.jpy, "/customers/cora/coupons")).status_code == 404
