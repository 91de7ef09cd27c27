"""Small helpers to run a server as a detached background process and wait for it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from foodflow.platform.errors import InfraError

APT_PACKAGES = {
    "java": "openjdk-17-jre-headless",
    "mvn": "maven",
    "redis-server": "redis-server",
    "initdb": "postgresql",
}


def tail(path: Path, lines: int = 25) -> str:
    """The last lines of a log file, or a note that there is none yet."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            text = f.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still answers kill(0); reap it if it is one.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return _not_zombie(pid)


def _not_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def read_pid(pidfile: Path) -> int | None:
    """The pid on the file's first line (PostgreSQL's postmaster.pid has more lines)."""
    try:
        return int(pidfile.read_text().split("\n", 1)[0].strip())
    except (OSError, ValueError):
        return None


def spawn(
    argv: Sequence[str],
    *,
    log: Path,
    pidfile: Path,
    env: dict[str, str] | None = None,
    base_env: Mapping[str, str] | None = None,
) -> int:
    """Start `argv` in its own session (it outlives us), output appended to `log`; its
    environment is `base_env` (ours when None) with `env` over it."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**(os.environ if base_env is None else base_env), **(env or {})},
        )
    pidfile.write_text(str(proc.pid))
    return proc.pid


def terminate(pid: int | None, *, timeout: float = 30.0) -> None:
    """SIGTERM, wait up to `timeout`, then SIGKILL."""
    if not pid_alive(pid):
        return
    assert pid is not None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    while pid_alive(pid):
        time.sleep(0.05)


def wait_until(
    check: Callable[[], bool],
    *,
    server: str,
    what: str,
    timeout: float,
    log: Path,
    alive: Callable[[], bool] | None = None,
) -> None:
    """Poll `check` until it is true; fail with the log's tail on timeout or early death."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if alive is not None and not alive():
            raise InfraError(server, f"process exited before {what}", tail(log))
        time.sleep(0.25)
    raise InfraError(server, f"no answer to {what} after {timeout:.0f}s", tail(log))


def run(
    argv: Sequence[str],
    *,
    server: str,
    timeout: float = 300,
    show_output: bool = False,
    **kwargs: object,
) -> str:
    """Run a setup command to completion; fail with its output if it fails. With
    `show_output` its output goes to our terminal as it comes (a long install a person watches)
    and the failure points there instead of repeating it."""
    try:
        done = subprocess.run(
            list(argv),
            capture_output=not show_output,
            text=True,
            timeout=timeout,
            check=False,
            **kwargs,  # type: ignore[call-overload]
        )
    except subprocess.TimeoutExpired as exc:
        raise InfraError(server, f"{argv[0]} took longer than {timeout:.0f}s", str(exc)) from exc
    if done.returncode != 0:
        what = f"{' '.join(argv[:3])} failed (exit {done.returncode})"
        if show_output:
            raise InfraError(server, what, "its output is above")
        output = (done.stdout + done.stderr).strip().splitlines()[-25:]
        raise InfraError(server, what, "\n".join(output))
    return str(done.stdout or "")


def is_root() -> bool:
    return os.geteuid() == 0


def ensure_tool(tool: str, *, server: str, find: Callable[[], str | None] | None = None) -> str:
    """Path to `tool`; installs its Debian package when missing and we are root."""
    locate = find or (lambda: shutil.which(tool))
    found = locate()
    if found:
        return found
    package = APT_PACKAGES[tool]
    if not (is_root() and shutil.which("apt-get")):
        raise InfraError(
            server,
            f"'{tool}' is not installed",
            f"Install it first, e.g.: sudo apt-get install -y {package}",
        )
    print(f"{server}: '{tool}' is missing; installing Debian's {package} with apt-get…", flush=True)
    apt_install([package], server=server)
    found = locate()
    if not found:
        raise InfraError(server, f"'{tool}' still missing after installing {package}", "")
    return found


_apt_updated = False


def apt_install(packages: list[str], *, server: str, show_output: bool = False) -> None:
    """apt-get install without letting the packages start their own system services; with
    `show_output`, apt's output is shown as it runs."""
    global _apt_updated
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # Debian's postgresql and redis-server start a system-wide instance on our ports at
    # install time unless policy-rc.d forbids it; we run project-owned ones instead.
    policy = Path("/usr/sbin/policy-rc.d")
    placed = not policy.exists()
    if placed:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        if not _apt_updated:
            run(
                ["apt-get", "update", "-qq"],
                server=server,
                timeout=600,
                show_output=show_output,
                env=env,
            )
            _apt_updated = True
        run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
            server=server,
            timeout=900,
            show_output=show_output,
            env=env,
        )
    finally:
        if placed:
            policy.unlink(missing_ok=True)
