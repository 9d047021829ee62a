"""Reference data from loyalty.catalog (enrichment consumer) and its use by checkout
ingestion, on the real broker and database."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any

import pytest

from services.domain.program import Program
from services.service_layer.actions import checkout_ingestion, enrichment, transaction_enrichment
from tests.harness import Engine, make_program
from tests.integration.conftest import Db

pytestmark = pytest.mark.integration


def catalog_event(action: str, event_id: str, **data: Any) -> dict[str, Any]:
    return {"action": action, "event_id": event_id, "data": data}


async def send_catalog(engine: Engine, body: dict[str, Any]) -> None:
    entity_id = next(
        v for k, v in body["data"].items() if k in ("product_id", "store_id", "offer_id", "code")
    )
    await engine.send(body, key=entity_id, topic="catalog")
    await engine.wait_for_result(body["event_id"])


def engine_for(kafka: str, database_url: str, program: Program) -> Engine:
    return Engine(kafka, database_url, [enrichment(), checkout_ingestion()], [program])


async def catalog_row(dbq: Db, program: str, kind: str, entity: str) -> dict[str, Any] | None:
    doc = await dbq.pool.fetchval(
        "SELECT doc FROM catalog WHERE program = $1 AND kind = $2 AND id = $3", program, kind, entity
    )
    return None if doc is None else dict(json.loads(doc))


async def test_reference_data_is_kept_per_program(kafka_bootstrap, database_url, dbq: Db):
    program = make_program(f"cat-{uuid.uuid4().hex[:6]}")
    async with engine_for(kafka_bootstrap, database_url, program) as engine:
        for body in (
            catalog_event(
                "product_upsert",
                "p1",
                product_id="001",
                product_name="Tee",
                category="shirts",
                metadata={"colour": "red"},
            ),
            # The older spelling `name` is still understood.
            catalog_event("product_upsert", "p2", product_id="001", name="Super Tee", category="shirts"),
            catalog_event("product_upsert", "p3", product_id="002", name="Jeans"),
            catalog_event("product_delete", "p4", product_id="002"),
            catalog_event(
                "store_upsert", "s1", store_id="3044", name="Oxford St", city="London", country="GB"
            ),
            catalog_event("offer_upsert", "o1", offer_id="bogo", name="Buy one get one"),
            catalog_event(
                "coupon_assign",
                "c1",
                code="C24RR562",
                customer="ann",
                type="amount",
                value=5,
                currency="EUR",
                expires_at="2030-01-01T00:00:00Z",
                pool="EUR 5 COUPONS",
            ),
            catalog_event("coupon_assign", "c2", code="C24RR562", customer="bob", type="amount", value=5),
        ):
            await send_catalog(engine, body)
    results = {v["event_id"]: v for v in engine.values("event_results")}
    assert all(results[e]["outcome"] == "applied" for e in ("p1", "p2", "p3", "p4", "s1", "o1", "c1"))
    assert results["c2"]["error"]["code"] == "coupon_taken"
    tee = await catalog_row(dbq, program.name, "product", "001")
    assert tee is not None and tee["product_name"] == "Super Tee" and tee["metadata"] is None  # replaced
    assert await catalog_row(dbq, program.name, "product", "002") is None
    assert (await catalog_row(dbq, program.name, "store", "3044"))["city"] == "London"
    assert (await catalog_row(dbq, program.name, "offer", "bogo"))["active"] is True
    coupon = await dbq.pool.fetchrow(
        "SELECT customer_id, status FROM coupons WHERE program = $1", program.name
    )
    assert (coupon["customer_id"], coupon["status"]) == ("ann", "claimed")


async def test_an_unknown_catalog_field_is_dead_lettered_naming_it(kafka_bootstrap, database_url, dbq: Db):
    """A misspelt field is refused, never silently dropped: the whole entry goes to the DLQ."""
    program = make_program(f"cat-{uuid.uuid4().hex[:6]}")
    async with engine_for(kafka_bootstrap, database_url, program) as engine:
        await send_catalog(
            engine, catalog_event("product_upsert", "typo", product_id="001", product_nme="Tee", colour="red")
        )
        await send_catalog(engine, catalog_event("store_upsert", "s-typo", store_id="9", name="X", zip="1"))
        dead = await engine.wait_for("dlq", 2)
    assert {dict(r.headers)["error-code"] for r in dead} == {b"schema_violation"}
    messages = sorted(dict(r.headers)["error-message"].decode() for r in dead)
    assert "data.product_nme: Extra inputs are not permitted" in messages[0]
    assert "data.colour" in messages[0]
    assert messages[1] == "data.zip: Extra inputs are not permitted"
    results = {v["event_id"]: v for v in engine.values("event_results")}
    assert results["typo"]["outcome"] == "rejected" and results["typo"]["error"]["code"] == "schema_violation"
    assert await catalog_row(dbq, program.name, "product", "001") is None


async def test_category_earn_rules_read_the_catalog_category(kafka_bootstrap, database_url, dbq: Db):
    program = make_program(f"cat-{uuid.uuid4().hex[:6]}", earn={"category_multipliers": {"shoes": 3}})
    async with engine_for(kafka_bootstrap, database_url, program) as engine:
        await send_catalog(engine, catalog_event("product_upsert", "p1", product_id="boot", category="shoes"))
        await engine.send(
            {
                "action": "checkout",
                "event_id": "buy",
                "customer": "c",
                "data": {
                    "transaction_id": "T",
                    "total": 30,
                    "items": [
                        {"product_id": "boot", "subtotal": 10},  # no category: the catalog's (shoes, x3)
                        {"product_id": "boot", "subtotal": 10, "category": "gifts"},  # its own wins
                        {"product_id": "unknown", "subtotal": 10},  # not in the catalog: none
                    ],
                },
            },
            topic="checkouts",
        )
        results = await engine.final_results(["buy"])
        # A later catalog change does not rewrite the registered transaction.
        await send_catalog(engine, catalog_event("product_upsert", "p2", product_id="boot", category="boots"))
    assert results["buy"]["effects"]["points_earned"] == 30 + 10 + 10
    txn = await dbq.transaction(program.name, "T")
    assert [i["category"] for i in txn["items"]] == ["shoes", "gifts", None]
    assert [i["points_rewarded"] for i in txn["items"]] == [30, 10, 10]


async def test_registered_transactions_are_enriched_from_the_catalog(kafka_bootstrap, database_url, dbq: Db):
    shares = {"campaign": "0.05", "partner": "0.02", "platform": "0.013"}
    program = make_program(f"enr-{uuid.uuid4().hex[:6]}", shares=shares)
    handlers = [enrichment(), transaction_enrichment(), checkout_ingestion()]
    async with Engine(kafka_bootstrap, database_url, handlers, [program]) as engine:
        for body in (
            catalog_event(
                "product_upsert",
                "p1",
                product_id="001",
                product_name="Super Cool T-Shirt",
                category="shirts",
                product_url="https://shop.example/001",
                image_url="https://img.example/001.png",
            ),
            catalog_event(
                "store_upsert", "s1", store_id="3044", name="Oxford St", city="London", country="GB"
            ),
        ):
            await send_catalog(engine, body)
        for n, total in enumerate(("33.33", "0.01", "1999.99")):
            await engine.send(
                {
                    "action": "checkout",
                    "event_id": f"buy{n}",
                    "customer": "ann",
                    "data": {
                        "transaction_id": f"T{n}",
                        "total": total,
                        "store": "3044",
                        "items": [
                            {"product_id": "001", "subtotal": total},
                            {"product_id": "002", "subtotal": 0, "product_name": "Sent by the shop"},
                        ],
                    },
                },
                topic="checkouts",
            )
        await engine.final_results([f"enrich:T{n}" for n in range(3)])
        await send_catalog(engine, catalog_event("product_upsert", "p2", product_id="001", name="Renamed"))
        await engine.wait_for("webhooks", 11)  # created, earned (not for 0.01), accepted, enriched
    for n, total in enumerate(("33.33", "0.01", "1999.99")):
        txn = await dbq.transaction(program.name, f"T{n}")
        first, second = txn["items"]
        assert (first["product_name"], first["category"], first["product_url"], first["image_url"]) == (
            "Super Cool T-Shirt",
            "shirts",
            "https://shop.example/001",
            "https://img.example/001.png",
        )
        assert second["product_name"] == "Sent by the shop" and second["category"] is None
        assert txn["store_details"] == {"name": "Oxford St", "city": "London", "country": "GB"}
        assert sum(txn["shares"].values()) == int(Decimal(total) * 100), txn["shares"]
        assert txn["enriched_at"] is not None
    enriched = [
        r for r in engine.received["webhooks"] if dict(r.headers)["webhook-type"] == b"transaction.enriched"
    ]
    assert len(enriched) == 3
    assert json.loads(enriched[0].value)["data"]["transaction"]["shares"]["merchant"] > 0
    # The later rename did not rewrite history.
    assert (await dbq.transaction(program.name, "T0"))["items"][0]["product_name"] == "Super Cool T-Shirt"


async def test_a_product_stored_in_the_older_shape_is_upgraded_on_read(
    kafka_bootstrap, database_url, dbq: Db
):
    """A version-1 product (``name``, ``url``) written before the rename still enriches."""
    program = make_program(f"old-{uuid.uuid4().hex[:6]}")
    await dbq.pool.execute(
        "INSERT INTO catalog (program, kind, id, doc, doc_version, updated_at)"
        " VALUES ($1, 'product', 'old1', $2::jsonb, 1, now())",
        program.name,
        json.dumps({"product_id": "old1", "name": "Old Tee", "url": "https://shop/old1"}),
    )
    handlers = [enrichment(), transaction_enrichment(), checkout_ingestion()]
    async with Engine(kafka_bootstrap, database_url, handlers, [program]) as engine:
        items = [{"product_id": "old1", "subtotal": 10}]
        checkout = {"action": "checkout", "event_id": "buy", "customer": "ann"}
        await engine.send(
            {**checkout, "data": {"transaction_id": "T", "total": 10, "items": items}}, topic="checkouts"
        )
        await engine.final_results(["buy", "enrich:T"])
    item = (await dbq.transaction(program.name, "T"))["items"][0]
    assert (item["product_name"], item["product_url"]) == ("Old Tee", "https://shop/old1")
