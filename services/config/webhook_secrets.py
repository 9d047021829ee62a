"""Webhook signing secrets, per program, from the environment or a mounted directory (never
from the programs file, which is a ConfigMap in production, nor from the image).

- ``LOYALTY_WEBHOOK_SECRETS``: JSON ``{"<program>": ["whsec_…", …]}`` (a single string is
  accepted for one secret);
- ``LOYALTY_WEBHOOK_SECRETS_DIR``: a directory (a mounted Kubernetes Secret) with one file per
  program, named after it, holding one secret per line (blank lines and ``#`` lines ignored).

Secrets are Standard Webhooks secrets: ``whsec_`` and the base64 of 24 to 64 random bytes
(``python -m services.admin new-webhook-secret``). Every listed secret signs, so during a
rotation a program lists the new secret and the old one, and each receiver verifies with the
one it knows; the legacy ``signature`` header is signed with the first."""

from __future__ import annotations

import base64
import binascii
import secrets as _secrets
from collections.abc import Mapping
from pathlib import Path

PREFIX = "whsec_"
MIN_BYTES, MAX_BYTES = 24, 64


class WebhookSecretsError(Exception):
    pass


def new_webhook_secret() -> str:
    return PREFIX + base64.b64encode(_secrets.token_bytes(32)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret: the base64 after ``whsec_``, decoded."""
    return base64.b64decode(secret.removeprefix(PREFIX), validate=True)


def _check(secret: str, where: str) -> str:
    if not secret.startswith(PREFIX):
        raise WebhookSecretsError(f"{where}: a webhook secret starts with {PREFIX!r} (Standard Webhooks)")
    try:
        size = len(secret_key(secret))
    except (binascii.Error, ValueError):
        raise WebhookSecretsError(f"{where}: not base64 after {PREFIX!r}") from None
    if not MIN_BYTES <= size <= MAX_BYTES:
        raise WebhookSecretsError(
            f"{where}: {size} bytes; a webhook secret is {MIN_BYTES} to {MAX_BYTES} bytes"
        )
    return secret


def read_webhook_secrets(
    from_env: Mapping[str, str | list[str]] | None,
    directory: Path | None,
    programs: Mapping[str, object] | None = None,
) -> dict[str, tuple[str, ...]]:
    """Program -> its secrets, in order (the first signs the legacy header). A program named
    in both places, a secret that is not a Standard Webhooks secret, or (when ``programs`` is
    given) a program that is not configured is an error naming where it came from."""
    found: dict[str, tuple[str, ...]] = {}
    for program, value in (from_env or {}).items():
        listed = [value] if isinstance(value, str) else list(value)
        where = f"LOYALTY_WEBHOOK_SECRETS.{program}"
        found[program] = tuple(_check(s.strip(), f"{where}[{n}]") for n, s in enumerate(listed) if s.strip())
    if directory is not None:
        if not directory.is_dir():
            raise WebhookSecretsError(f"LOYALTY_WEBHOOK_SECRETS_DIR: {directory} is not a directory")
        for path in sorted(directory.iterdir()):
            # A mounted Kubernetes Secret also holds ..data and ..<timestamp> entries.
            if path.name.startswith(".") or not path.is_file():
                continue
            if path.name in found:
                raise WebhookSecretsError(
                    f"webhook secrets of {path.name!r} are both in LOYALTY_WEBHOOK_SECRETS and in {path}"
                )
            lines = [line.strip() for line in path.read_text().splitlines()]
            found[path.name] = tuple(
                _check(line, f"{path}:{n}")
                for n, line in enumerate(lines, 1)
                if line and not line.startswith("#")
            )
    if programs is not None:
        unknown = sorted(set(found) - set(programs))
        if unknown:
            raise WebhookSecretsError(f"webhook secrets for programs that are not configured: {unknown}")
    return {program: listed for program, listed in found.items() if listed}
