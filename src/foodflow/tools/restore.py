"""Put services back as they ran: what `foodflow bench` and `foodflow chaos` do when they end.

A tool that restarts services with settings of its own (the bench's PAYMENT_DELAY_SECONDS=0,
one order at a time for its sequential run) first takes a `snapshot` of how each running
instance was started — its whole environment, read from `/proc/<pid>/environ` of its supervisor
(the service is forked from it, so both have the same), since a service reads its settings from
its environment — and at the end, also when it fails or is interrupted, `restore`s them: every
instance stopped, each one that ran started again from exactly that environment. Without this,
the services kept the tool's settings until someone ran `foodflow down` and `up`.

The snapshot lives in memory only: an environment holds the services' secrets.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from foodflow.platform.config import Settings
from foodflow.platform.errors import InfraError
from foodflow.tools import processes
from foodflow.tools.infra import process


@dataclass(frozen=True)
class Started:
    """One service instance that ran, and the environment it was started with."""

    service: str
    instance: int
    environ: Mapping[str, str]

    @property
    def name(self) -> str:
        return self.service if self.instance == 0 else f"{self.service}-{self.instance}"


def read_environ(pid: int | None) -> dict[str, str] | None:
    """A process's environment as it was started; None if the process is gone (or not ours)."""
    if pid is None:
        return None
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    pairs = (entry.decode(errors="surrogateescape").partition("=") for entry in raw.split(b"\0"))
    return {key: value for key, _, value in pairs if key}


def snapshot(settings: Settings, services: Collection[str]) -> dict[str, Started]:
    """How each running instance of `services` was started, by instance name."""
    found = {}
    for svc in processes.all_services(settings):
        if svc.service not in services or not svc.is_running():
            continue
        environ = read_environ(process.read_pid(svc.supervisor_pidfile)) or read_environ(
            process.read_pid(svc.pidfile)
        )
        if environ is not None:
            found[svc.name] = Started(svc.service, svc.instance, environ)
    return found


def base_environ(before: Mapping[str, Started], service: str, instance: int) -> dict[str, str]:
    """The environment to start an instance from: its own as it ran, else the first instance's
    of its service (an instance added for a run), else none (the caller's then)."""
    for name in (Started(service, instance, {}).name, service):
        if name in before:
            return dict(before[name].environ)
    return {}


def restore(
    settings: Settings,
    before: Mapping[str, Started],
    services: Collection[str],
    report: Callable[[str], None] = lambda line: None,
) -> list[str]:
    """Stop every instance of `services`, then start, in start order, each one `before` holds
    from its own environment. Returns the errors (a start that failed), after trying every one."""
    instances = [s for s in processes.all_services(settings) if s.service in services]
    for svc in reversed(instances):
        svc.stop()
    errors = []
    for started in sorted(
        before.values(),
        key=lambda s: (processes.SERVICES.index(s.service), s.instance),
    ):
        if started.service not in services:
            continue
        svc = processes.ServiceProcess(
            started.service, settings, instance=started.instance, base_env=started.environ
        )
        try:
            svc.start()
        except InfraError as exc:
            errors.append(f"{started.name}: {exc.message}")
            continue
        report(started.name)
    return errors
