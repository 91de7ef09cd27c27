"""CPU and memory of each service process (and the bench itself), sampled with psutil."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field

import psutil

from foodflow.config import Settings
from foodflow.infra import process

log = logging.getLogger(__name__)


@dataclass
class ProcessSeries:
    name: str
    pid: int
    cpu_percent: list[float] = field(default_factory=list)  # 100 = one core
    rss_mb: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, float | int | str]:
        cpu = self.cpu_percent or [0.0]
        rss = self.rss_mb or [0.0]
        return {
            "pid": self.pid,
            "cpu_avg_percent": round(sum(cpu) / len(cpu), 1),
            "cpu_max_percent": round(max(cpu), 1),
            "rss_start_mb": round(rss[0], 1),
            "rss_end_mb": round(rss[-1], 1),
            "rss_max_mb": round(max(rss), 1),
        }


def service_pids(settings: Settings) -> dict[str, int]:
    """Every live process with a pidfile under .state/services (all instances), by name."""
    found = {}
    for pidfile in sorted((settings.state_dir / "services").glob("*.pid")):
        pid = process.read_pid(pidfile)
        if pid and process.pid_alive(pid):
            found[pidfile.stem] = pid
    found["bench"] = os.getpid()
    return found


class ProcessSampler:
    """Samples every `interval` seconds on a thread while started."""

    def __init__(self, settings: Settings, interval: float = 1.0) -> None:
        self.interval = interval
        self.series: dict[str, ProcessSeries] = {}
        self._procs: dict[str, psutil.Process] = {}
        for name, pid in service_pids(settings).items():
            try:
                proc = psutil.Process(pid)
                proc.cpu_percent(None)  # primes the counter: the next call is since now
            except psutil.Error:
                continue
            self._procs[name] = proc
            self.series[name] = ProcessSeries(name, pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-psutil", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> dict[str, dict[str, float | int | str]]:
        self._stop.set()
        self._thread.join(5)
        return {name: s.summary() for name, s in self.series.items()}

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            for name, proc in self._procs.items():
                try:
                    with proc.oneshot():
                        cpu = proc.cpu_percent(None)
                        rss = proc.memory_info().rss / 2**20
                except psutil.Error:
                    continue
                if rss == 0:  # a zombie: the process ended (restarted by someone) mid-run
                    continue
                self.series[name].cpu_percent.append(cpu)
                self.series[name].rss_mb.append(rss)
