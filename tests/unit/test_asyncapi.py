"""``schemas/asyncapi.json`` against the official AsyncAPI 3.0.0 JSON Schema, as published in
the ``@asyncapi/specs`` npm package (fetched with ``npm pack`` and cached under ``.local/``),
and against the contract: every topic of DESIGN.md sections 2 and 3, every action and webhook
type, a key on every message, and every ``$ref`` resolving inside the document."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any, get_args

import pytest
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from services.config.settings import REPO_ROOT, Topics
from services.contract.outbound import DLQ_HEADERS, WebhookType
from tools.schemas import INBOUND_TOPICS, SCHEMAS_DIR, asyncapi, topic_actions

SPECS_PACKAGE = "@asyncapi/specs@6.11.1"  # pinned: the cache below is keyed by it
SPEC_FILE = "package/schemas/3.0.0.json"
CACHE = REPO_ROOT / ".local" / "asyncapi-specs" / SPECS_PACKAGE.rsplit("@", 1)[1] / "3.0.0.json"
DOCUMENT = SCHEMAS_DIR / "asyncapi.json"


def _fetch_official_schema() -> dict[str, Any]:
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail(
            "npm is needed to fetch the official AsyncAPI 3.0.0 JSON Schema (npm package "
            f"{SPECS_PACKAGE}); install Node.js and npm (Debian: apt-get install npm)",
            pytrace=False,
        )
    if CACHE.exists():
        schema: dict[str, Any] = json.loads(CACHE.read_text())
        return schema
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            [npm, "pack", SPECS_PACKAGE, "--pack-destination", tmp, "--silent"],
            cwd=tmp,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        tarballs = list(Path(tmp).glob("*.tgz"))
        if done.returncode != 0 or len(tarballs) != 1:
            pytest.fail(
                f"`npm pack {SPECS_PACKAGE}` failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}",
                pytrace=False,
            )
        with tarfile.open(tarballs[0]) as archive:
            member = archive.extractfile(SPEC_FILE)
            assert member is not None, f"{SPEC_FILE} missing from {SPECS_PACKAGE}"
            text = member.read().decode()
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    partial = CACHE.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(text)
    partial.replace(CACHE)  # atomic: parallel runs never read half a file
    schema = json.loads(text)
    return schema


@pytest.fixture(scope="module")
def official_validator() -> Draft7Validator:
    schema = _fetch_official_schema()
    assert schema["$id"] == "http://asyncapi.com/definitions/3.0.0/asyncapi.json"
    # The bundle carries every definition it refers to (the JSON Schema draft-07 meta schema
    # among them) under its $id: resolve them there, never over the network.
    registry: Registry[Any] = Registry().with_resources(
        (uri, Resource.from_contents(definition, default_specification=DRAFT7))
        for uri, definition in schema["definitions"].items()
    )
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema, registry=registry)


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DOCUMENT.read_text())
    return doc


def test_asyncapi_document_is_valid_asyncapi_3(
    official_validator: Draft7Validator, document: dict[str, Any]
) -> None:
    assert document["asyncapi"] == "3.0.0"
    errors = sorted(official_validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    assert errors == [], "\n".join(f"{list(e.absolute_path)}: {e.message[:300]}" for e in errors[:20])


def test_official_schema_rejects_a_broken_document(
    official_validator: Draft7Validator, document: dict[str, Any]
) -> None:
    """The validation has teeth: a message with an unknown field, or an operation without its
    action, is refused."""
    broken = json.loads(json.dumps(document))
    broken["components"]["messages"]["checkout"]["keyy"] = "x"
    assert not official_validator.is_valid(broken)
    broken = json.loads(json.dumps(document))
    del broken["operations"]["consumeCheckouts"]["action"]
    assert not official_validator.is_valid(broken)


def test_every_topic_is_a_channel(document: dict[str, Any]) -> None:
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert addresses == set(Topics().all())
    assert addresses == {
        "loyalty.checkouts",
        "loyalty.lifecycle",
        "loyalty.refunds",
        "loyalty.catalog",
        "loyalty.transaction-status",
        "loyalty.webhooks",
        "loyalty.event-results",
        "loyalty.dlq",
    }
    for name, channel in document["channels"].items():
        assert channel["bindings"]["kafka"]["topic"] == channel["address"]
        assert channel["messages"], name
        # Every channel is sent or received by some operation.
        assert any(op["channel"] == {"$ref": f"#/channels/{name}"} for op in document["operations"].values())


def _channel(document: dict[str, Any], address: str) -> dict[str, Any]:
    return next(c for c in document["channels"].values() if c["address"] == address)


def test_every_action_and_webhook_type_is_a_message(document: dict[str, Any]) -> None:
    topics = Topics()
    for topic, union in INBOUND_TOPICS.items():
        assert set(_channel(document, getattr(topics, topic))["messages"]) == set(topic_actions(union))
    assert set(_channel(document, topics.webhooks)["messages"]) == set(get_args(WebhookType))
    messages = document["components"]["messages"]
    for kind in get_args(WebhookType):
        headers = messages[kind]["headers"]
        assert headers["properties"]["webhook-type"]["const"] == kind
        assert headers["required"] == ["webhook-type"]
        assert {"signature", "webhook-id", "webhook-timestamp", "webhook-signature"} <= set(
            headers["properties"]
        )
    assert messages["dlq"]["headers"]["required"] == list(DLQ_HEADERS)
    trace = {"traceparent", "tracestate"}
    assert set(messages["event-result"]["headers"]["properties"]) == {"internal", *trace}
    assert set(messages["checkout"]["headers"]["properties"]) == {"event-id", "program", *trace}
    for name in ("transaction-status", "dlq", *get_args(WebhookType)):
        assert trace <= set(messages[name]["headers"]["properties"])


def test_every_message_has_a_key_and_a_payload(document: dict[str, Any]) -> None:
    for name, message in document["components"]["messages"].items():
        key = message["bindings"]["kafka"]["key"]
        assert "string" in key["type"] and key["description"], name
        assert message["payload"], name


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"not a local reference: {ref}"
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    assert refs
    for ref in refs:
        _resolve(document, ref)
    assert "$defs" not in json.dumps(document)
    # Two models of one name get pydantic's -Input/-Output names: rename one instead.
    assert [name for name in document["components"]["schemas"] if name.endswith(("-Input", "-Output"))] == []


def test_document_is_generated_from_the_models() -> None:
    from importlib.metadata import version

    assert asyncapi(Topics(), version("loyalty-engine")) == json.loads(DOCUMENT.read_text())
