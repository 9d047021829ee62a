"""Operator commands: ``python -m services.admin {migrate,create-topics,check-programs,setup,new-api-key}``.

Topics are created here with the configured partition count, replication factor and configs
(``topic_*`` settings); the broker's auto-create is off, so nothing depends on it. An existing
topic is never altered: each difference from the settings is printed, and the exit code stays
0."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError

from services.adapters.kafka import KafkaAccessError, check_access, client_options
from services.adapters.migrate import migrate
from services.adapters.postgres import create_pool
from services.api.auth import api_key_digest, new_api_key
from services.config.programs import ProgramsConfigError, load_programs
from services.config.settings import Settings, Topics, TopicSpec
from services.config.webhook_secrets import new_webhook_secret


async def run_migrations(settings: Settings) -> list[str]:
    pool = await create_pool(settings, size=1)
    try:
        async with pool.acquire() as conn:
            return await migrate(conn)
    finally:
        await pool.close()


@dataclass
class TopicsReport:
    """What ``create-topics`` did: the topics it created, and how existing ones differ from
    the settings (partition count, replication factor, configs), one line each."""

    created: list[str] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)


async def create_topics(
    settings: Settings, topics: Topics | list[str] | None = None, partitions: int | None = None
) -> TopicsReport:
    """Create the topics that do not exist yet (with the settings' partitions, replication
    factor and configs; ``partitions`` overrides the count for all); report existing topics
    that differ. Nothing existing is changed: altering a topic is the operator's call."""
    topics = settings.topics if topics is None else topics
    if isinstance(topics, Topics):
        specs = settings.topic_specs(topics)
    else:
        specs = [settings.topic_spec(name) for name in topics]
    if partitions is not None:
        specs = [spec.model_copy(update={"partitions": partitions}) for spec in specs]
    await check_access(settings)
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [spec for spec in specs if spec.name not in existing]
        report = TopicsReport(created=[spec.name for spec in missing])
        if missing:
            # TopicAlreadyExists: created concurrently by another set-up.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [
                        NewTopic(
                            spec.name,
                            num_partitions=spec.partitions,
                            replication_factor=spec.replication_factor,
                            topic_configs=spec.config,
                        )
                        for spec in missing
                    ]
                )
        present = [spec for spec in specs if spec.name in existing]
        if present:
            report.differences = await _differences(admin, present)
        return report
    finally:
        await admin.close()


async def _differences(admin: AIOKafkaAdminClient, specs: list[TopicSpec]) -> list[str]:
    described = {t["topic"]: t for t in await admin.describe_topics([s.name for s in specs])}
    resources = [ConfigResource(ConfigResourceType.TOPIC, s.name, {k: None for k in s.config}) for s in specs]
    configs: dict[str, dict[str, str | None]] = {}
    if any(s.config for s in specs):
        for response in await admin.describe_configs([r for r in resources if r.configs]):
            for resource in response.to_object()["resources"]:
                configs[resource["resource_name"]] = {
                    e["config_names"]: e["config_value"] for e in resource["config_entries"]
                }
    differences = []
    for spec in specs:
        partitions = described.get(spec.name, {}).get("partitions", [])
        if len(partitions) != spec.partitions:
            differences.append(f"{spec.name}: {len(partitions)} partitions, settings say {spec.partitions}")
        replicas = sorted({len(p["replicas"]) for p in partitions})
        if partitions and replicas != [spec.replication_factor]:
            shown = "/".join(map(str, replicas))
            differences.append(
                f"{spec.name}: replication factor {shown}, settings say {spec.replication_factor}"
            )
        actual = configs.get(spec.name, {})
        for key, wanted in sorted(spec.config.items()):
            if actual.get(key) != wanted:
                differences.append(f"{spec.name}: {key}={actual.get(key)}, settings say {wanted}")
    return differences


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.admin")
    parser.add_argument(
        "command",
        choices=["migrate", "create-topics", "check-programs", "setup", "new-api-key", "new-webhook-secret"],
    )
    args = parser.parse_args(argv)
    if args.command == "new-webhook-secret":
        # For LOYALTY_WEBHOOK_SECRETS(_DIR) and the program's webhook receivers; not stored.
        print(new_webhook_secret())
        return 0
    if args.command == "new-api-key":
        key = new_api_key()
        print(f"api key (give it to the program's platform; it is not stored): {key}")
        print(f"add to the program's api_keys_sha256 in the programs file: {api_key_digest(key)}")
        return 0
    settings = Settings()
    try:
        if args.command in ("check-programs", "setup"):
            programs = load_programs(settings.programs_file)
            print(f"programs OK: {', '.join(sorted(programs))} ({settings.programs_file})")
        if args.command in ("migrate", "setup"):
            applied = asyncio.run(run_migrations(settings))
            print(f"migrations applied: {', '.join(applied) or 'none (up to date)'}")
        if args.command in ("create-topics", "setup"):
            report = asyncio.run(create_topics(settings))
            print(f"topics created: {', '.join(report.created) or 'none (all exist)'}")
            # Existing topics are not altered; each difference is named (exit code stays 0).
            for difference in report.differences:
                print(f"topic differs from the settings: {difference}")
    except (ProgramsConfigError, KafkaAccessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
