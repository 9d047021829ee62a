"""``make demo``: beside a running ``make run``, send a realistic sample stream (the Antavo
seed's example checkouts among them) and print what came out on the output topics."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from services.adapters.kafka import client_options
from services.config.settings import Settings
from services.contract.examples import (
    SEED_CUSTOMER,
    SEED_TRANSACTION_ID,
    seed_item_level_checkout,
    seed_transaction_level_checkout,
)
from tools.import_file import write_import_file

# The read API key of the "default" program in config/programs.yaml (for development only).
DEV_API_KEY = "dev-key-default"


def _lifecycle(action: str, run: str, name: str, tid: str, **data: Any) -> dict[str, Any]:
    return {
        "event_id": f"{run}-{name}",
        "program": "pending",
        "customer": SEED_CUSTOMER,
        "action": action,
        "data": {"transaction_id": tid, **data},
    }


def sample_stream(run: str) -> list[tuple[str, str, dict[str, Any] | bytes]]:
    """(topic, key, body) triples; transaction ids carry the run tag so every run is new."""
    welcome = {
        "event_id": f"{run}-welcome",
        "customer": SEED_CUSTOMER,
        "action": "checkout",
        "data": {
            "transaction_id": f"{run}-0001",
            "total": "80.00",
            "currency": "EUR",
            "items": [
                {
                    "product_id": "003",
                    "category": "shoes",
                    "price": "40.00",
                    "quantity": 2,
                    "subtotal": "80.00",
                }
            ],
        },
    }
    seed_item_level = seed_item_level_checkout() | {"event_id": f"{run}-seed-items"}
    seed_item_level["data"]["transaction_id"] = f"{run}-{SEED_TRANSACTION_ID}"
    seed_transaction_level = seed_transaction_level_checkout() | {"event_id": f"{run}-seed-txn"}
    seed_transaction_level["data"]["transaction_id"] = f"{run}-{SEED_TRANSACTION_ID}-t"
    # The "pending" program holds purchases for 14 days and requires metadata.channel.
    pending: dict[str, Any] = {
        "event_id": f"{run}-pending",
        "program": "pending",
        "customer": SEED_CUSTOMER,
        "action": "checkout",
        "data": {"transaction_id": f"{run}-pos-77", "total": "150.00", "metadata": {"channel": "pos"}},
    }
    guest = {
        "event_id": f"{run}-guest",
        "guest": "true",
        "action": "checkout",
        "data": {"transaction_id": f"{run}-guest", "total": "42.50", "store": "3044"},
    }
    claim = {
        "event_id": f"{run}-claim",
        "customer": "walk-in-7",
        "action": "checkout_claim",
        "data": {"transaction_id": f"{run}-guest"},
    }
    too_much_burn = {
        "event_id": f"{run}-overburn",
        "customer": "new-customer",
        "action": "checkout",
        "data": {"transaction_id": f"{run}-overburn", "total": 20, "points_burned": 500},
    }
    usd = {
        "event_id": f"{run}-usd",
        "customer": "tourist",
        "action": "checkout",
        "data": {"transaction_id": f"{run}-usd", "total": "100", "currency": "USD", "type": "Buy"},
    }
    pos = f"{run}-pos-77"
    early = f"{run}-pos-78"
    dropped = f"{run}-pos-79"
    checkouts: list[tuple[str, dict[str, Any] | bytes]] = [
        (SEED_CUSTOMER, welcome),
        (SEED_CUSTOMER, seed_item_level),
        (SEED_CUSTOMER, seed_item_level),  # redelivered: a duplicate, no double points
        (SEED_CUSTOMER, seed_transaction_level),
        (SEED_CUSTOMER, pending),
        (f"{run}-guest", guest),
        ("walk-in-7", claim),
        ("new-customer", too_much_burn),
        ("tourist", usd),
        ("broken", b'{"action": "checkout", "customer": '),  # malformed: to the DLQ
    ]
    late_checkouts = [
        {
            **pending,
            "event_id": f"{run}-early-checkout",
            "data": {**pending["data"], "transaction_id": early},
        },
        {
            **pending,
            "event_id": f"{run}-dropped-checkout",
            "data": {**pending["data"], "transaction_id": dropped},
        },
    ]
    lifecycle = [
        _lifecycle("checkout_update", run, "update", pos, total="120.00", metadata={"channel": "pos"}),
        _lifecycle("checkout_accept", run, "accept", pos),
        # Accepted before its checkout arrives: parked on a draft, applied when it comes.
        _lifecycle("checkout_accept", run, "early-accept", early),
        _lifecycle("checkout_accept", run, "accept-again", pos),  # rejected: no longer pending
    ]
    return (
        [("checkouts", key, body) for key, body in checkouts]
        + [("lifecycle", SEED_CUSTOMER, body) for body in lifecycle]
        + [("checkouts", SEED_CUSTOMER, body) for body in late_checkouts]
        + [("lifecycle", SEED_CUSTOMER, _lifecycle("checkout_reject", run, "reject", dropped))]
        + [("refunds", key, body) for key, body in _refunds(run, seed_item_level, usd)]
    )


def _refunds(
    run: str, seed_item_level: dict[str, Any], usd: dict[str, Any]
) -> list[tuple[str, dict[str, Any]]]:
    """A returned shirt, money back on the seed order, and a full refund of the USD order."""

    def body(name: str, action: str, customer: str, tid: str, **data: Any) -> dict[str, Any]:
        return {
            "event_id": f"{run}-{name}",
            "customer": customer,
            "action": action,
            "data": {"transaction_id": tid, **data},
        }

    seed_tid = seed_item_level["data"]["transaction_id"]
    return [
        (
            SEED_CUSTOMER,
            body("return-shirt", "refund_item", SEED_CUSTOMER, seed_tid, product_id="001", quantity=1),
        ),
        (SEED_CUSTOMER, body("goodwill", "partial_refund", SEED_CUSTOMER, seed_tid, amount="15.00")),
        ("tourist", body("usd-refund", "refund", "tourist", usd["data"]["transaction_id"])),
    ]


def _table(title: str, header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [f"\n== {title} ({len(rows)})", line.format(*header), line.format(*("-" * w for w in widths))]
    out += [line.format(*row) for row in rows]
    return "\n".join(out)


def _effects(effects: dict[str, int]) -> str:
    return " ".join(f"{k.removeprefix('points_')}={v}" for k, v in effects.items() if v) or "-"


async def main() -> None:
    settings = Settings()
    topics = settings.topics
    outputs = [topics.event_results, topics.transaction_status, topics.webhooks, topics.dlq]
    producer = AIOKafkaProducer(**client_options(settings), acks="all")
    await producer.start()
    try:
        partitions = [
            TopicPartition(t, p)
            for t in outputs
            for p in await asyncio.wait_for(producer.partitions_for(t), 10)
        ]
    except Exception as exc:
        await producer.stop()
        raise SystemExit(f"output topics missing ({exc}): is `make run` running? It creates them.") from exc
    consumer = AIOKafkaConsumer(**client_options(settings), group_id=None)
    await consumer.start()
    consumer.assign(partitions)
    await consumer.seek_to_end(*partitions)
    for tp in partitions:  # resolve the end offsets now, before producing
        await consumer.position(tp)

    run = time.strftime("demo%H%M%S")
    stream = sample_stream(run)
    for topic, key, body in stream:
        value = body if isinstance(body, bytes) else json.dumps(body).encode()
        await producer.send_and_wait(getattr(topics, topic), value, key=key.encode())
    await producer.stop()
    expected = {body["event_id"] for _, _, body in stream if isinstance(body, dict)}
    print(f"sent {len(stream)} events (run {run}); waiting for the engine...")

    received: dict[str, list[Any]] = {t: [] for t in outputs}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for tp, records in (await consumer.getmany(timeout_ms=500)).items():
            received[tp.topic].extend(records)
        final = {
            json.loads(r.value)["event_id"]
            for r in received[topics.event_results]
            if json.loads(r.value)["outcome"] != "parked"
        }
        if expected <= final and received[topics.dlq]:
            await asyncio.sleep(1)  # let the last webhooks arrive
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                received[tp.topic].extend(records)
            break
    await consumer.stop()

    results = [json.loads(r.value) for r in received[topics.event_results]]
    print(
        _table(
            "loyalty.event-results",
            ["event", "action", "outcome", "error", "effects"],
            [
                [
                    r["event_id"].removeprefix(run + "-"),
                    r["action"] or "-",
                    r["outcome"],
                    r["error"]["code"] if r["error"] else "-",
                    _effects(r["effects"]),
                ]
                for r in results
            ],
        )
    )
    statuses = [json.loads(r.value) for r in received[topics.transaction_status]]
    print(
        _table(
            "loyalty.transaction-status",
            ["program", "transaction", "customer", "change", "points"],
            [
                [
                    s["program"],
                    s["transaction_id"],
                    s["customer"] or "(guest)",
                    f"{s['from_status'] or 'new'} -> {s['to_status']}",
                    "earned={points_earned} pending={points_pending}".format(**s["transaction"]),
                ]
                for s in statuses
            ],
        )
    )
    hooks = received[topics.webhooks]
    print(
        _table(
            "loyalty.webhooks",
            ["type", "key", "signed", "detail"],
            [
                [
                    dict(r.headers)["webhook-type"].decode(),
                    r.key.decode(),
                    "yes" if "signature" in dict(r.headers) else "no",
                    str(
                        json.loads(r.value)["data"].get(
                            "points", json.loads(r.value)["data"].get("transaction", {}).get("status", "")
                        )
                    ),
                ]
                for r in hooks
            ],
        )
    )
    print(
        _table(
            "loyalty.dlq",
            ["key", "error-code", "error-message"],
            [
                [
                    (r.key or b"").decode(),
                    dict(r.headers)["error-code"].decode(),
                    dict(r.headers)["error-message"].decode()[:70],
                ]
                for r in received[topics.dlq]
            ],
        )
    )
    print(read_api_tour(settings))
    import_tour(settings, run)


def import_tour(settings: Settings, run: str) -> None:
    """The historical import of 5,000 past transactions (1% bad lines), with its progress bar
    (on a terminal) and its summary, through the operator command."""
    folder = Path(tempfile.mkdtemp())
    path = folder / "history.jsonl"
    bad = write_import_file(path, 5000, settings.default_program, bad_every=100, prefix=f"{run}-hist-")
    print(f"\n== historical import: {path} (5,000 lines, {len(bad)} bad) ==")
    command = [sys.executable, "-m", "services.cli", "import", "transactions", str(path)]
    subprocess.run(
        command, check=False, cwd=Path(__file__).resolve().parents[1], env={**os.environ, **settings.as_env()}
    )


def read_api_tour(settings: Settings) -> str:
    """What the read API (started by ``make run``) says of the seed customer now."""
    base = f"http://{settings.api_host}:{settings.api_port}/v1/programs/default"

    def get(path: str, body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(
            base + path,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {DEV_API_KEY}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())["data"]

    try:
        customer = get(f"/customers/{SEED_CUSTOMER}")
        page = get(f"/customers/{SEED_CUSTOMER}/transactions?limit=5")
        preview = get("/points-preview", seed_item_level_checkout()["data"])
    except (urllib.error.URLError, OSError) as exc:
        return f"read API not reachable at {base} ({exc}); `make run` starts it"
    rates = ", ".join(
        f"{r['converted_amount']} {r['currency']} (+{r['unconverted_points']} points left)"
        for r in customer["burn_rates"]
    )
    return "\n".join(
        [
            f"== read API ({base}, key {DEV_API_KEY}) ==",
            f"customer {SEED_CUSTOMER}: {customer['balances']}; spendable points buy {rates}",
            _table(
                "latest transactions",
                ["transaction", "status", "total", "earned", "pending"],
                [
                    [
                        t["transaction_id"],
                        t["status"],
                        t["total"],
                        str(t["points_earned"]),
                        str(t["points_pending"]),
                    ]
                    for t in page
                ],
            ),
            f"points preview of the seed cart: {preview['purchase']} campaigns={preview['campaigns']}",
        ]
    )


if __name__ == "__main__":
    asyncio.run(main())
