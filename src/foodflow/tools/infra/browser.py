"""The browser the dashboard's tests drive: Debian's Chromium.

Playwright's own browser download needs a site these machines cannot reach, so the tests use
the system's `/usr/bin/chromium` with flags that keep it from calling home. `make test` installs
it before the suite starts (`foodflow infra browser`, apt's output shown); the tests only look
for it, so an install that fails says so once, before any test runs, rather than inside one.
"""

from __future__ import annotations

import shutil

from foodflow.platform.errors import InfraError
from foodflow.tools.infra import process

CHROMIUM_PACKAGE = "chromium"
CHROMIUM_ARGS = (
    "--no-sandbox",  # root in CI has no user namespace sandbox
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
SERVER = "browser"


def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def require_chromium() -> str:
    """Path to Chromium, or an error that says how to install it (the tests' side)."""
    found = find_chromium()
    if found is None:
        raise InfraError(
            SERVER,
            "Chromium is not installed",
            "`make test` installs it first (`foodflow infra browser`), or:"
            f" sudo apt-get install -y {CHROMIUM_PACKAGE}",
        )
    return found


def install_chromium() -> tuple[str, bool]:
    """Path to Chromium, installed with apt-get when missing (as root, apt's output shown);
    and whether this call installed it."""
    found = find_chromium()
    if found:
        return found, False
    if not process.is_root() or shutil.which("apt-get") is None:
        raise InfraError(
            SERVER,
            "Chromium is not installed and this user cannot install it"
            + (" (not root)" if shutil.which("apt-get") else " (no apt-get)"),
            f"Install it, e.g.: sudo apt-get install -y {CHROMIUM_PACKAGE}; then run make test"
            " again.",
        )
    print(f"{SERVER}: installing Debian's {CHROMIUM_PACKAGE} with apt-get…", flush=True)
    try:
        process.apt_install([CHROMIUM_PACKAGE], server=SERVER, show_output=True)
    except InfraError as exc:
        raise InfraError(
            SERVER,
            f"installing Chromium failed: {exc.message}",
            f"{exc.log_tail}. Fix what apt reports (network? `apt-get update`?), or install it"
            f" yourself: sudo apt-get install -y {CHROMIUM_PACKAGE}; then run make test again.",
        ) from None
    found = find_chromium()
    if found is None:
        raise InfraError(
            SERVER,
            f"apt-get installed {CHROMIUM_PACKAGE} but no chromium is on PATH",
            "Check `dpkg -L chromium`; the tests look for `chromium` or `chromium-browser`.",
        )
    return found, True
