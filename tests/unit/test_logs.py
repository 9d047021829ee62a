"""Every line a process writes is JSON: its own structlog events and the libraries' stdlib
records (aiokafka, asyncpg, faststream, uvicorn) alike."""

from __future__ import annotations

import json
import subprocess
import sys

from services.config.settings import REPO_ROOT

SCRIPT = """
import logging, structlog
from services.config.logs import configure_logging
configure_logging("INFO", "json", "checkout-ingestion")
structlog.get_logger("services.x").info("own_event", event_id="e1")
logging.getLogger("aiokafka.consumer.group_coordinator").warning("Heartbeat failed for group %s", "g1")
logging.getLogger("asyncpg").error("connection lost")
logging.getLogger("faststream").warning("subscriber stopped")
logging.getLogger("uvicorn.error").info("Uvicorn running on http://127.0.0.1:8080")
logging.getLogger("aiokafka").info("below the libraries' level: not written")
try:
    1 / 0
except ZeroDivisionError:
    logging.getLogger("faststream").exception("handler failed")
"""


def test_library_log_lines_are_json() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=60
    )
    lines = [json.loads(line) for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    by_logger = {line.get("logger", "engine"): line for line in lines}
    assert set(by_logger) == {
        "engine",
        "aiokafka.consumer.group_coordinator",
        "asyncpg",
        "faststream",
        "uvicorn.error",
    }
    assert by_logger["engine"]["event"] == "own_event"
    coordinator = by_logger["aiokafka.consumer.group_coordinator"]
    assert coordinator["event"] == "Heartbeat failed for group g1" and coordinator["level"] == "warning"
    assert coordinator["service"] == "checkout-ingestion" and "timestamp" in coordinator
    assert by_logger["uvicorn.error"]["level"] == "info"
    assert "ZeroDivisionError" in by_logger["faststream"]["exception"]
