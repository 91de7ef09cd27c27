"""The test profile keeps the suite off a user's system: other ports, another state directory,
applied before anything read the settings, and never over a choice already exported."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from foodflow.platform.config import PORT_SETTING, PROJECT_ROOT, Settings, get_settings
from foodflow.tools.restore import Started, base_environ, read_environ
from tests import profile

PORT_FIELDS = (
    "kafka_port",
    "kafka_controller_port",
    "postgres_port",
    "redis_port",
    *PORT_SETTING.values(),
)


def defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    monkeypatch.chdir(tmp_path)  # no .env
    for field in Settings.model_fields.values():
        if field.alias:
            monkeypatch.delenv(field.alias, raising=False)
    return Settings()


def test_the_profile_shares_no_port_and_no_state_with_the_defaults(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    user = defaults(monkeypatch, tmp_path)
    applied = profile.apply(dict(os.environ))
    assert applied == profile.PROFILE  # nothing was exported: every variable is the profile's
    for key, value in applied.items():
        monkeypatch.setenv(key, value)
    suite = Settings()
    user_ports = {getattr(user, name) for name in PORT_FIELDS}
    suite_ports = {getattr(suite, name) for name in PORT_FIELDS}
    assert len(suite_ports) == len(PORT_FIELDS)  # one port each
    assert not user_ports & suite_ports
    assert suite.state_dir == PROJECT_ROOT / ".state" / "test" != user.state_dir
    # Inside the user's `.state` by name only: none of the user's own folders holds it.
    for folder in ("kafka", "postgres", "redis", "secrets", "services", "cache"):
        assert not suite.state_dir.is_relative_to(user.state_dir / folder)


def test_an_exported_variable_wins_over_the_profile() -> None:
    environ = {"KAFKA_PORT": "39092", "FOODFLOW_STATE_DIR": "/work/elsewhere"}
    applied = profile.apply(environ)
    assert environ["KAFKA_PORT"] == "39092"
    assert environ["FOODFLOW_STATE_DIR"] == "/work/elsewhere"
    assert "KAFKA_PORT" not in applied
    assert environ["POSTGRES_PORT"] == profile.PROFILE["POSTGRES_PORT"]


def test_the_sessions_settings_were_read_after_the_profile_was_applied() -> None:
    """conftest applies the profile at import; `get_settings()` (cached for the session) must
    show it: read earlier, it would name the default ports, a `make run` system's."""
    settings = get_settings()
    for key in profile.PROFILE:
        field = next(f for f in Settings.model_fields.values() if f.alias == key)
        name = next(n for n, f in Settings.model_fields.items() if f is field)
        assert str(getattr(settings, name)) == os.environ[key], key


def test_a_running_processs_environment_is_read_whole() -> None:
    environ = read_environ(os.getpid())
    assert environ is not None
    assert environ.get("PATH") == os.environ.get("PATH")
    assert read_environ(None) is None
    assert read_environ(2**22 + 12345) is None  # no such process


def test_an_instance_starts_from_its_own_environment_else_its_services_first() -> None:
    before = {
        "order_manager": Started("order_manager", 0, {"A": "0"}),
        "order_manager-2": Started("order_manager", 2, {"A": "2"}),
    }
    assert base_environ(before, "order_manager", 2) == {"A": "2"}
    assert base_environ(before, "order_manager", 1) == {"A": "0"}  # added for the run
    assert base_environ(before, "gateway", 0) == {}  # did not run
