"""The consumer's own batching: at most one batch per linger under a steady trickle, the first
message after a quiet spell at once, and a full batch never held back."""

from __future__ import annotations

import time
from typing import Any

from foodflow.platform.kafka.consumer import _consume_available


class Trickle:
    """A consumer double: `ready` messages fetched already, then one more every `every` s."""

    def __init__(self, ready: int, every: float) -> None:
        self.ready = [f"m{i}" for i in range(ready)]
        self.every = every
        self.next = ready
        self.waits: list[float] = []
        self.ready_after_poll = 0  # messages fetched together with the one poll() returns

    def _arrive(self, wait: float) -> None:
        while wait >= self.every:
            time.sleep(self.every)
            wait -= self.every
            self.ready.append(f"m{self.next}")
            self.next += 1
        time.sleep(max(0.0, wait))

    def consume(self, most: int, timeout: float) -> list[Any]:
        self.waits.append(timeout)
        if timeout > 0 and len(self.ready) < most:
            self._arrive(timeout)
        taken, self.ready = self.ready[:most], self.ready[most:]
        return taken

    def poll(self, timeout: float) -> Any:
        self._arrive(min(timeout, self.every))
        self.ready += [f"x{i}" for i in range(self.ready_after_poll)]
        return self.ready.pop(0) if self.ready else None


def test_a_trickle_is_gathered_until_the_linger_is_over() -> None:
    trickle = Trickle(ready=1, every=0.01)
    batch = _consume_available(trickle, 100, 1.0, time.monotonic() + 0.05)  # type: ignore[arg-type]
    assert len(batch) >= 3  # the one there, and those of the next 50 ms
    assert 0 < trickle.waits[-1] <= 0.05  # waited out the rest of the linger


def test_the_first_message_after_a_quiet_spell_goes_at_once() -> None:
    trickle = Trickle(ready=1, every=0.01)
    batch = _consume_available(trickle, 100, 1.0, time.monotonic() - 1.0)  # type: ignore[arg-type]
    assert [str(m) for m in batch] == ["m0"]
    assert max(trickle.waits) == 0  # no wait for more


def test_what_is_fetched_already_comes_with_the_first_message() -> None:
    """A quiet spell ends with several messages fetched at once (a producer's batch): they
    travel together, not the first alone (an integration test of outage retries saw it)."""
    trickle = Trickle(ready=0, every=0.01)
    trickle.ready_after_poll = 5
    batch = _consume_available(trickle, 100, 1.0, time.monotonic() - 1.0)  # type: ignore[arg-type]
    assert len(batch) == 6
    assert max(trickle.waits) == 0


def test_a_full_batch_is_not_held_back() -> None:
    trickle = Trickle(ready=10, every=0.01)
    batch = _consume_available(trickle, 10, 1.0, time.monotonic() + 5.0)  # type: ignore[arg-type]
    assert len(batch) == 10
    assert max(trickle.waits) == 0  # no wait for more
