"""Webhooks carry the Standard Webhooks headers, verified here by the ``standardwebhooks``
package a receiver would use; secrets come from the environment or a mounted directory, never
from the programs file."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from standardwebhooks import Webhook as StandardWebhook
from standardwebhooks.webhooks import WebhookVerificationError

from services.config.programs import ProgramsConfigError, load_programs, parse_programs
from services.config.settings import REPO_ROOT, Settings, Topics
from services.config.webhook_secrets import WebhookSecretsError, new_webhook_secret, read_webhook_secrets
from services.domain.effects import Effects, EventMeta, Webhook
from services.domain.program import Program
from services.service_layer.messages import OutboxBuilder, OutboxMessage

PROGRAM = Program(name="shop")
OLD, NEW = new_webhook_secret(), new_webhook_secret()


def _webhooks(secrets: list[str] | None, clock: float | None = None) -> list[OutboxMessage]:
    builder = OutboxBuilder(Topics(), {"shop": secrets} if secrets is not None else None)
    if clock is not None:
        builder.clock = lambda: clock
    meta = EventMeta("shop", "e-1", "checkout", datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC))
    effects = Effects(meta)
    effects.webhooks.append(Webhook("points.earned", "c1", {"transaction_id": "t1", "points": 10}))
    return [m for m in builder.effects(PROGRAM, effects) if m.topic == Topics().webhooks]


def _headers(message: OutboxMessage) -> dict[str, str]:
    return dict(message.headers)


def test_one_secret_verifies_with_the_standard_webhooks_library() -> None:
    (message,) = _webhooks([NEW])
    headers = _headers(message)
    body = StandardWebhook(NEW).verify(message.value, headers)
    assert body == json.loads(message.value)
    assert headers["webhook-id"] == body["id"]
    assert headers["webhook-signature"].startswith("v1,") and " " not in headers["webhook-signature"]
    # The business time stays in the body; the timestamp is when the message was built.
    assert body["occurred_at"] == "2020-01-02T03:04:05Z"
    assert abs(int(headers["webhook-timestamp"]) - datetime.now(UTC).timestamp()) < 60
    # The legacy header is unchanged: hex HMAC of the value bytes, keyed by the secret.
    assert (
        headers["signature"] == "sha256=" + hmac.new(NEW.encode(), message.value, hashlib.sha256).hexdigest()
    )


def test_during_rotation_each_secret_alone_verifies() -> None:
    (message,) = _webhooks([NEW, OLD])
    headers = _headers(message)
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (NEW, OLD):
        StandardWebhook(secret).verify(message.value, headers)
    with pytest.raises(WebhookVerificationError):
        StandardWebhook(new_webhook_secret()).verify(message.value, headers)
    assert (
        headers["signature"] == "sha256=" + hmac.new(NEW.encode(), message.value, hashlib.sha256).hexdigest()
    )


def test_tampering_and_stale_timestamps_fail() -> None:
    (message,) = _webhooks([NEW])
    with pytest.raises(WebhookVerificationError):
        StandardWebhook(NEW).verify(message.value.replace(b"10", b"99"), _headers(message))
    (stale,) = _webhooks([NEW], clock=datetime.now(UTC).timestamp() - 3600)
    with pytest.raises(WebhookVerificationError, match="too old"):
        StandardWebhook(NEW).verify(stale.value, _headers(stale))


def test_without_a_secret_webhooks_are_unsigned() -> None:
    for secrets in (None, []):
        (message,) = _webhooks(secrets)
        assert set(_headers(message)) == {"webhook-type"}


def test_secrets_from_the_environment_and_a_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pending").write_text(f"# rotating\n{NEW}\n\n{OLD}\n")
    (tmp_path / "..data").mkdir()  # what a mounted Kubernetes Secret also holds
    monkeypatch.setenv("LOYALTY_WEBHOOK_SECRETS", json.dumps({"default": [OLD]}))
    monkeypatch.setenv("LOYALTY_WEBHOOK_SECRETS_DIR", str(tmp_path))
    settings = Settings()
    found = read_webhook_secrets(
        settings.webhook_secrets, settings.webhook_secrets_dir, {"default": 1, "pending": 1}
    )
    assert found == {"default": (OLD,), "pending": (NEW, OLD)}
    assert (
        Settings(**{k: v for k, v in settings.as_env().items() if k.startswith("LOYALTY_WEBHOOK")})
        is not None
    )


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("change-me", "starts with 'whsec_'"),
        ("whsec_not base64!", "not base64"),
        ("whsec_c2hvcnQ=", "5 bytes; a webhook secret is 24 to 64 bytes"),
    ],
)
def test_bad_secrets_are_named(secret: str, problem: str) -> None:
    with pytest.raises(WebhookSecretsError, match=problem) as info:
        read_webhook_secrets({"shop": [secret]}, None)
    assert "LOYALTY_WEBHOOK_SECRETS.shop[0]" in str(info.value)


def test_unknown_programs_and_duplicates_are_refused(tmp_path: Path) -> None:
    with pytest.raises(WebhookSecretsError, match="not configured"):
        read_webhook_secrets({"typo": [NEW]}, None, {"shop": PROGRAM})
    (tmp_path / "shop").write_text(NEW)
    with pytest.raises(WebhookSecretsError, match="both in"):
        read_webhook_secrets({"shop": [OLD]}, tmp_path)
    with pytest.raises(WebhookSecretsError, match="not a directory"):
        read_webhook_secrets(None, tmp_path / "missing")


def test_the_programs_file_may_not_hold_secrets() -> None:
    with pytest.raises(ProgramsConfigError, match="LOYALTY_WEBHOOK_SECRETS") as info:
        parse_programs({"programs": {"shop": {"webhook_secret": "s3cret"}}})
    assert "programs.shop.webhook_secret: webhook secrets are not read from the programs file" in str(
        info.value
    )


def test_the_shipped_programs_file_and_configmap_hold_no_secret() -> None:
    for path in (REPO_ROOT / "config" / "programs.yaml", REPO_ROOT / "deploy" / "k8s" / "configmap.yaml"):
        assert "webhook_secret" not in path.read_text() and "whsec_" not in path.read_text()


def test_the_image_drops_the_development_api_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Dockerfile's own step, run on a copy of config/: no read API key is left."""
    dockerfile = (REPO_ROOT / "deploy" / "docker" / "Dockerfile").read_text().replace("\\\n", "")
    match = re.search(r'^RUN python -c "(import yaml.*?)"', dockerfile, re.MULTILINE)
    assert match, "the Dockerfile's step that drops API keys"
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "programs.yaml").write_text((REPO_ROOT / "config" / "programs.yaml").read_text())
    assert "api_keys_sha256" in (tmp_path / "config" / "programs.yaml").read_text()
    monkeypatch.chdir(tmp_path)
    subprocess.run([sys.executable, "-c", match.group(1)], check=True)
    programs = load_programs(tmp_path / "config" / "programs.yaml")
    assert programs and all(not p.api_keys_sha256 for p in programs.values())
