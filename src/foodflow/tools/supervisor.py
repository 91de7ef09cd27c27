"""Keeps one service instance running, as systemd's `Restart=on-failure` would.

`python -m foodflow.tools.supervisor <service>` (the instance is `FOODFLOW_INSTANCE`) is what
`foodflow up` starts for each service instance (`foodflow.tools.processes`), and for the courier
simulator (`courier_simulator`). It imports the
service's code once, then forks the service from itself: a restart costs no interpreter start
and no imports (seconds on a busy machine), only the service's own start-up. It writes the
*service's* pid into the instance's pidfile (so `kill -9 $(cat …pid)` kills the service, not
its keeper), restarts it after an abnormal exit (non-zero status or a signal) with capped
exponential backoff, and counts the restarts in a JSON file (`foodflow status` shows them). A
crash loop — `RestartPolicy.give_up_after` quick failures in a row — ends supervision; the
file then says so. SIGTERM (or SIGINT) is forwarded to the service, whose graceful drain the
supervisor waits out; then it exits without restarting. A service that exits with status 0 on
its own is not restarted either. A restart runs the code imported when the supervisor started:
`foodflow down` and `up` pick up changed code.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from foodflow.platform.config import PORT_SETTING, Settings, get_settings

# Re-exported: `foodflow status` (tools.processes) reads the record through this module.
from foodflow.platform.supervision import RestartRecord as RestartRecord
from foodflow.tools.infra import process

log = logging.getLogger("foodflow.supervisor")


@dataclass
class RestartPolicy:
    """When to restart after a failure: `first` seconds after a first failure (systemd's
    RestartSec default: a lone crash costs no more than the service's start), then `base *
    2**(n-2)` seconds after the n-th quick failure in a row, at most `cap` (1, 2, 4 … 30 s).
    A run that lasted `stable_after` seconds or more was not part of a crash loop: the count
    starts again. After `give_up_after` quick failures in a row there is no restart."""

    first: float = 0.1
    base: float = 1.0
    cap: float = 30.0
    stable_after: float = 30.0
    give_up_after: int = 8
    quick_failures: int = 0

    def after_failure(self, ran_seconds: float) -> float | None:
        """The delay before the next start, or None to give up."""
        self.quick_failures = 1 if ran_seconds >= self.stable_after else self.quick_failures + 1
        if self.quick_failures >= self.give_up_after:
            return None
        if self.quick_failures == 1:
            return self.first
        return float(min(self.cap, self.base * 2 ** (self.quick_failures - 2)))


# systemd's clean exits, which `Restart=on-failure` does not restart: status 0 or one of these
# signals. uvicorn re-raises the SIGTERM it drained on, so a stopped service dies of SIGTERM.
CLEAN_SIGNALS = frozenset({signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGPIPE})


def is_failure(returncode: int) -> bool:
    """Whether an exit status (-N: killed by signal N) calls for a restart."""
    if returncode < 0:
        return -returncode not in CLEAN_SIGNALS
    return returncode != 0


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return f"exit status {returncode}"


class Supervisor:
    """Runs `serve_service` in a forked child until told to stop; `pidfile` always names the
    live service process."""

    def __init__(
        self,
        name: str,
        serve_service: Callable[[], None],
        *,
        pidfile: Path,
        record: Path,
        port_free: Callable[[], bool],
        policy: RestartPolicy,
        log_file: Path | None = None,
    ) -> None:
        self.name = name
        self.log_file = log_file
        self.serve_service = serve_service
        self.pidfile = pidfile
        self.record = record
        self.port_free = port_free
        self.policy = policy
        self.child: int | None = None
        self.stopping = False

    def on_stop_signal(self, signum: int, _frame: FrameType | None) -> None:
        """Pass the stop on to the service and remember not to restart it."""
        self.stopping = True
        if self.child is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.child, signum)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.on_stop_signal)
        signal.signal(signal.SIGINT, self.on_stop_signal)
        state = RestartRecord()
        state.save(self.record)
        while True:
            self._wait_for_port()
            self._follow_log_file()
            started = time.monotonic()
            returncode = self._run_once()
            self._follow_log_file()
            if self.stopping or not is_failure(returncode):
                log.info("%s exited (%s); not restarting", self.name, describe_exit(returncode))
                return 0
            delay = self.policy.after_failure(time.monotonic() - started)
            exit_text = describe_exit(returncode)
            if delay is None:
                state = RestartRecord(state.restarts, gave_up=True, last_exit=exit_text)
                state.save(self.record)
                log.error(
                    "%s failed %d times in a row (last: %s); giving up",
                    self.name,
                    self.policy.quick_failures,
                    exit_text,
                )
                return 1
            state = RestartRecord(state.restarts + 1, gave_up=False, last_exit=exit_text)
            state.save(self.record)
            log.warning("%s %s; restart %d in %.1fs", self.name, exit_text, state.restarts, delay)
            self._sleep(delay)
            if self.stopping:
                return 0

    def _follow_log_file(self) -> None:
        """Write to the service's current log file: the service rotates it, so the file this
        process was started with may be a backup by now. Before a fork the child inherits it
        (a crash before its logging is set up lands there), after one our own lines do."""
        if self.log_file is not None:
            from foodflow.platform.logs import redirect_std_streams

            redirect_std_streams(self.log_file)

    def _run_once(self) -> int:
        """Fork the service and wait for its exit; its exit status (-N: killed by signal N).
        A stop signal is forwarded by the handler; whoever sent it kills us both if the drain
        takes too long (`ServiceProcess.stop`)."""
        pid = os.fork()
        if pid == 0:
            os._exit(self._be_the_service())
        self.child = pid
        self.pidfile.write_text(str(pid))
        if self.stopping:  # the stop signal came while we were forking
            os.kill(pid, signal.SIGTERM)
        _, status = os.waitpid(pid, 0)
        self.child = None
        return os.waitstatus_to_exitcode(status)

    def _be_the_service(self) -> int:
        """In the forked child: the signals back to their defaults, then the service."""
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            self.serve_service()
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
            return 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
        return 0

    def _wait_for_port(self) -> None:
        """A killed service's socket outlives its main thread for a moment."""
        deadline = time.monotonic() + 10.0
        while not self.port_free() and time.monotonic() < deadline and not self.stopping:
            time.sleep(0.1)

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(0.05)


def main(argv: list[str]) -> int:
    """`python -m foodflow.tools.supervisor SERVICE` (or `courier_simulator`); the instance is
    FOODFLOW_INSTANCE."""
    # Imported here: processes imports this module's RestartRecord; and the web stack (serve)
    # is loaded by the supervisor process alone, not by every command that reads a record.
    from foodflow.platform.logs import configure_logging
    from foodflow.platform.serve import serve
    from foodflow.tools.processes import SIMULATOR, ServiceProcess, SimulatorProcess

    service = argv[0]
    settings: Settings = get_settings()
    configure_logging("supervisor", settings.log_level, settings.log_format)
    if service == SIMULATOR:
        from foodflow.tools.couriers import run_supervised

        simulator = SimulatorProcess(settings)
        return Supervisor(
            simulator.name,
            lambda: run_supervised(simulator.heartbeat),
            pidfile=simulator.pidfile,
            record=simulator.restarts_file,
            port_free=lambda: True,  # it serves no port
            policy=RestartPolicy(),
        ).run()
    svc = ServiceProcess(service, settings, instance=settings.instance)
    port = getattr(settings, PORT_SETTING[service])  # the instance's own, set by its starter
    create_app = importlib.import_module(f"foodflow.{service}.app").create_app
    supervisor = Supervisor(
        svc.name,
        lambda: serve(service, create_app),
        pidfile=svc.pidfile,
        record=svc.restarts_file,
        port_free=lambda: not process.port_open(settings.service_host, port),
        policy=RestartPolicy(),
        log_file=settings.log_file,
    )
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
