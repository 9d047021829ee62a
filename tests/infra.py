"""Where the real broker and database come from, in this order (DESIGN card):
``KAFKA_BOOTSTRAP_SERVERS`` / ``DATABASE_URL`` when set; testcontainers when a Docker engine
answers; otherwise the local scripts in ``deploy/local/`` (real Kafka from Maven Central jars,
PostgreSQL from Debian's package). There is no fake fallback."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def docker_available() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env().ping()
        return True
    except Exception:
        return False


def _local(script: str) -> None:
    subprocess.run([str(ROOT / "deploy" / "local" / script), "start"], check=True)


@contextlib.contextmanager
def kafka_bootstrap() -> Iterator[str]:
    if url := os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield url
    elif docker_available():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer("confluentinc/cp-kafka:7.6.0").with_kraft() as kafka:
            yield kafka.get_bootstrap_server()
    else:
        _local("kafka.sh")
        yield "127.0.0.1:9092"


@contextlib.contextmanager
def database_url() -> Iterator[str]:
    if url := os.environ.get("DATABASE_URL"):
        yield url
    elif docker_available():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16", driver=None) as pg:
            yield pg.get_connection_url()
    else:
        _local("postgres.sh")
        yield "postgresql://loyalty:loyalty@127.0.0.1:5432/loyalty?sslmode=disable"  # loopback: no TLS
