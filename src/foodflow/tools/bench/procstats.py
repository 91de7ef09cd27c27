"""CPU and memory of each service process, the infrastructure (Kafka, PostgreSQL with its
backends, Redis) and the bench itself, sampled with psutil."""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from foodflow.platform.config import Settings
from foodflow.tools.infra import process
from foodflow.tools.infra.kafka import cluster_nodes

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
    """Every live process with a pidfile under .state/services (all instances), by name, then
    the infrastructure's servers this project started, then the bench."""
    found = {}
    state = settings.state_dir
    pidfiles = [
        *sorted((state / "services").glob("*.pid")),
        state / "postgres" / "data" / "postmaster.pid",  # its first line is the pid
        state / "redis" / "redis.pid",
    ]
    for pidfile in pidfiles:
        pid = process.read_pid(pidfile) if pidfile.exists() else None
        if pid and process.pid_alive(pid):
            found[pidfile.stem if pidfile.parent.name == "services" else _infra(pidfile)] = pid
    # Kafka: the single node ("kafka"), or each node of a cluster ("kafka-1", …).
    for node in cluster_nodes(settings):
        pid = node.pid()
        if pid is not None:
            found[node.name] = pid
    found["bench"] = os.getpid()
    return found


def _infra(pidfile: Path) -> str:
    return "postgres" if pidfile.name == "postmaster.pid" else pidfile.stem


# A server whose work is done by child processes: CPU and memory are summed over them all.
WITH_CHILDREN = frozenset({"postgres"})


class ProcessSampler:
    """Samples every `interval` seconds on a thread while started."""

    def __init__(self, settings: Settings, interval: float = 1.0) -> None:
        self.interval = interval
        self.series: dict[str, ProcessSeries] = {}
        self._procs: dict[str, psutil.Process] = {}
        self._last: dict[str, tuple[float, float]] = {}  # name -> (wall time, CPU seconds)
        for name, pid in service_pids(settings).items():
            try:
                proc = psutil.Process(pid)
                self._last[name] = (time.monotonic(), self._cpu_seconds(name, proc))
            except psutil.Error:
                continue
            self._procs[name] = proc
            self.series[name] = ProcessSeries(name, pid)
        # The whole machine too (every process and the kernel), as % of one core like the rest.
        self.machine = ProcessSeries("machine", 0)
        psutil.cpu_percent(None)  # primes the counter: the next call is since now
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-psutil", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> dict[str, dict[str, float | int | str]]:
        """Per process (and `machine`: all CPU of the machine, kernel included) summaries."""
        self._stop.set()
        self._thread.join(5)
        summaries = {name: s.summary() for name, s in self.series.items()}
        if self.machine.cpu_percent:
            summaries["machine"] = self.machine.summary()
        return summaries

    @staticmethod
    def _family(name: str, proc: psutil.Process) -> list[psutil.Process]:
        return [proc, *proc.children(recursive=True)] if name in WITH_CHILDREN else [proc]

    def _cpu_seconds(self, name: str, proc: psutil.Process) -> float:
        total = 0.0
        for member in self._family(name, proc):
            try:
                times = member.cpu_times()
            except psutil.Error:  # a child that just ended
                continue
            total += times.user + times.system
        return total

    def _memory_mb(self, name: str, proc: psutil.Process) -> float:
        """RSS; for a server with children, the sum of their PSS (shared pages split among
        the processes sharing them: PostgreSQL's shared buffers counted once, not per backend)."""
        if name not in WITH_CHILDREN:
            return float(proc.memory_info().rss) / 2**20
        total = 0
        for member in self._family(name, proc):
            try:
                total += member.memory_full_info().pss
            except psutil.Error:
                continue
        return total / 2**20

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            cores = psutil.cpu_count() or 1
            self.machine.cpu_percent.append(round(psutil.cpu_percent(None) * cores, 1))
            self.machine.rss_mb.append(psutil.virtual_memory().used / 2**20)
            for name, proc in self._procs.items():
                try:
                    now, cpu_seconds = time.monotonic(), self._cpu_seconds(name, proc)
                    rss = self._memory_mb(name, proc)
                except psutil.Error:
                    continue
                if rss == 0:  # a zombie: the process ended (restarted by someone) mid-run
                    continue
                then, cpu_before = self._last[name]
                self._last[name] = (now, cpu_seconds)
                # A child that ended takes its CPU time with it: never below zero.
                cpu = max(0.0, 100 * (cpu_seconds - cpu_before) / max(now - then, 1e-6))
                self.series[name].cpu_percent.append(round(cpu, 1))
                self.series[name].rss_mb.append(rss)
