"""Starts foodflow's own services as background processes, health-checks them, stops them."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from foodflow.config import Settings
from foodflow.errors import InfraError
from foodflow.infra import process

# Start order: what the order manager calls comes up before it.
SERVICES = (
    "inventory_service",
    "pricing_service",
    "payment_service",
    "delivery_service",
    "order_writer",
    "order_manager",
    "gateway",
)
PORT_SETTING = {
    "inventory_service": "inventory_port",
    "pricing_service": "pricing_port",
    "payment_service": "payment_port",
    "delivery_service": "delivery_port",
    "order_writer": "order_writer_port",
    "order_manager": "order_manager_port",
    "gateway": "gateway_port",
}


@dataclass(frozen=True)
class ServiceState:
    name: str
    url: str
    running: bool
    log: Path
    changed: bool = False


class ServiceProcess:
    def __init__(self, name: str, settings: Settings, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.settings = settings
        self.env = env or {}
        self.port: int = getattr(settings, PORT_SETTING[name])
        home = settings.state_dir / "services"
        self.pidfile = home / f"{name}.pid"
        self.log = home / "logs" / f"{name}.log"

    @property
    def url(self) -> str:
        return self.settings.service_url(self.port)

    def healthy(self, path: str = "/health") -> bool:
        try:
            return httpx.get(self.url + path, timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def is_running(self) -> bool:
        return process.pid_alive(process.read_pid(self.pidfile)) and self.healthy()

    def start(self, timeout: float = 60.0) -> bool:
        if self.is_running():
            return False
        if process.port_open(self.settings.service_host, self.port):
            raise InfraError(
                self.name, f"port {self.port} is taken by a process foodflow did not start", ""
            )
        self.pidfile.parent.mkdir(parents=True, exist_ok=True)
        pid = process.spawn(
            [sys.executable, "-m", f"foodflow.{self.name}"],
            log=self.log,
            pidfile=self.pidfile,
            env={**self.env, "PYTHONUNBUFFERED": "1"},
        )
        process.wait_until(
            lambda: self.healthy("/ready"),
            server=self.name,
            what="GET /ready",
            timeout=timeout,
            log=self.log,
            alive=lambda: process.pid_alive(pid),
        )
        return True

    def stop(self, timeout: float = 30.0) -> bool:
        pid = process.read_pid(self.pidfile)
        if not process.pid_alive(pid):
            self.pidfile.unlink(missing_ok=True)
            return False
        process.terminate(pid, timeout=timeout)  # SIGTERM: the service drains and commits
        self.pidfile.unlink(missing_ok=True)
        return True


def all_services(settings: Settings, env: dict[str, str] | None = None) -> list[ServiceProcess]:
    return [ServiceProcess(name, settings, env) for name in SERVICES]


def up(
    settings: Settings,
    report: Callable[[ServiceState], None] = lambda s: None,
    env: dict[str, str] | None = None,
) -> list[ServiceState]:
    states = []
    for svc in all_services(settings, env):
        started = svc.start()
        state = ServiceState(svc.name, svc.url, True, svc.log, changed=started)
        report(state)
        states.append(state)
    return states


def status(settings: Settings) -> list[ServiceState]:
    return [ServiceState(s.name, s.url, s.is_running(), s.log) for s in all_services(settings)]


def down(settings: Settings, report: Callable[[ServiceState], None] = lambda s: None) -> None:
    for svc in reversed(all_services(settings)):
        stopped = svc.stop()
        report(ServiceState(svc.name, svc.url, False, svc.log, changed=stopped))
