"""Session-wide fixtures: the real servers are started once (idempotently) per test session.

The tests use the system's own generated secrets (`foodflow.tools.secrets`): generated on the
first run, exactly as `foodflow up` would, so no secret is ever written into the tests.
"""

from __future__ import annotations

import pytest

from foodflow.platform.config import Settings, get_settings
from foodflow.tools.infra import manager
from foodflow.tools.secrets import ensure_secrets, load_settings


@pytest.fixture(scope="session")
def settings() -> Settings:
    """The settings with the generated secrets: the user token keys, the demo operator's
    password and every service's public key (no service's private key: see `service_auth`)."""
    base = get_settings()
    ensure_secrets(base, report=lambda _: None)
    return load_settings(base)


@pytest.fixture(scope="session")
def infra(settings: Settings) -> Settings:
    """Kafka, PostgreSQL and Redis up (a no-op when `make test` already started them)."""
    manager.up(settings)
    return settings
