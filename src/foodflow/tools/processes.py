"""Starts foodflow's own services as background processes, health-checks them, stops them."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from foodflow.platform.config import PORT_SETTING, Settings
from foodflow.platform.errors import InfraError
from foodflow.tools import http
from foodflow.tools.infra import process
from foodflow.tools.secrets import SecretsMissing, service_env

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
# Services that may run as several instances (`foodflow up --scale order_manager=2`): Kafka
# consumers in one group, which share the partitions. Instance i > 0 listens on base port + 100*i.
SCALABLE = ("order_manager", "order_writer")
INSTANCE_PORT_STEP = 100


@dataclass(frozen=True)
class ServiceState:
    name: str
    url: str
    running: bool
    log: Path
    changed: bool = False


class ServiceProcess:
    def __init__(
        self,
        service: str,
        settings: Settings,
        env: dict[str, str] | None = None,
        instance: int = 0,
    ) -> None:
        self.service = service
        self.instance = instance
        self.name = service if instance == 0 else f"{service}-{instance}"
        self.settings = settings
        self.port: int = getattr(settings, PORT_SETTING[service]) + INSTANCE_PORT_STEP * instance
        self.env = dict(env or {})
        if instance:
            # The extra instance reads its own port from the same setting the service uses.
            self.env[Settings.model_fields[PORT_SETTING[service]].alias or ""] = str(self.port)
        home = settings.state_dir / "services"
        self.pidfile = home / f"{self.name}.pid"
        self.log = home / "logs" / f"{self.name}.log"

    @property
    def url(self) -> str:
        return self.settings.service_url(self.port)

    def healthy(self, path: str = "/health") -> bool:
        try:
            return http.get(self.url + path, timeout=1.0).status_code == 200
        except http.HTTP_ERRORS:
            return False

    def is_running(self) -> bool:
        return process.pid_alive(process.read_pid(self.pidfile)) and self.healthy()

    def start(self, timeout: float = 60.0) -> bool:
        if self.is_running():
            return False
        if not self._port_frees(within=10.0):
            raise InfraError(
                self.name, f"port {self.port} is taken by a process foodflow did not start", ""
            )
        try:
            secrets = service_env(self.settings, self.service)
        except SecretsMissing as exc:
            raise InfraError(self.name, str(exc)) from None
        self.pidfile.parent.mkdir(parents=True, exist_ok=True)
        pid = process.spawn(
            [sys.executable, "-m", f"foodflow.{self.service}"],
            log=self.log,
            pidfile=self.pidfile,
            env={**secrets, **self.env, "PYTHONUNBUFFERED": "1"},
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

    def _port_frees(self, within: float) -> bool:
        """True once nothing listens on our port. A process just killed keeps its socket until
        its last thread has exited, a moment after its main thread looks dead."""
        deadline = time.monotonic() + within
        while process.port_open(self.settings.service_host, self.port):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    def stop(self, timeout: float = 30.0) -> bool:
        pid = process.read_pid(self.pidfile)
        if not process.pid_alive(pid):
            self.pidfile.unlink(missing_ok=True)
            return False
        process.terminate(pid, timeout=timeout)  # SIGTERM: the service drains and commits
        self.pidfile.unlink(missing_ok=True)
        return True


def parse_scale(specs: list[str]) -> dict[str, int]:
    """`["order_manager=2"]` → `{"order_manager": 2}`; only SCALABLE services, 1 to 8 each."""
    scale = {}
    for spec in specs:
        name, _, count = spec.partition("=")
        if name not in SCALABLE or not count.isdigit() or not 1 <= int(count) <= 8:
            raise ValueError(f"{spec!r}: expected SERVICE=N, SERVICE one of {SCALABLE}, N 1..8")
        scale[name] = int(count)
    return scale


def _extra_instances_on_disk(settings: Settings, service: str) -> set[int]:
    """Instance numbers > 0 that have a pidfile: what an earlier `--scale` started."""
    pattern = re.compile(rf"^{re.escape(service)}-(\d+)\.pid$")
    home = settings.state_dir / "services"
    found = (pattern.match(p.name) for p in home.glob(f"{service}-*.pid"))
    return {int(m.group(1)) for m in found if m}


def all_services(
    settings: Settings,
    env: dict[str, str] | None = None,
    scale: Mapping[str, int] | None = None,
) -> list[ServiceProcess]:
    """Every service instance: `scale` instances of a scaled service, else one (plus any extra
    instance still recorded on disk, so that `down` and `status` see it)."""
    result = []
    for name in SERVICES:
        count = (scale or {}).get(name, 1)
        instances = set(range(count)) | _extra_instances_on_disk(settings, name)
        result += [ServiceProcess(name, settings, env, i) for i in sorted(instances)]
    return result


def up(
    settings: Settings,
    report: Callable[[ServiceState], None] = lambda s: None,
    env: dict[str, str] | None = None,
    scale: Mapping[str, int] | None = None,
) -> list[ServiceState]:
    """Start every service; `scale` sets the instances of a SCALABLE service and stops extra
    ones. A service `scale` does not name keeps any extra instance as it is."""
    scale = scale or {}
    states = []
    for svc in all_services(settings, env, scale):
        if svc.instance >= scale.get(svc.service, 1):
            if svc.service in scale:
                svc.stop()
                report(ServiceState(svc.name, svc.url, False, svc.log, changed=True))
            elif svc.is_running():
                states.append(ServiceState(svc.name, svc.url, True, svc.log))
                report(states[-1])
            continue
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
