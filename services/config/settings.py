"""Process settings from environment variables (prefix ``LOYALTY_``; ``DATABASE_URL`` and
``KAFKA_BOOTSTRAP_SERVERS`` are read as they are, as the tests and deploy scripts set them)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[2]


class Topics(BaseModel):
    checkouts: str = "loyalty.checkouts"
    lifecycle: str = "loyalty.lifecycle"
    refunds: str = "loyalty.refunds"
    catalog: str = "loyalty.catalog"
    transaction_status: str = "loyalty.transaction-status"
    webhooks: str = "loyalty.webhooks"
    event_results: str = "loyalty.event-results"
    dlq: str = "loyalty.dlq"

    def all(self) -> list[str]:
        return list(self.model_dump().values())

    def prefixed(self, prefix: str) -> Topics:
        """Every topic name with a prefix: how tests get topics of their own."""
        return Topics(**{name: f"{prefix}{topic}" for name, topic in self.model_dump().items()})


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOYALTY_", env_nested_delimiter="__", extra="ignore")

    # The local default skips TLS: on loopback it protects nothing and cost about a quarter of
    # the rate of small queries (Debian's PostgreSQL offers TLS, which asyncpg then prefers).
    database_url: str = Field(
        default="postgresql://loyalty:loyalty@127.0.0.1:5432/loyalty?sslmode=disable",
        validation_alias=AliasChoices("DATABASE_URL", "LOYALTY_DATABASE_URL"),
    )
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "LOYALTY_KAFKA_BOOTSTRAP_SERVERS"),
    )
    programs_file: Path = REPO_ROOT / "config" / "programs.yaml"
    default_program: str = "default"
    topics: Topics = Topics()
    topic_partitions: int = Field(default=6, ge=1)
    # Consumers: records per poll, and the group id prefix (group = prefix + service name).
    batch_max_records: int = Field(default=500, ge=1)
    batch_timeout_ms: int = Field(default=100, ge=1)
    group_prefix: str = "loyalty."
    # Outbox relay.
    relay_batch: int = Field(default=2000, ge=1)
    relay_idle_seconds: float = Field(default=0.2, gt=0)
    relay_lanes: int = Field(default=32, ge=1)
    relay_lanes_per_claim: int = Field(default=8, ge=1)
    # Published outbox rows are kept this long (for audit and re-publishing by hand), then
    # purged; 0 (the default) deletes each row as soon as it is published, the cheapest.
    outbox_retention_seconds: float = Field(default=0, ge=0)
    # Pending-period timer (pending-lifecycle service): the delay from due time to transition
    # is at most about one poll interval.
    timer_poll_seconds: float = Field(default=2.0, gt=0)
    timer_batch: int = Field(default=500, ge=1)
    # Retry of transient failures (database or broker down): exponential back-off, capped.
    retry_initial_seconds: float = Field(default=0.2, gt=0)
    retry_max_seconds: float = Field(default=5.0, gt=0)
    db_pool_size: int = Field(default=4, ge=1)
    metrics_port: int | None = None
    # 127.0.0.1 on a workstation; 0.0.0.0 in a container, so probes and scrapers reach it.
    metrics_host: str = "127.0.0.1"
    # Read API (python -m services.api).
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8080, ge=1, le=65535)
    api_workers: int = Field(default=1, ge=1)
    api_pool_size: int = Field(default=10, ge=1)
    log_level: str = "INFO"
    log_format: str = Field(default="json", pattern="^(json|console)$")

    def as_env(self) -> dict[str, str]:
        """These settings as the environment of a child process (crash tests, the benchmark)."""
        env = {
            "DATABASE_URL": self.database_url,
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap_servers,
            "LOYALTY_PROGRAMS_FILE": str(self.programs_file),
            "LOYALTY_DEFAULT_PROGRAM": self.default_program,
            "LOYALTY_GROUP_PREFIX": self.group_prefix,
            "LOYALTY_BATCH_MAX_RECORDS": str(self.batch_max_records),
            "LOYALTY_BATCH_TIMEOUT_MS": str(self.batch_timeout_ms),
            "LOYALTY_LOG_LEVEL": self.log_level,
        }
        for name, topic in self.topics.model_dump().items():
            env[f"LOYALTY_TOPICS__{name.upper()}"] = topic
        return env
