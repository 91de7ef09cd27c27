"""retry_async and backoff_delay: attempt counts, which errors are retried, the schedule."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException

from foodflow.platform.kafka.consumer import _retriable
from foodflow.platform.retry import backoff_delay, retry_async


class Flaky:
    """Fails with `error` the first `failures` calls, then answers "ok"."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or ConnectionError("not yet")
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "ok"


async def test_retries_until_success_within_the_attempts() -> None:
    call = Flaky(failures=2)
    seen: list[tuple[int, float]] = []
    result = await retry_async(
        call,
        retry_on=(ConnectionError,),
        attempts=3,
        base_delay=0.001,
        on_retry=lambda attempt, exc, delay: seen.append((attempt, delay)),
    )
    assert (result, call.calls) == ("ok", 3)
    assert [attempt for attempt, _ in seen] == [1, 2]
    assert all(0 <= delay <= 0.002 for _, delay in seen)


async def test_the_last_attempts_error_is_raised() -> None:
    call = Flaky(failures=5)
    with pytest.raises(ConnectionError):
        await retry_async(call, retry_on=(ConnectionError,), attempts=3, base_delay=0.001)
    assert call.calls == 3


async def test_attempts_none_retries_until_it_succeeds() -> None:
    call = Flaky(failures=20)
    result = await retry_async(
        call, retry_on=(ConnectionError,), attempts=None, base_delay=0.0001, max_delay=0.0001
    )
    assert (result, call.calls) == ("ok", 21)


async def test_other_errors_are_raised_at_once() -> None:
    call = Flaky(failures=1, error=ValueError("bad request"))
    with pytest.raises(ValueError):
        await retry_async(call, retry_on=(ConnectionError,), attempts=5, base_delay=0.001)
    assert call.calls == 1


async def test_retry_if_decides_which_errors_of_the_types_are_retried() -> None:
    permanent = Flaky(failures=1, error=ConnectionError("permanent"))
    with pytest.raises(ConnectionError):
        await retry_async(
            permanent,
            retry_on=(ConnectionError,),
            retry_if=lambda exc: "permanent" not in str(exc),
            attempts=5,
            base_delay=0.001,
        )
    assert permanent.calls == 1
    transient = Flaky(failures=2)
    assert await retry_async(
        transient,
        retry_on=(ConnectionError,),
        retry_if=lambda exc: "permanent" not in str(exc),
        attempts=5,
        base_delay=0.001,
    )
    assert transient.calls == 3


async def test_attempts_must_be_positive() -> None:
    with pytest.raises(ValueError):
        await retry_async(Flaky(0), retry_on=(ConnectionError,), attempts=0)


def test_backoff_doubles_up_to_the_cap_with_full_jitter() -> None:
    for attempt, ceiling in ((1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (10, 4.0), (100, 4.0)):
        delays = [backoff_delay(attempt, 0.5, 4.0) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling / 2


def test_the_consumer_retries_only_commits_kafka_calls_retriable() -> None:
    retriable = KafkaException(KafkaError(KafkaError.REQUEST_TIMED_OUT, retriable=True))
    fatal = KafkaException(KafkaError(KafkaError.UNKNOWN_MEMBER_ID, retriable=False))
    assert _retriable(retriable)
    assert not _retriable(fatal)
    assert not _retriable(KafkaException())
