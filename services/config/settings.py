"""Process settings from environment variables (prefix ``LOYALTY_``; ``DATABASE_URL`` and
``KAFKA_BOOTSTRAP_SERVERS`` are read as they are, as the tests and deploy scripts set them)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, Self

from pydantic import AliasChoices, BaseModel, Field, SecretStr, model_validator
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


class TopicOverride(BaseModel):
    """Per-topic settings (``topic_overrides``, keyed by the ``Topics`` field name, e.g.
    ``dlq``): each one set replaces the global value for that topic."""

    partitions: int | None = Field(default=None, ge=1)
    replication_factor: int | None = Field(default=None, ge=1)
    min_insync_replicas: int | None = Field(default=None, ge=1)
    retention_ms: int | None = Field(default=None, ge=-1)
    compression_type: str | None = None
    config: dict[str, str] = {}


class TopicSpec(BaseModel):
    """What ``create-topics`` creates a topic with, and checks an existing one against."""

    name: str
    partitions: int
    replication_factor: int
    config: dict[str, str]


KafkaSecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
KafkaSaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]


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
    # --- Kafka security and topic settings (issue 13: a real cluster) ---
    # Used by every Kafka client: consumers, relay producers, admin commands, bench, demo,
    # tests (services/adapters/kafka.py turns them into client options). The SASL password
    # comes from ``kafka_sasl_password`` or from a mounted file, ``kafka_sasl_password_file``;
    # when both are set the file wins (a rotated Secret needs no new environment).
    kafka_security_protocol: KafkaSecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: KafkaSaslMechanism | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_sasl_password_file: Path | None = None
    # OAUTHBEARER: the token is read from this file at each (re)authentication, so a sidecar
    # can keep it fresh.
    kafka_sasl_oauth_token_file: Path | None = None
    # TLS (SSL, SASL_SSL): CA bundle (else the system's), client certificate and key (mTLS).
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    kafka_ssl_key_password: SecretStr | None = None
    kafka_ssl_check_hostname: bool = True
    # Topics (create-topics): replication and configs for every topic, then per topic
    # (``LOYALTY_TOPIC_OVERRIDES__DLQ__RETENTION_MS=2592000000``). The defaults suit the local
    # single broker; a topic config left None is the broker's default.
    topic_replication_factor: int = Field(default=1, ge=1)
    topic_min_insync_replicas: int | None = Field(default=None, ge=1)
    topic_retention_ms: int | None = Field(default=None, ge=-1)
    topic_compression_type: str | None = None
    topic_config: dict[str, str] = {}
    topic_overrides: dict[str, TopicOverride] = {}
    # --- end of Kafka security and topic settings ---
    # Consumers: records per poll, and the group id prefix (group = prefix + service name).
    batch_max_records: int = Field(default=500, ge=1)
    batch_timeout_ms: int = Field(default=100, ge=1)
    # How long the broker holds a consumer's fetch for more records (Kafka's fetch.max.wait.ms,
    # fetch.min.bytes): a batch has a fixed cost, so at a steady rate a short wait makes
    # larger batches and less CPU per event; a backlog fills the bytes and is not held back
    # (docs/batching.md).
    consumer_fetch_max_wait_ms: int = Field(default=50, ge=0)
    consumer_fetch_min_bytes: int = Field(default=1024 * 1024, ge=1)
    group_prefix: str = "loyalty."
    # Outbox relay.
    relay_batch: int = Field(default=2000, ge=1)
    relay_idle_seconds: float = Field(default=0.2, gt=0)
    relay_lanes: int = Field(default=32, ge=1)
    # Every busy lane in one claim by default: a batch's messages span most lanes, and claiming
    # them a few at a time made its last message wait for several claims in turn (p99 latency).
    relay_lanes_per_claim: int = Field(default=32, ge=1)
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
    # --- Health, polling, shutdown and inbox retention (issue 13, items 3 and 6) ---
    # aiokafka's max.poll.interval for the consumers. A batch retrying a transient failure
    # gives up after a third of it and is polled again from its first record
    # (services/adapters/docs/retries.md), so a long database outage never takes a consumer
    # out of its group.
    consumer_max_poll_interval_ms: int = Field(default=300_000, ge=1000)
    # /readyz: the database and the broker are probed this often when nothing else showed
    # them alive; a batch retrying for longer than ``ready_stuck_seconds`` is stuck.
    health_probe_seconds: float = Field(default=5.0, gt=0)
    ready_stuck_seconds: float = Field(default=60.0, gt=0)
    # A stopping process (SIGTERM) is down within this, even while the broker is away.
    shutdown_grace_seconds: float = Field(default=10.0, gt=0)
    # Inbox keys are kept this long, then purged in batches: a redelivery of an event older
    # than this is applied again. 0 keeps them forever.
    inbox_retention_seconds: float = Field(default=7 * 86400, ge=0)
    # --- end of health, polling, shutdown and inbox retention ---
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
    # Tracing (services/service_layer/docs/tracing.md): the OTLP/HTTP collector's base URL
    # (the standard OTEL_EXPORTER_OTLP_ENDPOINT, e.g. http://collector:4318). When set, every
    # batch and event is an OpenTelemetry span (the `otel` extra); traceparent headers are
    # carried either way.
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_ENDPOINT", "LOYALTY_OTEL_EXPORTER_OTLP_ENDPOINT"),
    )
    # Webhook signing and operational signals (issue 13).
    # Per-program webhook secrets (services/config/webhook_secrets.py): JSON
    # {"<program>": ["whsec_…", …]} and/or a mounted directory with one file per program, one
    # secret per line. Every secret listed signs (rotation); never in the programs file.
    webhook_secrets: dict[str, list[str]] = {}
    webhook_secrets_dir: Path | None = None
    # How often each consumer process refreshes its gauges (outbox backlog, parked events,
    # due timers, consumer lag); only when LOYALTY_METRICS_PORT is set. 0 turns it off.
    signals_interval_seconds: float = Field(default=15.0, ge=0)

    @model_validator(mode="after")
    def _check_kafka_security(self) -> Self:
        """Start-up check of the Kafka security settings: clear errors, not a hanging client."""
        protocol, mechanism = self.kafka_security_protocol, self.kafka_sasl_mechanism
        if protocol.startswith("SASL_"):
            if mechanism is None:
                raise ValueError(
                    f"LOYALTY_KAFKA_SECURITY_PROTOCOL={protocol} needs LOYALTY_KAFKA_SASL_MECHANISM"
                )
            if mechanism == "OAUTHBEARER":
                if self.kafka_sasl_oauth_token_file is None:
                    raise ValueError(
                        "LOYALTY_KAFKA_SASL_MECHANISM=OAUTHBEARER needs LOYALTY_KAFKA_SASL_OAUTH_TOKEN_FILE"
                    )
            else:
                if not self.kafka_sasl_username:
                    raise ValueError(
                        f"LOYALTY_KAFKA_SASL_MECHANISM={mechanism} needs LOYALTY_KAFKA_SASL_USERNAME"
                    )
                if self.kafka_sasl_password is None and self.kafka_sasl_password_file is None:
                    raise ValueError(
                        f"LOYALTY_KAFKA_SASL_MECHANISM={mechanism} needs LOYALTY_KAFKA_SASL_PASSWORD"
                        " or LOYALTY_KAFKA_SASL_PASSWORD_FILE"
                    )
        elif mechanism is not None:
            raise ValueError(
                f"LOYALTY_KAFKA_SASL_MECHANISM={mechanism} needs LOYALTY_KAFKA_SECURITY_PROTOCOL"
                f" SASL_SSL or SASL_PLAINTEXT, not {protocol}"
            )
        files = {
            "LOYALTY_KAFKA_SASL_PASSWORD_FILE": self.kafka_sasl_password_file,
            "LOYALTY_KAFKA_SASL_OAUTH_TOKEN_FILE": self.kafka_sasl_oauth_token_file,
            "LOYALTY_KAFKA_SSL_CAFILE": self.kafka_ssl_cafile,
            "LOYALTY_KAFKA_SSL_CERTFILE": self.kafka_ssl_certfile,
            "LOYALTY_KAFKA_SSL_KEYFILE": self.kafka_ssl_keyfile,
        }
        for name, path in files.items():
            if path is not None and not path.is_file():
                raise ValueError(f"{name}={path}: no such file")
        if (self.kafka_ssl_certfile is None) != (self.kafka_ssl_keyfile is None):
            raise ValueError("LOYALTY_KAFKA_SSL_CERTFILE and LOYALTY_KAFKA_SSL_KEYFILE go together")
        tls = protocol in ("SSL", "SASL_SSL")
        if not tls and any((self.kafka_ssl_cafile, self.kafka_ssl_certfile)):
            raise ValueError(
                f"TLS files are set but LOYALTY_KAFKA_SECURITY_PROTOCOL={protocol} does not use TLS"
            )
        unknown = set(self.topic_overrides) - set(Topics.model_fields)
        if unknown:
            raise ValueError(
                f"LOYALTY_TOPIC_OVERRIDES names unknown topics {sorted(unknown)};"
                f" known: {sorted(Topics.model_fields)}"
            )
        return self

    def kafka_password(self) -> str | None:
        """The SASL password: the mounted file's content when set (it wins), else the value."""
        if self.kafka_sasl_password_file is not None:
            return self.kafka_sasl_password_file.read_text().strip("\r\n")
        return None if self.kafka_sasl_password is None else self.kafka_sasl_password.get_secret_value()

    def topic_specs(self, topics: Topics | None = None) -> list[TopicSpec]:
        """Every topic with its partitions, replication factor and configs (global, then the
        topic's own override)."""
        return [self.topic_spec(name, field) for field, name in (topics or self.topics).model_dump().items()]

    def topic_spec(self, name: str, field: str | None = None) -> TopicSpec:
        """One topic's spec; ``field`` (its ``Topics`` field name) selects its override."""
        override = self.topic_overrides.get(field or "", TopicOverride())
        config = dict(self.topic_config)
        retention = override.retention_ms if override.retention_ms is not None else self.topic_retention_ms
        for key, value in (
            ("min.insync.replicas", override.min_insync_replicas or self.topic_min_insync_replicas),
            ("retention.ms", retention),
            ("compression.type", override.compression_type or self.topic_compression_type),
        ):
            if value is not None:
                config[key] = str(value)
        config.update(override.config)
        return TopicSpec(
            name=name,
            partitions=override.partitions or self.topic_partitions,
            replication_factor=override.replication_factor or self.topic_replication_factor,
            config=config,
        )

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
            "LOYALTY_CONSUMER_FETCH_MAX_WAIT_MS": str(self.consumer_fetch_max_wait_ms),
            "LOYALTY_CONSUMER_FETCH_MIN_BYTES": str(self.consumer_fetch_min_bytes),
            "LOYALTY_LOG_LEVEL": self.log_level,
        }
        for name, topic in self.topics.model_dump().items():
            env[f"LOYALTY_TOPICS__{name.upper()}"] = topic
        # Kafka security (issue 13): a child process reaches the same cluster the same way.
        env["LOYALTY_KAFKA_SECURITY_PROTOCOL"] = self.kafka_security_protocol
        for field in (
            "kafka_sasl_mechanism",
            "kafka_sasl_username",
            "kafka_sasl_password",
            "kafka_sasl_password_file",
            "kafka_sasl_oauth_token_file",
            "kafka_ssl_cafile",
            "kafka_ssl_certfile",
            "kafka_ssl_keyfile",
            "kafka_ssl_key_password",
        ):
            value = getattr(self, field)
            if value is not None:
                secret = value.get_secret_value() if isinstance(value, SecretStr) else value
                env[f"LOYALTY_{field.upper()}"] = str(secret)
        env["LOYALTY_KAFKA_SSL_CHECK_HOSTNAME"] = str(self.kafka_ssl_check_hostname).lower()
        # Webhook secrets (issue 13): a child process signs as this one does.
        if self.webhook_secrets:
            env["LOYALTY_WEBHOOK_SECRETS"] = json.dumps(self.webhook_secrets)
        if self.webhook_secrets_dir is not None:
            env["LOYALTY_WEBHOOK_SECRETS_DIR"] = str(self.webhook_secrets_dir)
        return env
