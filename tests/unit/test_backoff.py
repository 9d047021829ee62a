"""Back-off with full jitter (services/adapters/postgres.py): every delay within
``[0, min(cap, initial * 2**n)]``, spread over that range, never past the cap; and readiness
(services/adapters/health.py) from what the process saw."""

from __future__ import annotations

import random

import pytest

from services.adapters import postgres
from services.adapters.health import Readiness
from services.adapters.postgres import Backoff, RetryScope, retry_scope, retrying
from services.config.settings import Settings


def settings(initial: float = 0.2, cap: float = 5.0) -> Settings:
    return Settings(retry_initial_seconds=initial, retry_max_seconds=cap)


async def test_delays_stay_within_the_doubling_ceiling_and_the_cap(monkeypatch):
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(postgres.asyncio, "sleep", sleep)
    backoff = Backoff(settings(), random.Random(7))
    for n in range(200):
        ceiling = backoff.ceiling()
        assert ceiling == min(5.0, 0.2 * 2**n)
        assert 0 <= backoff.delay <= ceiling
        await backoff.wait()
    assert slept and max(slept) <= 5.0
    assert backoff.ceiling() == 5.0


def test_delays_are_jittered_over_the_whole_range():
    draws = []
    one_second = settings(initial=1.0, cap=1.0)
    for seed in range(2000):
        backoff = Backoff(one_second, random.Random(seed))
        draws.append(backoff.delay)
    assert min(draws) < 0.05 and max(draws) > 0.95, "full jitter: from about 0 to the ceiling"
    assert 0.45 < sum(draws) / len(draws) < 0.55
    assert len(set(draws)) == len(draws), "clients failing together do not retry together"


async def test_a_retry_scope_gives_up_at_its_deadline_with_the_transient_error():
    calls = 0
    retried = 0

    async def attempt() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionRefusedError("database down")

    def on_retry(exc: BaseException) -> None:
        nonlocal retried
        retried += 1

    with pytest.raises(ConnectionRefusedError), retry_scope(RetryScope(0.3, on_retry)):
        await retrying("work", settings(initial=0.01, cap=0.05), attempt)
    assert calls >= 2 and retried == calls


def test_readiness_from_what_the_process_saw():
    now = [100.0]
    ready = Readiness(stuck_after=30, clock=lambda: now[0])
    assert ready.reasons() == ["not started", "database unreachable", "broker unreachable"]
    ready.started = True
    ready.saw("database", True)
    ready.saw("broker", True)
    assert ready()
    ready.retrying("checkouts")  # a transient failure: the database is in doubt
    assert ready.reasons() == ["database unreachable"]
    ready.saw("database", True)  # a probe answered: a batch retrying briefly is still ready
    assert ready()
    now[0] += 31
    assert ready.reasons() == ["checkouts stuck retrying"]
    ready.done("checkouts")
    assert ready()
    ready.retrying("refunds", unreachable=False)  # a deadlock says nothing of reachability
    assert ready()
    ready.done("refunds")
    ready.saw("broker", False)
    assert ready.reasons() == ["broker unreachable"]
