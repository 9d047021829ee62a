"""Kafka client options from the settings: the one place that knows how the engine reaches
its cluster (bootstrap servers, security protocol, SASL, TLS). Every client is built from
here: the consumers' FastStream broker, the relay producer, the admin client, the bench, the
demo and the tests' producer and collector.

Start-up checks access before the clients start (``check_access``): aiokafka retries a
refused login as if the broker were down (its bootstrap logs the cause and raises
``KafkaConnectionError``), so a wrong password would otherwise be retried forever. A refused
login or an untrusted certificate is ``KafkaAccessError``, which start-up does not retry; a
broker that does not answer yet stays transient.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

from aiokafka import errors as kafka_errors
from aiokafka.abc import AbstractTokenProvider
from aiokafka.conn import create_conn
from aiokafka.helpers import create_ssl_context
from faststream.security import (
    BaseSecurity,
    SASLOAuthBearer,
    SASLPlaintext,
    SASLScram256,
    SASLScram512,
)

from services.config.settings import Settings

_AUTH_ERRORS = (
    kafka_errors.SaslAuthenticationFailed,
    kafka_errors.AuthenticationFailedError,
    kafka_errors.AuthenticationMethodNotSupported,
    kafka_errors.UnsupportedSaslMechanismError,
    kafka_errors.IllegalSaslStateError,
)
_CHECK_TIMEOUT_SECONDS = 10.0


class KafkaAccessError(Exception):
    """The cluster refused the engine's credentials or TLS settings: not transient, so
    start-up stops with this message (it names the settings to look at)."""


class FileTokenProvider(AbstractTokenProvider):  # type: ignore[misc]
    """OAUTHBEARER: the token in a file, read at each authentication (a sidecar refreshes it)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def token(self) -> str:
        return self.path.read_text().strip()


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context for SSL and SASL_SSL (None otherwise): the CA file, or the system's
    CAs, and the client certificate and key when set."""
    if settings.kafka_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    key_password = settings.kafka_ssl_key_password
    context: ssl.SSLContext = create_ssl_context(
        cafile=settings.kafka_ssl_cafile,
        certfile=settings.kafka_ssl_certfile,
        keyfile=settings.kafka_ssl_keyfile,
        password=None if key_password is None else key_password.get_secret_value(),
    )
    context.check_hostname = settings.kafka_ssl_check_hostname
    return context


def security_options(settings: Settings) -> dict[str, Any]:
    """aiokafka keyword arguments for security (``AIOKafkaProducer``, ``AIOKafkaConsumer``,
    ``AIOKafkaAdminClient``), without the bootstrap servers."""
    options: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
    context = ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    mechanism = settings.kafka_sasl_mechanism
    if settings.kafka_security_protocol.startswith("SASL_") and mechanism is not None:
        options["sasl_mechanism"] = mechanism
        if mechanism == "OAUTHBEARER":
            assert settings.kafka_sasl_oauth_token_file is not None  # checked by Settings
            options["sasl_oauth_token_provider"] = FileTokenProvider(settings.kafka_sasl_oauth_token_file)
        else:
            options["sasl_plain_username"] = settings.kafka_sasl_username
            options["sasl_plain_password"] = settings.kafka_password()
    return options


def client_options(settings: Settings) -> dict[str, Any]:
    """aiokafka keyword arguments: bootstrap servers and security."""
    return {"bootstrap_servers": settings.kafka_bootstrap_servers, **security_options(settings)}


def broker_options(settings: Settings) -> dict[str, Any]:
    """FastStream ``KafkaBroker`` keyword arguments: ``security`` (and the OAUTHBEARER token
    provider, which FastStream takes beside it)."""
    context = ssl_context(settings)
    use_ssl = context is not None
    mechanism = settings.kafka_sasl_mechanism
    security: BaseSecurity | None
    options: dict[str, Any] = {}
    if not settings.kafka_security_protocol.startswith("SASL_") or mechanism is None:
        security = BaseSecurity(ssl_context=context, use_ssl=use_ssl) if use_ssl else None
    elif mechanism == "OAUTHBEARER":
        assert settings.kafka_sasl_oauth_token_file is not None  # checked by Settings
        security = SASLOAuthBearer(ssl_context=context, use_ssl=use_ssl)
        options["sasl_oauth_token_provider"] = FileTokenProvider(settings.kafka_sasl_oauth_token_file)
    else:
        kinds = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}
        username, password = settings.kafka_sasl_username or "", settings.kafka_password() or ""
        security = kinds[mechanism](username, password, ssl_context=context, use_ssl=use_ssl)
    if security is not None:
        options["security"] = security
    return options


def _hosts(bootstrap: str) -> list[tuple[str, int]]:
    hosts = []
    for entry in bootstrap.split(","):
        host, _, port = entry.strip().rpartition(":")
        hosts.append((host.strip("[]") or entry.strip(), int(port or 9092)))
    return hosts


def _access_error(settings: Settings, exc: BaseException) -> KafkaAccessError | None:
    """The start-up error for a failure that retrying cannot fix, or None (transient)."""
    if isinstance(exc, _AUTH_ERRORS):
        return KafkaAccessError(
            f"Kafka refused the login of LOYALTY_KAFKA_SASL_USERNAME={settings.kafka_sasl_username!r}"
            f" with LOYALTY_KAFKA_SASL_MECHANISM={settings.kafka_sasl_mechanism}: {exc}."
            " Check LOYALTY_KAFKA_SASL_PASSWORD (or the file LOYALTY_KAFKA_SASL_PASSWORD_FILE,"
            " which wins) and the mechanism the cluster enables."
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        return KafkaAccessError(
            f"TLS: the broker's certificate is not trusted: {exc.verify_message}."
            f" Check LOYALTY_KAFKA_SSL_CAFILE={settings.kafka_ssl_cafile}"
            f" and LOYALTY_KAFKA_SSL_CHECK_HOSTNAME={settings.kafka_ssl_check_hostname}."
        )
    if isinstance(exc, ssl.SSLError) and exc.reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE"):
        return KafkaAccessError(
            f"TLS: {settings.kafka_bootstrap_servers} does not speak TLS ({exc.reason})."
            f" Check LOYALTY_KAFKA_SECURITY_PROTOCOL={settings.kafka_security_protocol}"
            " and the listener's port."
        )
    return None


async def check_access(settings: Settings) -> None:
    """Connect (TLS handshake, SASL login) to the first bootstrap server that answers.
    Raises ``KafkaAccessError`` when the cluster refuses the settings; the last connection
    error (transient: the caller retries) when no server answers."""
    if settings.kafka_security_protocol == "PLAINTEXT":
        return  # nothing to refuse: the clients' own start-up covers reachability
    options = security_options(settings)
    last: BaseException | None = None
    for host, port in _hosts(settings.kafka_bootstrap_servers):
        try:
            conn = await asyncio.wait_for(
                create_conn(host, port, request_timeout_ms=int(_CHECK_TIMEOUT_SECONDS * 1000), **options),
                _CHECK_TIMEOUT_SECONDS,
            )
        except Exception as exc:
            if (error := _access_error(settings, exc)) is not None:
                raise error from exc
            last = exc
            continue
        conn.close()
        return
    assert last is not None
    raise last


def is_retryable_start_failure(exc: BaseException) -> bool:
    """Start-up retries everything (the broker may not be up yet) except refused access."""
    return not isinstance(exc, KafkaAccessError)
