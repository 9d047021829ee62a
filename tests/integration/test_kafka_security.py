"""The engine through a SASL_SSL listener (SCRAM, a CA of the test's own) on a second real
broker started by ``deploy/local/kafka.sh`` on free ports and its own data dir: the broker the
other tests use is never touched. A wrong password or an untrusted certificate stops
start-up at once with an error naming the settings."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from services.adapters.kafka import KafkaAccessError
from services.admin import create_topics
from services.config.settings import Settings
from services.entrypoints.bootstrap import ConsumerProcess
from services.service_layer.actions import checkout_ingestion
from tests.harness import Engine, make_program

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "local" / "kafka.sh"
USER, PASSWORD = "loyalty-engine", "s3cret-scram-password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_certificates(directory: Path) -> tuple[Path, Path]:
    """A CA, and a server certificate it signs for 127.0.0.1 and localhost. Returns the CA
    file and the broker's PEM keystore (PKCS#8 key, then the certificate)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("loyalty test CA"))
        .issuer_name(_name("loyalty test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.IPv4Address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    keystore = directory / "server-keystore.pem"
    keystore.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        + server.public_bytes(serialization.Encoding.PEM)
        + ca.public_bytes(serialization.Encoding.PEM)
    )
    keystore.chmod(0o600)
    return ca_file, keystore


@dataclass(frozen=True)
class SecureBroker:
    bootstrap: str
    cafile: Path
    password_file: Path

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """Settings keyword arguments reaching this broker through SASL_SSL."""
        return {
            "kafka_security_protocol": "SASL_SSL",
            "kafka_sasl_mechanism": "SCRAM-SHA-512",
            "kafka_sasl_username": USER,
            "kafka_sasl_password_file": self.password_file,
            "kafka_ssl_cafile": self.cafile,
            **overrides,
        }


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    home = tmp_path_factory.mktemp("kafka-sasl-ssl")
    ssl_dir = home / "ssl"
    ssl_dir.mkdir()
    cafile, _ = make_certificates(ssl_dir)
    password_file = home / "password"
    password_file.write_text(PASSWORD + "\n")  # as a mounted Secret may have it
    # The jars of the local broker (fetched once from Maven Central).
    lib = ROOT / ".local" / "kafka" / "lib"
    subprocess.run([str(SCRIPT), "fetch"], check=True, env={**os.environ, "KAFKA_LIB_DIR": str(lib)})
    port = free_port()
    env = {
        **os.environ,
        "KAFKA_LOCAL_DIR": str(home / "broker"),
        "KAFKA_LIB_DIR": str(lib),
        "KAFKA_PORT": str(free_port()),
        "KAFKA_CONTROLLER_PORT": str(free_port()),
        "KAFKA_SASL_SSL_PORT": str(port),
        "KAFKA_SSL_DIR": str(ssl_dir),
        "KAFKA_SCRAM_USERS": f"{USER}:{PASSWORD}",
    }
    subprocess.run([str(SCRIPT), "start"], check=True, env=env)
    try:
        yield SecureBroker(f"127.0.0.1:{port}", cafile, password_file)
    finally:
        subprocess.run([str(SCRIPT), "stop"], check=False, env=env)


async def test_checkout_end_to_end_through_sasl_ssl(secure_broker: SecureBroker, database_url: str):
    program = make_program(f"secure-{uuid.uuid4().hex[:6]}")
    engine = Engine(
        secure_broker.bootstrap, database_url, [checkout_ingestion()], [program], **secure_broker.settings()
    )
    async with engine:
        body = {
            "action": "checkout",
            "customer": "c-secure",
            "event_id": "e-secure",
            "data": {"transaction_id": "t-secure", "total": 100},
        }
        await engine.send(body)
        results = await engine.results(1)
    assert results["e-secure"]["outcome"] == "applied"
    assert results["e-secure"]["effects"]["points_earned"] > 0


async def test_topics_are_created_through_sasl_ssl_with_scram_sha_256(secure_broker: SecureBroker):
    settings = Settings(
        kafka_bootstrap_servers=secure_broker.bootstrap,
        **secure_broker.settings(kafka_sasl_mechanism="SCRAM-SHA-256"),
    )
    topic = f"secure-{uuid.uuid4().hex[:8]}"
    report = await create_topics(settings, [topic], 2)
    assert report.created == [topic] and report.differences == []


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"kafka_sasl_password": "wrong", "kafka_sasl_password_file": None}, "LOYALTY_KAFKA_SASL_PASSWORD"),
        ({"kafka_ssl_cafile": None}, "LOYALTY_KAFKA_SSL_CAFILE"),
    ],
    ids=["wrong-password", "untrusted-ca"],
)
async def test_refused_access_is_a_clear_start_up_error(
    secure_broker: SecureBroker, database_url: str, overrides: dict[str, Any], expected: str
):
    settings = Settings(
        database_url=database_url,
        kafka_bootstrap_servers=secure_broker.bootstrap,
        retry_initial_seconds=0.05,
        **secure_broker.settings(**overrides),
    )
    started = time.monotonic()
    with pytest.raises(KafkaAccessError, match=expected):
        await create_topics(settings, [f"never-{uuid.uuid4().hex[:8]}"])
    process = ConsumerProcess(settings, [checkout_ingestion()], {"p": make_program("p")})
    with pytest.raises(KafkaAccessError, match=expected):
        await asyncio.wait_for(process.start(), 20)
    assert time.monotonic() - started < 20
