"""The restart record a service's supervisor keeps, readable by anyone on the same machine.

`foodflow.tools.supervisor` writes `<state>/services/supervisors/<instance>.restarts.json` each
time it restarts (or gives up on) a service; `foodflow status` and the gateway's dashboard read
it. It lives here, below the services, so that the gateway can read restarts without importing
the tools (a service never imports `foodflow.tools`). Services run elsewhere (containers) have
no record: their restarts are their orchestrator's to count.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

RECORD_SUFFIX = ".restarts.json"


def supervisors_dir(state_dir: Path) -> Path:
    """Where the supervisors keep their pid files and restart records."""
    return state_dir / "services" / "supervisors"


def restart_record_path(state_dir: Path, instance: str) -> Path:
    """The record of one service instance (`order_manager`, `order_manager-1`, …)."""
    return supervisors_dir(state_dir) / f"{instance}{RECORD_SUFFIX}"


@dataclass(frozen=True)
class RestartRecord:
    """What `<instance>.restarts.json` holds: read by `foodflow status` and the dashboard."""

    restarts: int = 0
    gave_up: bool = False
    last_exit: str = ""

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> RestartRecord:
        try:
            data = json.loads(path.read_text())
            return cls(int(data["restarts"]), bool(data["gave_up"]), str(data["last_exit"]))
        except (OSError, ValueError, KeyError, TypeError):
            return cls()


def restart_records(state_dir: Path) -> dict[str, RestartRecord]:
    """Every instance's record under `state_dir`, by instance name (empty when none)."""
    folder = supervisors_dir(state_dir)
    try:
        paths = sorted(folder.glob(f"*{RECORD_SUFFIX}"))
    except OSError:
        return {}
    return {path.name.removesuffix(RECORD_SUFFIX): RestartRecord.load(path) for path in paths}
