"""Operator commands: ``python -m services.admin {migrate,create-topics,check-programs,setup,new-api-key}``.

Topics are created here with the configured partition count; the broker's auto-create is
off, so nothing depends on it."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from services.adapters.migrate import migrate
from services.adapters.postgres import create_pool
from services.api.auth import api_key_digest, new_api_key
from services.config.programs import ProgramsConfigError, load_programs
from services.config.settings import Settings, Topics


async def run_migrations(settings: Settings) -> list[str]:
    pool = await create_pool(settings, size=1)
    try:
        async with pool.acquire() as conn:
            return await migrate(conn)
    finally:
        await pool.close()


async def create_topics(bootstrap: str, topics: Topics | list[str], partitions: int) -> list[str]:
    """Create the topics that do not exist yet; return those created."""
    names = topics.all() if isinstance(topics, Topics) else topics
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in names if name not in existing]
        if missing:
            # TopicAlreadyExists: created concurrently by another set-up.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [NewTopic(name, num_partitions=partitions, replication_factor=1) for name in missing]
                )
        return missing
    finally:
        await admin.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.admin")
    parser.add_argument(
        "command", choices=["migrate", "create-topics", "check-programs", "setup", "new-api-key"]
    )
    args = parser.parse_args(argv)
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
            created = asyncio.run(
                create_topics(settings.kafka_bootstrap_servers, settings.topics, settings.topic_partitions)
            )
            print(f"topics created: {', '.join(created) or 'none (all exist)'}")
    except ProgramsConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
