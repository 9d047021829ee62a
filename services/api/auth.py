"""Read API keys: each is bound to one program and configured as its SHA-256 digest
(``api_keys_sha256`` in the programs file), so the file never holds a usable key."""

from __future__ import annotations

import hashlib
import secrets

from services.domain.program import Program


def api_key_digest(key: str) -> str:
    # Keys are random 256-bit tokens (new_api_key), so a fast hash is enough: there is no
    # low-entropy secret to stretch, unlike passwords.
    return hashlib.sha256(key.encode()).hexdigest()


def new_api_key() -> str:
    return "lk_" + secrets.token_urlsafe(32)


class ApiKeys:
    """Which program a presented key belongs to."""

    def __init__(self, programs: dict[str, Program]) -> None:
        self._owners = {digest: name for name, p in programs.items() for digest in p.api_keys_sha256}

    def program_of(self, key: str) -> str | None:
        # A dict lookup by digest: the time taken says nothing about any stored digest.
        return self._owners.get(api_key_digest(key))
