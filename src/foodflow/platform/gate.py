"""Dependency gates: a circuit breaker per dependency whose callers wait out a short outage.

A restart of inventory, pricing, payment or PostgreSQL takes seconds; failing every order that
meets it (the clients' own retries last ~2 s) turned a 9 s outage into 208 FAILED orders. A
gate makes the caller wait instead, up to a grace (`DEPENDENCY_GRACE_SECONDS`) measured from
the outage's first failure:

- **closed**: calls go through. `open_after` unavailable calls in a row open it; a call that
  meets unavailability while it is still closed backs off briefly and tries again.
- **open**: no call goes out. Callers wait, woken when the gate closes; every `probe_every`
  seconds one of them is let through as the trial (**half-open**): success closes the gate and
  wakes everyone, failure opens it again. Consumers pause while a gate they need is open.
- **past the grace**: a call raises `DependencyDown` (a `ServiceUnavailable`) at once, so the
  step fails with its reason as it would without a gate. Trials go on; the first success
  closes the gate and ends the outage.

Only an outage of the dependency counts: any other foodflow error (a 4xx `RequestRefused`) or
an `ItemUnavailable` (one item of a batch the service answered, such as a card the provider
timed out on) proves the dependency answered, so it closes the gate like a success and is
raised at once. Other exceptions (bugs, cancellation) pass through and count for nothing.

Why not a library: purgatory, aiobreaker and circuitbreaker (PyPI) open, half-open and close,
but a call meeting an open breaker fails at once; none lets callers wait to be woken by the
close, none measures the outage from its first failure for a grace, and none pauses a
caller's own deadline (`PausableTimeout`) while it waits. Those three are this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextvars import ContextVar
from enum import StrEnum
from typing import Protocol, Self, TypeVar

from prometheus_client import Gauge, Histogram

from foodflow.platform.errors import FoodflowError, ItemUnavailable, ServiceUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

GATE_STATE = Gauge(
    "foodflow_dependency_gate_state",
    "1 for the state each dependency gate is in (closed, open, half_open), 0 for the others",
    ["dependency", "state"],
)
OUTAGE_SECONDS = Histogram(
    "foodflow_dependency_outage_seconds",
    "Length of each dependency outage that opened a gate, observed when the gate closes",
    ["dependency"],
    buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600),
)


class GateState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class DependencyDown(ServiceUnavailable):
    """The dependency has been unavailable for longer than the grace."""


class Pausable(Protocol):
    """A deadline that stops running while its owner waits on a gate (nested pauses count)."""

    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def close(self) -> None:
        """Its block has ended: nothing is left to time."""


_DEADLINE: ContextVar[Pausable | None] = ContextVar("foodflow_gate_deadline", default=None)


@contextlib.contextmanager
def paused_while_waiting(deadline: Pausable) -> Iterator[None]:
    """Within this block (and the tasks it starts), time spent waiting on a gate is not
    counted against `deadline`."""
    token = _DEADLINE.set(deadline)
    try:
        yield
    finally:
        _DEADLINE.reset(token)
        deadline.close()


@contextlib.contextmanager
def not_counted() -> Iterator[None]:
    """Within this block, the caller's deadline (`paused_while_waiting`) does not run: for a
    wait on a dependency that bounds it itself, as Kafka's producer does with its delivery
    timeout while a partition waits for a new leader."""
    waiting = _Waiting()
    with waiting:
        waiting.begin()
        yield


class PausableTimeout:
    """An `asyncio.Timeout` whose clock stops while any task of its owner waits on a gate.

    Several tasks of one order (stock and price are asked at once) may wait together: the
    clock restarts when the last of them stops waiting. A pause costs two counter updates, not
    a timer moved each way (the saga pauses around every announcement, six times an order):
    the time paused is added up, and only when the deadline comes is it pushed out by that
    much. The timeout itself is then due never; this object's own timer expires it.
    """

    def __init__(self, timeout: asyncio.Timeout) -> None:
        self._timeout = timeout
        self._loop = asyncio.get_running_loop()
        self._waiting = 0
        self._paused_at: float | None = None
        self._paused_for = 0.0  # paused time not yet added to the deadline
        self._deadline = None if timeout.expired() else timeout.when()
        self._timer: asyncio.TimerHandle | None = None
        if self._deadline is not None:
            self._reschedule(None)
            self._timer = self._loop.call_at(self._deadline, self._due)

    def pause(self) -> None:
        self._waiting += 1
        if self._waiting == 1:
            self._paused_at = self._loop.time()

    def resume(self) -> None:
        self._waiting -= 1
        if self._waiting > 0 or self._paused_at is None:
            return
        self._paused_for += self._loop.time() - self._paused_at
        self._paused_at = None
        if self._timer is None and self._deadline is not None:
            self._due()  # the deadline came while paused: it is looked at again now

    def close(self) -> None:
        """The timed block has ended: nothing is left to time."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._deadline = None

    def _due(self) -> None:
        self._timer = None
        if self._waiting or self._deadline is None:
            return  # paused: the last resume looks again
        self._deadline += self._paused_for
        self._paused_for = 0.0
        if self._deadline <= self._loop.time():
            self._deadline = None
            self._reschedule(self._loop.time())  # expires now
        else:
            self._timer = self._loop.call_at(self._deadline, self._due)

    def _reschedule(self, when: float | None) -> None:
        # RuntimeError: the timeout's block has ended already; nothing is left to time.
        with contextlib.suppress(RuntimeError):
            self._timeout.reschedule(when)


