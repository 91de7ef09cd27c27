"""Dependency gates: breaker states, waiting within the grace, and the paused order deadline.

Short real times; every assertion on time is a lower bound the monotonic clock guarantees, or
an upper bound many times the expected value, so a loaded machine cannot fail them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY

from foodflow.platform.errors import ItemUnavailable, ServiceUnavailable
from foodflow.platform.gate import (
    DependencyDown,
    DependencyGate,
    DependencyGates,
    GateState,
    PausableTimeout,
    paused_while_waiting,
)
from foodflow.platform.http.client import RequestRefused
from foodflow.platform.http.probes import gate_check, install_probes


class Dependency:
    """A called service: up or down, counting the calls that reach it."""

    def __init__(self, up: bool = True) -> None:
        self.up = up
        self.calls = 0
        self.concurrent = 0
        self.most_concurrent = 0

    async def __call__(self) -> str:
        self.calls += 1
        self.concurrent += 1
        self.most_concurrent = max(self.most_concurrent, self.concurrent)
        try:
            await asyncio.sleep(0.005)
            if not self.up:
                raise ServiceUnavailable("connection refused")
            return "answer"
        finally:
            self.concurrent -= 1


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(5):
        while True:
            if condition():
                return
            await asyncio.sleep(0.001)


def gate(grace: float = 10.0, probe_every: float = 0.05) -> DependencyGate:
    return DependencyGate(
        "inventory", grace, open_after=3, probe_every=probe_every, retry_delay=0.01
    )


async def open_it(g: DependencyGate) -> None:
    """Open the gate: `open_after` callers fail at once, then give up waiting."""
    down = Dependency(up=False)
    callers = [asyncio.create_task(g.call(down)) for _ in range(g.open_after)]
    await until(lambda: g.state is not GateState.CLOSED)
    for caller in callers:
        caller.cancel()
    await asyncio.gather(*callers, return_exceptions=True)
    assert g.state is GateState.OPEN


async def test_closed_gate_passes_calls_and_answers() -> None:
    g, dependency = gate(), Dependency()
    assert await g.call(dependency) == "answer"
    assert g.state is GateState.CLOSED and dependency.calls == 1 and not g.holding


async def test_consecutive_failures_open_the_gate_and_one_success_closes_it() -> None:
    g, dependency = gate(), Dependency(up=False)
    caller = asyncio.create_task(g.call(dependency))
    await until(lambda: g.state is not GateState.CLOSED)
    # Open after three failed tries; while open, calls go out one at a time (the trials).
    assert dependency.calls == 3 and g.holding and g.outage_seconds > 0
    await asyncio.sleep(0.2)
    assert dependency.most_concurrent == 1 and not caller.done()
    dependency.up = True
    assert await asyncio.wait_for(caller, 5) == "answer"
    assert g.state is GateState.CLOSED and g.outage_seconds == 0 and not g.holding


async def test_a_failed_trial_opens_the_gate_again() -> None:
    g, dependency = gate(probe_every=0.05), Dependency(up=False)
    await open_it(g)
    caller = asyncio.create_task(g.call(dependency))
    await until(lambda: dependency.calls > 0)
    states = [g.state]  # the trial is out
    await until(lambda: g.state is not GateState.HALF_OPEN)
    states.append(g.state)
    assert states == [GateState.HALF_OPEN, GateState.OPEN] and dependency.calls == 1
    caller.cancel()


async def test_waiters_are_woken_by_the_close_and_each_calls_once() -> None:
    g, dependency = gate(probe_every=0.1), Dependency(up=False)
    await open_it(g)
    dependency.up = True
    waiters = [asyncio.create_task(g.call(dependency)) for _ in range(20)]
    await asyncio.sleep(0)
    assert dependency.calls == 0  # nobody calls before the trial is due
    assert await asyncio.wait_for(asyncio.gather(*waiters), 5) == ["answer"] * 20
    # One trial, then everyone at once when it closed the gate: 20 calls, no retries.
    assert dependency.calls == 20 and g.state is GateState.CLOSED


async def test_past_the_grace_the_step_fails_with_the_last_error() -> None:
    g, dependency = gate(grace=0.3), Dependency(up=False)
    started = time.monotonic()
    with pytest.raises(DependencyDown, match=r"inventory unavailable .*grace.*connection refused"):
        await g.call(dependency)
    assert time.monotonic() - started >= 0.3
    # Past the grace, calls fail at once (but for the trials) and nothing holds consumers.
    assert not g.holding
    await g.wait_passable()


async def test_past_the_grace_trials_go_on_and_close_the_gate() -> None:
    g, dependency = gate(grace=0.1, probe_every=0.05), Dependency(up=False)
    with pytest.raises(DependencyDown):
        await g.call(dependency)
    dependency.up = True
    await asyncio.sleep(0.1)  # a trial is due
    assert await g.call(dependency) == "answer"
    assert g.state is GateState.CLOSED


async def test_the_grace_runs_from_the_first_failure_not_from_each_call() -> None:
    g = gate(grace=0.3, probe_every=10.0)
    await open_it(g)
    await asyncio.sleep(0.2)
    started = time.monotonic()
    with pytest.raises(DependencyDown):
        await g.call(Dependency(up=False))
    assert time.monotonic() - started < 0.3  # what was left of the grace, not a new one


@pytest.mark.parametrize(
    "answer",
    [ItemUnavailable("payment /authorise_batch: item answered 504"), RequestRefused("x", 422, "")],
)
async def test_an_answer_that_is_an_error_is_no_outage(answer: Exception) -> None:
    g = gate()

    async def refuse() -> str:
        raise answer

    for _ in range(5):
        with pytest.raises(type(answer)):
            await g.call(refuse)
    assert g.state is GateState.CLOSED and g.outage_seconds == 0


async def test_a_cancelled_trial_lets_the_next_caller_try() -> None:
    g = gate(probe_every=0.01)
    await open_it(g)
    await asyncio.sleep(0.02)
    hanging = asyncio.Event()

    async def hang() -> str:
        hanging.set()
        await asyncio.sleep(60)
        return "never"

    trial = asyncio.create_task(g.call(hang))
    await hanging.wait()
    trial.cancel()
    with pytest.raises(asyncio.CancelledError):
        await trial
    assert g.state is GateState.OPEN
    assert await asyncio.wait_for(g.call(Dependency()), 5) == "answer"


async def test_gates_hold_consumers_while_one_is_open_within_the_grace() -> None:
    inventory, pricing = gate(probe_every=10.0), DependencyGate("pricing", 10.0)
    gates = DependencyGates({"inventory": inventory, "pricing": pricing})
    await gates.wait_passable()  # all closed: returns at once
    answered = asyncio.Event()

    async def slow_answer() -> str:
        await answered.wait()
        return "late answer"

    already_out = asyncio.create_task(inventory.call(slow_answer))
    await open_it(inventory)
    assert gates.closed() == {"inventory": False, "pricing": True}
    consumer = asyncio.create_task(gates.wait_passable())
    await asyncio.sleep(0.05)
    assert not consumer.done()
    # A call that went out before the gate opened answers: the dependency is back.
    answered.set()
    assert await already_out == "late answer"
    await asyncio.wait_for(consumer, 5)
    assert gates.closed() == {"inventory": True, "pricing": True}


async def test_an_order_deadline_does_not_run_while_it_waits_on_a_gate() -> None:
    g, dependency = gate(probe_every=0.05), Dependency(up=False)
    await open_it(g)

    async def bring_back() -> None:
        await asyncio.sleep(0.5)
        dependency.up = True

    async def order() -> str:
        async with asyncio.timeout(0.2) as deadline:
            with paused_while_waiting(PausableTimeout(deadline)):
                # Two steps at once, both waiting: the deadline restarts after the last.
                first, second = await asyncio.gather(g.call(dependency), g.call(dependency))
                await asyncio.sleep(0.05)  # within what was left of the 0.2 s
                return first + second

    restore = asyncio.create_task(bring_back())
    assert await order() == "answeranswer"
    await restore


async def test_the_deadline_still_fires_for_time_not_spent_waiting() -> None:
    g = gate()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.1) as deadline:
            with paused_while_waiting(PausableTimeout(deadline)):
                assert await g.call(Dependency()) == "answer"
                await asyncio.sleep(1)


async def test_a_deadline_that_comes_during_a_pause_counts_what_was_left_after_it() -> None:
    """0.1 s of running time: 0.05 before a 0.2 s pause (the deadline passes within it), the
    other 0.05 after it; the block ends after about 0.3 s, not at 0.1 nor at the resume."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.1) as deadline:
            pausable = PausableTimeout(deadline)
            with paused_while_waiting(pausable):
                await asyncio.sleep(0.05)
                pausable.pause()
                await asyncio.sleep(0.2)
                pausable.resume()
                resumed = loop.time()
                await asyncio.sleep(1)
    ended = loop.time()
    assert 0.04 <= ended - resumed <= 0.09
    assert 0.29 <= ended - started <= 0.4


