"""Session-wide fixtures: the real servers are started once (idempotently) per test session."""

from __future__ import annotations

import pytest

from foodflow.platform.config import Settings, get_settings
from foodflow.tools.infra import manager


@pytest.fixture(scope="session")
def settings() -> Settings:
    return get_settings()


@pytest.fixture(scope="session")
def infra(settings: Settings) -> Settings:
    """Kafka, PostgreSQL and Redis up (a no-op when `make test` already started them)."""
    manager.up(settings)
    return settings