class _Waiting:
    """One call's waiting: from its first wait to its end, the caller's deadline is paused."""

    def __init__(self) -> None:
        self._paused: Pausable | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._paused is not None:
            self._paused.resume()

    def begin(self) -> None:
        if self._paused is None and (deadline := _DEADLINE.get()) is not None:
            deadline.pause()
            self._paused = deadline


class DependencyGate:
    """The circuit breaker of one dependency (see the module docstring)."""

    def __init__(
        self,
        name: str,
        grace: float,
        *,
        open_after: int = 3,
        probe_every: float = 1.0,
        retry_delay: float = 0.5,
    ) -> None:
        self.name = name
        self.grace = grace
        self.open_after = open_after
        self.probe_every = probe_every
        self.retry_delay = retry_delay
        self.state = GateState.CLOSED
        self._failures = 0
        self._outage_began: float | None = None
        self._probe_at = 0.0
        self._last_error = ""
        self._waiting_calls = 0
        self._changed = asyncio.Event()
        self._show_state()

    @property
    def outage_seconds(self) -> float:
        """How long the dependency has been failing (0 when it is not)."""
        began = self._outage_began
        return 0.0 if began is None else time.monotonic() - began

    @property
    def expired(self) -> bool:
        """True once the outage has lasted longer than the grace."""
        return self._outage_began is not None and self.outage_seconds >= self.grace

    @property
    def holding(self) -> bool:
        """True while work needing this dependency should not start: the gate is not closed,
        the outage is within the grace, and a trial is out, not due yet, or due with callers
        waiting to make it (with none, a new caller is let in to make it)."""
        if self.expired or self.state is GateState.CLOSED:
            return False
        if self.state is GateState.HALF_OPEN or self._waiting_calls:
            return True
        return time.monotonic() < self._probe_at

    async def call(self, step: Callable[[], Awaitable[T]]) -> T:
        """Await `step()` (idempotent), waiting out an outage within the grace; past it, the
        last unavailability is raised as `DependencyDown`."""
        with _Waiting() as waiting:
            while True:
                trial = await self._admit(waiting)
                try:
                    result = await step()
                except ItemUnavailable:
                    self._answered()
                    raise
                except ServiceUnavailable as exc:
                    self._failed(exc, trial)
                    if self.expired:
                        raise self._down() from exc
                    waiting.begin()
                    if self.state is GateState.CLOSED:
                        await asyncio.sleep(random.uniform(0, self.retry_delay))
                    continue
                except FoodflowError:  # an answer all the same (a 4xx: RequestRefused)
                    self._answered()
                    raise
                except BaseException:
                    if trial:
                        self._end_trial()
                    raise
                self._answered()
                return result

    async def wait_passable(self) -> None:
        """Return once this gate is not `holding` (closed, a trial due, or past the grace)."""
        while self.holding:
            await self._wait_change()

    async def _admit(self, waiting: _Waiting) -> bool:
        """Wait until a call may go out; True when it goes out as the half-open trial."""
        while True:
            if self.state is GateState.CLOSED:
                return False
            if self.state is GateState.OPEN and time.monotonic() >= self._probe_at:
                self._set_state(GateState.HALF_OPEN)
                return True
            if self.expired:
                raise self._down()
            waiting.begin()
            self._waiting_calls += 1
            try:
                await self._wait_change()
            finally:
                self._waiting_calls -= 1

    async def _wait_change(self) -> None:
        """Sleep until the state changes, a trial is due or the grace runs out."""
        now = time.monotonic()
        began = self._outage_began if self._outage_began is not None else now
        until = began + self.grace
        if self.state is GateState.OPEN:
            until = min(until, self._probe_at)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout=max(0.0, until - now) + 0.001)

    def _failed(self, exc: ServiceUnavailable, trial: bool) -> None:
        now = time.monotonic()
        self._failures += 1
        self._last_error = str(exc)
        if self._outage_began is None:
            self._outage_began = now
        was_closed = self.state is GateState.CLOSED
        if (trial and self.state is GateState.HALF_OPEN) or (
            was_closed and self._failures >= self.open_after
        ):
            self._probe_at = now + self.probe_every
            self._set_state(GateState.OPEN)
            if was_closed:
                log.warning(
                    "Dependency %s unavailable: gate opened after %d failed calls in %.1fs "
                    "(grace %.0fs): %s",
                    self.name,
                    self._failures,
                    now - self._outage_began,
                    self.grace,
                    self._last_error,
                )

    def _answered(self) -> None:
        outage = self.outage_seconds
        self._failures = 0
        self._outage_began = None
        if self.state is GateState.CLOSED:
            return
        self._set_state(GateState.CLOSED)
        OUTAGE_SECONDS.labels(self.name).observe(outage)
        log.warning(
            "Dependency %s is back: gate closed after an outage of %.1fs", self.name, outage
        )

    def _end_trial(self) -> None:
        """The trial ended without an answer (cancelled): let the next caller try at once."""
        if self.state is GateState.HALF_OPEN:
            self._probe_at = time.monotonic()
            self._set_state(GateState.OPEN)

    def _down(self) -> DependencyDown:
        return DependencyDown(
            f"{self.name} unavailable for {self.outage_seconds:.0f}s "
            f"(grace {self.grace:.0f}s): {self._last_error}"
        )

    def _set_state(self, state: GateState) -> None:
        self.state = state
        self._show_state()
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _show_state(self) -> None:
        for state in GateState:
            GATE_STATE.labels(self.name, state.value).set(1 if state is self.state else 0)


class DependencyGates:
    """The gates of one process, by dependency name."""

    def __init__(self, gates: Mapping[str, DependencyGate]) -> None:
        self._gates = dict(gates)

    @classmethod
    def named(cls, names: list[str], grace: float) -> DependencyGates:
        """One gate per name, all with the same grace."""
        return cls({name: DependencyGate(name, grace) for name in names})

    def __getitem__(self, name: str) -> DependencyGate:
        return self._gates[name]

    def closed(self) -> dict[str, bool]:
        """Each gate's name and whether it is closed (for `/ready`)."""
        return {name: gate.state is GateState.CLOSED for name, gate in self._gates.items()}

    async def wait_passable(self) -> None:
        """Return once no gate is holding (see `DependencyGate.holding`)."""
        while any(gate.holding for gate in self._gates.values()):
            for gate in self._gates.values():
                await gate.wait_passable()
