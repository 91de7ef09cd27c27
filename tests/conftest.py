"""Session-wide fixtures: the real servers are started once (idempotently) per test session.

The servers are the test profile's (`tests/profile.py`: their own ports and `.state/test`),
applied here before any setting is read, so the suite never touches a `make run` system.

The tests use the system's own generated secrets (`foodflow.tools.secrets`): generated on the
first run into the profile's state directory, exactly as `foodflow up` would, so no secret is
ever written into the tests.
"""

from __future__ import annotations

from tests import profile

# Before anything reads the settings (`get_settings()` caches them; some test modules build a
# `Settings()` at import): the suite's own ports and state directory, unless exported.
profile.apply()

import pytest  # noqa: E402

from foodflow.platform.config import Settings, get_settings  # noqa: E402
from foodflow.tools.infra import manager  # noqa: E402
from foodflow.tools.secrets import ensure_secrets, load_settings  # noqa: E402


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
