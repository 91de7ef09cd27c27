"""The supervisor's restart decisions: backoff, giving up on a crash loop, clean exits."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from foodflow.tools.supervisor import RestartPolicy, RestartRecord, Supervisor, is_failure


def test_backoff_doubles_from_one_second_to_the_cap_after_an_immediate_first_restart() -> None:
    policy = RestartPolicy()
    delays = [policy.after_failure(ran_seconds=2.0) for _ in range(7)]
    assert delays == [0.1, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0]


def test_a_crash_loop_is_given_up_after_the_set_number_of_quick_failures() -> None:
    policy = RestartPolicy(give_up_after=3)
    assert policy.after_failure(1.0) is not None
    assert policy.after_failure(1.0) is not None
    assert policy.after_failure(1.0) is None


def test_a_run_that_stayed_up_starts_the_count_again() -> None:
    policy = RestartPolicy(give_up_after=3, stable_after=30.0)
    policy.after_failure(1.0)
    policy.after_failure(1.0)
    assert policy.after_failure(31.0) == policy.first  # not the third quick failure
    assert policy.after_failure(1.0) == policy.base


def test_failures_are_what_systemd_restart_on_failure_restarts() -> None:
    assert not is_failure(0)
    assert is_failure(1)
    assert is_failure(-signal.SIGKILL)
    assert is_failure(-signal.SIGSEGV)
    # uvicorn re-raises the SIGTERM it drained on: a stopped service, not a crash.
    assert not is_failure(-signal.SIGTERM)
    assert not is_failure(-signal.SIGINT)


def test_restart_record_round_trips_and_a_missing_or_torn_one_reads_as_none(
    tmp_path: Path,
) -> None:
    path = tmp_path / "svc.restarts.json"
    assert RestartRecord.load(path) == RestartRecord()
    RestartRecord(3, gave_up=True, last_exit="exit status 1").save(path)
    assert RestartRecord.load(path) == RestartRecord(3, True, "exit status 1")
    path.write_text('{"restarts": ')
    assert RestartRecord.load(path) == RestartRecord()


@pytest.fixture
def own_signal_handlers() -> Iterator[None]:
    """Supervisor.run installs SIGTERM/SIGINT handlers: give pytest its own back."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def supervisor(tmp_path: Path, service: Callable[[], None], policy: RestartPolicy) -> Supervisor:
    return Supervisor(
        "svc",
        service,
        pidfile=tmp_path / "svc.pid",
        record=tmp_path / "svc.restarts.json",
        port_free=lambda: True,
        policy=policy,
    )


@pytest.mark.usefixtures("own_signal_handlers")
def test_a_service_that_keeps_crashing_is_restarted_then_given_up(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()

    def crash() -> None:
        (runs / str(os.getpid())).touch()
        os._exit(3)

    sup = supervisor(tmp_path, crash, RestartPolicy(first=0.0, base=0.01, give_up_after=3))
    assert sup.run() == 1
    assert len(list(runs.iterdir())) == 3  # three processes, each pid in the pidfile in turn
    assert RestartRecord.load(tmp_path / "svc.restarts.json") == RestartRecord(
        2, gave_up=True, last_exit="exit status 3"
    )


@pytest.mark.usefixtures("own_signal_handlers")
def test_a_service_stopped_by_sigterm_is_not_restarted(tmp_path: Path) -> None:
    def stopped() -> None:
        os.kill(os.getpid(), signal.SIGTERM)

    sup = supervisor(tmp_path, stopped, RestartPolicy(first=0.0))
    assert sup.run() == 0
    assert RestartRecord.load(tmp_path / "svc.restarts.json") == RestartRecord()
