"""The test profile: the ports and the state directory the test suite runs its own servers on.

A user's system (`make run`) listens on the default ports and keeps its data in `.state`; the
suite must never start, restart, fill or drain it. So the suite runs its own Kafka, PostgreSQL,
Redis and services here, with their own data and secrets under `.state/test` — the one place this
profile is defined. `tests/conftest.py` applies it before any setting is read; `make test` and
`make test-down` run their `foodflow` commands under it (`python -m tests.profile foodflow …`).

Defaults only: a variable already in the environment wins (an env file a developer exported to
run the suite against servers of their own, or CI's), so the profile never overrides a choice.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]

# Ten thousand above the defaults (the services' 8000-8007 become 18000-18007), so a `make run`
# system and the suite's servers can run side by side on one machine.
PROFILE: dict[str, str] = {
    "FOODFLOW_STATE_DIR": str(CHECKOUT / ".state" / "test"),
    "KAFKA_PORT": "19092",
    "KAFKA_CONTROLLER_PORT": "19093",
    "POSTGRES_PORT": "15432",
    "REDIS_PORT": "16379",
    "GATEWAY_PORT": "18000",
    "INVENTORY_PORT": "18001",
    "PRICING_PORT": "18002",
    "PAYMENT_PORT": "18003",
    "DELIVERY_PORT": "18004",
    "RESTAURANT_PORT": "18007",
    "ORDER_MANAGER_PORT": "18005",
    "ORDER_WRITER_PORT": "18006",
}


def apply(environ: MutableMapping[str, str] = os.environ) -> dict[str, str]:
    """Set each profile variable the environment does not set already; returns what was set."""
    applied = {key: value for key, value in PROFILE.items() if key not in environ}
    environ.update(applied)
    return applied


def main(argv: list[str]) -> None:
    """`python -m tests.profile COMMAND…`: run COMMAND with the profile applied (replaces us)."""
    if not argv:
        sys.exit("usage: python -m tests.profile COMMAND [ARG…]  (e.g. foodflow down)")
    apply()
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main(sys.argv[1:])