async def test_consumers_are_let_in_for_a_trial_only_when_no_caller_waits_to_make_it() -> None:
    g = gate(probe_every=0.05)
    await open_it(g)  # its callers gave up: nobody waits
    assert g.holding
    await asyncio.sleep(0.06)
    assert not g.holding  # a trial is due and a new caller must make it
    waiter = asyncio.create_task(g.call(Dependency(up=False)))
    await until(lambda: g.state is GateState.OPEN and not waiter.done() and g.holding)
    await asyncio.sleep(0.1)  # trials come due while the caller waits: it makes them
    assert g.holding
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)


async def test_ready_is_unavailable_while_a_gate_is_open_and_the_state_is_a_metric() -> None:
    g = gate(probe_every=0.05)
    app = FastAPI()
    install_probes(app, "unit_gates", {"inventory": gate_check(g)})

    def state_metric(state: str) -> float | None:
        return REGISTRY.get_sample_value(
            "foodflow_dependency_gate_state", {"dependency": "inventory", "state": state}
        )

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://unit") as client:
        assert (await client.get("/ready")).status_code == 200
        await open_it(g)
        answer = await client.get("/ready")
        assert answer.status_code == 503
        assert answer.json() == {"status": "unavailable", "checks": {"inventory": False}}
        assert (state_metric("open"), state_metric("closed")) == (1.0, 0.0)
        assert await g.call(Dependency()) == "answer"  # the trial closes it
        assert (await client.get("/ready")).status_code == 200
        assert (state_metric("open"), state_metric("closed")) == (0.0, 1.0)
