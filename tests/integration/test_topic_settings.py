"""``create-topics`` on the real broker: topics get the settings' partitions, replication
factor and configs (global, then per topic); an existing topic that differs is reported, one
line per difference, and left as it is."""

from __future__ import annotations

import uuid

import pytest

from services.admin import create_topics, main
from services.config.settings import Settings, Topics

pytestmark = pytest.mark.integration


async def test_topics_get_their_configs_and_differences_are_reported(kafka_bootstrap: str):
    topics = Topics().prefixed(f"t{uuid.uuid4().hex[:8]}.")
    first = Settings(
        kafka_bootstrap_servers=kafka_bootstrap,
        topic_partitions=2,
        topic_retention_ms=86_400_000,
        topic_overrides={"dlq": {"retention_ms": 604_800_000, "compression_type": "zstd"}},
    )
    report = await create_topics(first, topics)
    assert sorted(report.created) == sorted(topics.all()) and report.differences == []
    # Created as configured: the same settings find nothing to report.
    again = await create_topics(first, topics)
    assert again.created == [] and again.differences == []

    other = Settings(
        kafka_bootstrap_servers=kafka_bootstrap,
        topic_partitions=3,
        topic_retention_ms=86_400_000,
        topic_overrides={
            "dlq": {"retention_ms": 604_800_000, "compression_type": "lz4"},
            "webhooks": {"partitions": 2, "min_insync_replicas": 2},
        },
    )
    differences = (await create_topics(other, topics)).differences
    assert f"{topics.dlq}: compression.type=zstd, settings say lz4" in differences
    assert f"{topics.checkouts}: 2 partitions, settings say 3" in differences
    assert f"{topics.webhooks}: min.insync.replicas=1, settings say 2" in differences
    assert not any(d.startswith(f"{topics.webhooks}: 2 partitions") for d in differences)
    replicated = Settings(
        kafka_bootstrap_servers=kafka_bootstrap, topic_partitions=2, topic_replication_factor=3
    )
    assert (
        f"{topics.event_results}: replication factor 1, settings say 3"
        in (await create_topics(replicated, [topics.event_results])).differences
    )


def test_the_command_names_each_difference_and_exits_zero(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    prefix = f"t{uuid.uuid4().hex[:8]}."
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    for name in Topics.model_fields:
        monkeypatch.setenv(f"LOYALTY_TOPICS__{name.upper()}", getattr(Topics().prefixed(prefix), name))
    monkeypatch.setenv("LOYALTY_TOPIC_PARTITIONS", "1")
    assert main(["create-topics"]) == 0
    monkeypatch.setenv("LOYALTY_TOPIC_OVERRIDES__DLQ__RETENTION_MS", "3600000")
    assert main(["create-topics"]) == 0
    out = capsys.readouterr().out
    assert "topics created: none (all exist)" in out
    assert (
        f"topic differs from the settings: {prefix}loyalty.dlq: retention.ms=604800000, settings say 3600000"
        in out
    )
