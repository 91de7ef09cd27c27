"""The browser the dashboard's tests drive: Debian's Chromium, installed with apt when missing.

Playwright's own browser download needs a site these machines cannot reach, so the tests use
the system's `/usr/bin/chromium` with flags that keep it from calling home.
"""

from __future__ import annotations

import shutil

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


def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def ensure_chromium() -> str:
    """Path to Chromium; `apt-get install chromium` first when it is missing and we are root."""
    process.APT_PACKAGES.setdefault("chromium", CHROMIUM_PACKAGE)
    return process.ensure_tool("chromium", server="browser", find=find_chromium)
