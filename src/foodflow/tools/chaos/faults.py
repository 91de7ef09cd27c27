"""The faults chaos injects: SIGKILL of a service, restart of Kafka, Redis or PostgreSQL."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

from foodflow.platform.config import Settings
from foodflow.tools import processes
from foodflow.tools.infra import manager, process


@dataclass(frozen=True)
class Fault:
    at: float  # seconds after the start of the run
    kind: str  # "kill" or "restart"
    target: str

    def describe(self) -> str:
        verb = "SIGKILL + restart" if self.kind == "kill" else "restart"
        return f"{verb} {self.target}"


def kill_service(settings: Settings, name: str, env: dict[str, str] | None) -> None:
    """SIGKILL the service (no chance to clean up), then wait until its supervisor has
    restarted it and it is ready (started here only if it runs unsupervised)."""
    svc = processes.ServiceProcess(name, settings, env)
    pid = process.read_pid(svc.pidfile)
    if process.pid_alive(pid):
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        while process.pid_alive(pid):
            time.sleep(0.02)
    if svc.supervised():
        svc.await_restart(pid, timeout=90)
    else:
        svc.start(timeout=90)


def restart_server(settings: Settings, name: str) -> None:
    """A clean stop and start of one infrastructure server."""
    server = next(s for s in manager.servers(settings) if s.name == name)
    server.stop()
    server.start()


def apply(settings: Settings, fault: Fault, env: dict[str, str] | None) -> None:
    if fault.kind == "kill":
        kill_service(settings, fault.target, env)
    else:
        restart_server(settings, fault.target)
