"""Kafka security and topic settings: start-up validation, client options, topic specs."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from faststream.security import BaseSecurity, SASLScram512
from pydantic import ValidationError

from services.adapters.kafka import broker_options, client_options
from services.config.settings import Settings


def test_plaintext_by_default_as_today():
    settings = Settings(kafka_bootstrap_servers="b:9092")
    assert client_options(settings) == {"bootstrap_servers": "b:9092", "security_protocol": "PLAINTEXT"}
    assert broker_options(settings) == {}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kafka_security_protocol": "SASL_SSL"}, "needs LOYALTY_KAFKA_SASL_MECHANISM"),
        (
            {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "PLAIN"},
            "needs LOYALTY_KAFKA_SASL_USERNAME",
        ),
        (
            {
                "kafka_security_protocol": "SASL_SSL",
                "kafka_sasl_mechanism": "PLAIN",
                "kafka_sasl_username": "u",
            },
            "LOYALTY_KAFKA_SASL_PASSWORD or LOYALTY_KAFKA_SASL_PASSWORD_FILE",
        ),
        ({"kafka_sasl_mechanism": "SCRAM-SHA-256"}, "SASL_SSL or SASL_PLAINTEXT, not PLAINTEXT"),
        ({"kafka_security_protocol": "SSL", "kafka_ssl_cafile": "/nonexistent/ca.pem"}, "no such file"),
        ({"topic_overrides": {"nope": {"retention_ms": 1}}}, "unknown topics"),
    ],
)
def test_bad_combinations_are_clear_start_up_errors(fields, message):
    with pytest.raises(ValidationError, match=message):
        Settings(**fields)


def test_password_file_wins_over_the_value(tmp_path: Path):
    secret = tmp_path / "password"
    secret.write_text("from-file\n")
    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="u",
        kafka_sasl_password="from-env",
        kafka_sasl_password_file=secret,
        kafka_ssl_check_hostname=False,
    )
    options = client_options(settings)
    assert options["sasl_plain_password"] == "from-file"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert not options["ssl_context"].check_hostname
    security = broker_options(settings)["security"]
    assert isinstance(security, SASLScram512) and security.use_ssl and security.password == "from-file"
    assert "from-env" not in repr(settings)  # the value is a SecretStr


def test_ssl_without_sasl_is_base_security():
    security = broker_options(Settings(kafka_security_protocol="SSL"))["security"]
    assert type(security) is BaseSecurity and security.use_ssl


def test_topic_specs_global_then_per_topic():
    settings = Settings(
        topic_partitions=6,
        topic_replication_factor=3,
        topic_min_insync_replicas=2,
        topic_compression_type="zstd",
        topic_overrides={
            "dlq": {"retention_ms": 2_592_000_000, "partitions": 1, "config": {"cleanup.policy": "delete"}}
        },
    )
    specs = {s.name: s for s in settings.topic_specs()}
    assert specs["loyalty.checkouts"].config == {"min.insync.replicas": "2", "compression.type": "zstd"}
    dlq = specs["loyalty.dlq"]
    assert (dlq.partitions, dlq.replication_factor) == (1, 3)
    assert dlq.config["retention.ms"] == "2592000000" and dlq.config["cleanup.policy"] == "delete"
    assert Settings().topic_specs()[0].replication_factor == 1 and Settings().topic_specs()[0].config == {}


def test_overrides_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LOYALTY_TOPIC_OVERRIDES__TRANSACTION_STATUS__RETENTION_MS", "60000")
    monkeypatch.setenv("LOYALTY_TOPIC_REPLICATION_FACTOR", "3")
    spec = Settings().topic_spec("x", "transaction_status")
    assert spec.config == {"retention.ms": "60000"} and spec.replication_factor == 3
