"""Starts foodflow's own services as supervised background processes, health-checks them,
stops them.

Each service instance runs under its own `foodflow.tools.supervisor` process, which restarts it
after a crash; the instance's pidfile names the service process itself, the supervisor's pid is
in `supervisors/<instance>.pid`, its restart count in `supervisors/<instance>.restarts.json`.

The courier simulator (`foodflow.tools.couriers`) runs the same way when `foodflow up` starts it
(`COURIER_SIMULATOR`): supervised, listed by `status` while it is meant to run, stopped first by
`down`. It serves no port; it is up while its process lives and touches its heartbeat file.
"""

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
from foodflow.tools.supervisor import RestartRecord

SIMULATOR = "courier_simulator"

# Start order: what the order manager calls comes up before it.
SERVICES = (
    "inventory_service",
    "pricing_service",
    "payment_service",
    "delivery_service",
    "restaurant_service",
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
    restarts: int = 0
    gave_up: bool = False  # the supervisor stopped restarting a crash loop


class ServiceProcess:
    def __init__(
        self,
        service: str,
        settings: Settings,
        env: dict[str, str] | None = None,
        instance: int = 0,
        base_env: Mapping[str, str] | None = None,
    ) -> None:
        self.service = service
        # The environment to start from instead of ours, `env` over it: what the instance ran
        # with before a tool restarted it (foodflow.tools.restore).
        self.base_env = base_env
        self.instance = instance
        self.name = service if instance == 0 else f"{service}-{instance}"
        self.settings = settings
        self.port: int = getattr(settings, PORT_SETTING[service]) + INSTANCE_PORT_STEP * instance
        self.env = dict(env or {})
        self.env["FOODFLOW_INSTANCE"] = str(instance)
        # The Kafka the command chose (`--brokers`, or the one recorded in the state directory)
        # said outright: the service's bootstrap list then never depends on reading the record.
        self.env["KAFKA_BROKERS"] = str(settings.kafka_brokers)
        if instance:
            # The extra instance reads its own port from the same setting the service uses.
            self.env[Settings.model_fields[PORT_SETTING[service]].alias or ""] = str(self.port)
        home = settings.state_dir / "services"
        self.pidfile = home / f"{self.name}.pid"
        self.supervisor_pidfile = home / "supervisors" / f"{self.name}.pid"
        self.restarts_file = home / "supervisors" / f"{self.name}.restarts.json"
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

    def supervised(self) -> bool:
        """True while this instance's supervisor runs (and so restarts the service)."""
        return process.pid_alive(process.read_pid(self.supervisor_pidfile))

    def restart_record(self) -> RestartRecord:
        return RestartRecord.load(self.restarts_file)

    def start(self, timeout: float = 60.0) -> bool:
        """Start the supervisor, which starts the service; wait until the service is ready.
        A crash before it is ready fails the start (and stops its supervisor): a service that
        cannot start says why at once instead of looping. An instance whose supervisor runs is
        not started again, only waited for."""
        if self.is_running():
            return False
        if self.supervised() and not self.restart_record().gave_up:
            self._wait_ready(timeout)
            return False
        if not self._port_frees(within=10.0):
            raise InfraError(
                self.name, f"port {self.port} is taken by a process foodflow did not start", ""
            )
        try:
            secrets = service_env(self.settings, self.service)
        except SecretsMissing as exc:
            raise InfraError(self.name, str(exc)) from None
        _start_supervised(
            self,
            self.service,
            # The service writes (and rotates) its log itself; output before its logging is
            # set up (the supervisor's, a crash at import) is appended to the same file.
            env={**secrets, **self.env, "PYTHONUNBUFFERED": "1", "LOG_FILE": str(self.log)},
            base_env=self.base_env,
            ready=lambda: self.healthy("/ready"),
            what="GET /ready",
            timeout=timeout,
        )
        return True

    def await_restart(self, killed_pid: int | None, timeout: float = 60.0) -> None:
        """Wait until the supervisor has replaced the service process `killed_pid` with a new
        one that is ready (what a kill fault waits for, rather than starting one itself)."""
        process.wait_until(
            lambda: process.read_pid(self.pidfile) not in (None, killed_pid) and self.is_running(),
            server=self.name,
            what="a restart by its supervisor",
            timeout=timeout,
            log=self.log,
            alive=lambda: self.supervised() and not self.restart_record().gave_up,
        )

    def _wait_ready(self, timeout: float) -> None:
        process.wait_until(
            self.is_running,
            server=self.name,
            what="GET /ready",
            timeout=timeout,
            log=self.log,
            alive=self.supervised,
        )

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
        """SIGTERM to the supervisor, which forwards it: the service drains and commits, and
        nothing restarts it. Whatever still runs after `timeout` is killed."""
        supervisor = process.read_pid(self.supervisor_pidfile)
        service = process.read_pid(self.pidfile)
        stopped = process.pid_alive(supervisor) or process.pid_alive(service)
        process.terminate(supervisor, timeout=timeout)
        # Left over if the supervisor was killed, or never ran (a service started before
        # supervision): stop it the same way.
        process.terminate(service, timeout=timeout)
        for path in (self.pidfile, self.supervisor_pidfile, self.restarts_file):
            path.unlink(missing_ok=True)
        return stopped


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
    """Every service instance, and the courier simulator while it is meant to run."""
    states = [state_of(s) for s in all_services(settings)]
    simulator = SimulatorProcess(settings)
    if simulator.meant_to_run():
        states.append(state_of(simulator))
    return states


def state_of(svc: ServiceProcess | SimulatorProcess) -> ServiceState:
    record = svc.restart_record()
    return ServiceState(
        svc.name,
        svc.url,
        svc.is_running(),
        svc.log,
        restarts=record.restarts,
        gave_up=record.gave_up,
    )


def down(settings: Settings, report: Callable[[ServiceState], None] = lambda s: None) -> None:
    """Stop the courier simulator (if it runs), then every service in reverse start order."""
    simulator = SimulatorProcess(settings)
    meant = simulator.meant_to_run()
    stopped = simulator.stop()
    if meant or stopped:
        report(ServiceState(simulator.name, simulator.url, False, simulator.log, changed=stopped))
    for svc in reversed(all_services(settings)):
        stopped = svc.stop()
        report(ServiceState(svc.name, svc.url, False, svc.log, changed=stopped))


class SimulatorProcess:
    """The courier simulator under its supervisor: the same files as a service instance, a
    heartbeat file instead of a port."""

    def __init__(self, settings: Settings) -> None:
        self.name = self.service = SIMULATOR
        self.settings = settings
        home = settings.state_dir / "services"
        self.pidfile = home / f"{SIMULATOR}.pid"
        self.supervisor_pidfile = home / "supervisors" / f"{SIMULATOR}.pid"
        self.restarts_file = home / "supervisors" / f"{SIMULATOR}.restarts.json"
        self.heartbeat = home / f"{SIMULATOR}.heartbeat"
        self.log = home / "logs" / f"{SIMULATOR}.log"
        self.url = "-"

    def meant_to_run(self) -> bool:
        """Started by `up` and not stopped by `down` (its supervisor's pidfile is there)."""
        return self.supervisor_pidfile.exists()

    def supervised(self) -> bool:
        return process.pid_alive(process.read_pid(self.supervisor_pidfile))

    def is_running(self) -> bool:
        from foodflow.tools.couriers import heartbeat_fresh  # only who asks pays its imports

        return process.pid_alive(process.read_pid(self.pidfile)) and heartbeat_fresh(self.heartbeat)

    def restart_record(self) -> RestartRecord:
        return RestartRecord.load(self.restarts_file)

    def start(self, timeout: float = 60.0, env: Mapping[str, str] | None = None) -> bool:
        """Start the supervisor, which starts the simulator; wait for its first heartbeat.
        False when it runs already. `env`: settings of its own over the caller's environment
        (chaos: the kitchens' faults)."""
        if self.is_running():
            return False
        if self.supervised() and not self.restart_record().gave_up:
            process.wait_until(
                self.is_running,
                server=self.name,
                what="its heartbeat",
                timeout=timeout,
                log=self.log,
                alive=self.supervised,
            )
            return False
        self.heartbeat.unlink(missing_ok=True)
        _start_supervised(
            self,
            SIMULATOR,
            env={**(env or {}), "PYTHONUNBUFFERED": "1"},
            base_env=None,
            ready=self.is_running,
            what="its heartbeat",
            timeout=timeout,
        )
        return True

    def stop(self, timeout: float = 10.0) -> bool:
        """SIGTERM to the supervisor, which forwards it; nothing restarts the simulator."""
        supervisor = process.read_pid(self.supervisor_pidfile)
        simulator = process.read_pid(self.pidfile)
        stopped = process.pid_alive(supervisor) or process.pid_alive(simulator)
        process.terminate(supervisor, timeout=timeout)
        process.terminate(simulator, timeout=timeout)
        for path in (self.pidfile, self.supervisor_pidfile, self.restarts_file, self.heartbeat):
            path.unlink(missing_ok=True)
        return stopped


def _start_supervised(
    unit: ServiceProcess | SimulatorProcess,
    target: str,
    *,
    env: dict[str, str],
    base_env: Mapping[str, str] | None,
    ready: Callable[[], bool],
    what: str,
    timeout: float,
) -> None:
    """Spawn `python -m foodflow.tools.supervisor TARGET` for `unit` (no stale pid, a fresh
    restart record) and wait until `ready`. A crash before that (the supervisor gone, or a
    restart recorded) fails the start and stops it: what cannot start says why at once."""
    unit.supervisor_pidfile.parent.mkdir(parents=True, exist_ok=True)
    unit.pidfile.unlink(missing_ok=True)
    RestartRecord().save(unit.restarts_file)
    supervisor = process.spawn(
        [sys.executable, "-m", "foodflow.tools.supervisor", target],
        log=unit.log,
        pidfile=unit.supervisor_pidfile,
        env=env,
        base_env=base_env,
    )
    try:
        process.wait_until(
            ready,
            server=unit.name,
            what=what,
            timeout=timeout,
            log=unit.log,
            alive=lambda: process.pid_alive(supervisor) and not unit.restart_record().restarts,
        )
    except InfraError:
        unit.stop(timeout=5.0)
        raise


def start_simulator(
    settings: Settings, report: Callable[[ServiceState], None] = lambda s: None
) -> ServiceState:
    """Start the courier simulator (idempotent)."""
    simulator = SimulatorProcess(settings)
    started = simulator.start()
    state = ServiceState(simulator.name, simulator.url, True, simulator.log, changed=started)
    report(state)
    return state
