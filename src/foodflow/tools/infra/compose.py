"""The Compose file checker the suite runs: Debian's `docker-compose` (1.29), for `config` only.

`docker-compose config` parses docker-compose.yaml (and the cluster override), checks it against
the Compose schema and resolves every variable, with no Docker engine — which these machines do
not have. `make test` installs it before the suite (`foodflow infra compose`, apt's output
shown), as it does Chromium (`foodflow.tools.infra.browser`); the test only looks for it.
"""

from __future__ import annotations

import shutil

from foodflow.platform.errors import InfraError
from foodflow.tools.infra import process

COMPOSE_PACKAGE = "docker-compose"
SERVER = "compose"


def find_compose() -> str | None:
    return shutil.which("docker-compose")


def require_compose() -> str:
    """Path to docker-compose, or an error that says how to install it (the tests' side)."""
    found = find_compose()
    if found is None:
        raise InfraError(
            SERVER,
            "docker-compose is not installed",
            "`make test` installs it first (`foodflow infra compose`), or:"
            f" sudo apt-get install -y {COMPOSE_PACKAGE}",
        )
    return found


def install_compose() -> tuple[str, bool]:
    """Path to docker-compose, installed with apt-get when missing (as root, apt's output shown);
    and whether this call installed it."""
    found = find_compose()
    if found:
        return found, False
    if not process.is_root() or shutil.which("apt-get") is None:
        raise InfraError(
            SERVER,
            "docker-compose is not installed and this user cannot install it"
            + (" (not root)" if shutil.which("apt-get") else " (no apt-get)"),
            f"Install it, e.g.: sudo apt-get install -y {COMPOSE_PACKAGE}; then run make test"
            " again.",
        )
    print(f"{SERVER}: installing Debian's {COMPOSE_PACKAGE} with apt-get…", flush=True)
    try:
        process.apt_install([COMPOSE_PACKAGE], server=SERVER, show_output=True)
    except InfraError as exc:
        raise InfraError(
            SERVER,
            f"installing docker-compose failed: {exc.message}",
            f"{exc.log_tail}. Fix what apt reports (network? `apt-get update`?), or install it"
            f" yourself: sudo apt-get install -y {COMPOSE_PACKAGE}; then run make test again.",
        ) from None
    found = find_compose()
    if found is None:
        raise InfraError(
            SERVER,
            f"apt-get installed {COMPOSE_PACKAGE} but no docker-compose is on PATH",
            "Check `dpkg -L docker-compose`; the test looks for `docker-compose`.",
        )
    return found, True
