"""The courier simulator as a supervised process: when `foodflow status` lists it, what counts
as running (a live process that touches its heartbeat), and what `down` cleans up."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from foodflow.platform.config import Settings
from foodflow.tools import couriers, processes


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(FOODFLOW_STATE_DIR=tmp_path)


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_status_lists_the_simulator_only_while_it_is_meant_to_run(settings: Settings) -> None:
    names = [s.name for s in processes.status(settings)]
    assert processes.SIMULATOR not in names  # never started (or COURIER_SIMULATOR=false)

    sim = processes.SimulatorProcess(settings)
    sim.supervisor_pidfile.parent.mkdir(parents=True)
    sim.supervisor_pidfile.write_text(str(dead_pid()))  # started, then its supervisor died
    listed = {s.name: s for s in processes.status(settings)}
    assert not listed[processes.SIMULATOR].running  # shown down: it should run and does not


def test_running_means_a_live_process_with_a_fresh_heartbeat(settings: Settings) -> None:
    sim = processes.SimulatorProcess(settings)
    sim.pidfile.parent.mkdir(parents=True)
    sim.pidfile.write_text(str(os.getpid()))
    assert not sim.is_running()  # no heartbeat yet
    sim.heartbeat.touch()
    assert sim.is_running()
    stale = time.time() - couriers.HEARTBEAT_STALE_SECONDS - 1
    os.utime(sim.heartbeat, (stale, stale))
    assert not sim.is_running()  # alive but stuck
    sim.pidfile.write_text(str(dead_pid()))
    sim.heartbeat.touch()
    assert not sim.is_running()


def test_down_forgets_a_simulator_whose_process_is_gone(settings: Settings) -> None:
    sim = processes.SimulatorProcess(settings)
    sim.supervisor_pidfile.parent.mkdir(parents=True)
    for path in (sim.supervisor_pidfile, sim.pidfile):
        path.write_text(str(dead_pid()))
    sim.heartbeat.touch()
    reported: list[processes.ServiceState] = []

    processes.down(settings, report=reported.append)

    assert reported[0].name == processes.SIMULATOR and not reported[0].running
    assert not any(p.exists() for p in (sim.pidfile, sim.supervisor_pidfile, sim.heartbeat))
    assert processes.SIMULATOR not in [s.name for s in processes.status(settings)]
