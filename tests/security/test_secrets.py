"""No default secret anywhere (finding 1: tokens forged with a published constant).

The refusals and the generated files need no server; the forged admin token is tried against
the gateway in-process, on the real PostgreSQL, Redis and Kafka.
"""

from __future__ import annotations

import json
import secrets
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import uuid4

import httpx
import jwt
import pytest
from pydantic import SecretStr

from foodflow.gateway.app import create_app as create_gateway
from foodflow.gateway.security import Principal, Role, issue_token, read_token
from foodflow.platform.config import Settings
from foodflow.platform.secrets import SecretRefused, require
from foodflow.tools import secrets as tool
from foodflow.tools.processes import ServiceProcess

PUBLISHED = "development-only-secret-do-not-use-in-production"


@pytest.fixture
def generated(tmp_path: Path) -> Settings:
    """Settings whose state directory holds freshly generated secrets."""
    settings = Settings(FOODFLOW_STATE_DIR=tmp_path)
    tool.ensure_secrets(settings, report=lambda _: None)
    return settings


# --- every service refuses to start without strong secrets -------------------------------------


def test_generated_secrets_pass_every_check(generated: Settings) -> None:
    for service in tool.SERVICES:
        require(
            tool.load_settings(generated, service),
            "jwt_signing_keys",
            "service_private_key",
            "service_public_keys",
            "demo_operator_password",
        )


@pytest.mark.parametrize(
    "name",
    ["jwt_signing_keys", "service_private_key", "service_public_keys", "demo_operator_password"],
)
def test_a_missing_secret_is_refused_naming_its_variable(name: str) -> None:
    variable = Settings.model_fields[name].alias
    with pytest.raises(SecretRefused, match=f"{variable} is not set"):
        require(Settings(), name)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (PUBLISHED, "a known"),
        ("secret", "a known"),
        ("short-" + secrets.token_urlsafe(16), "too weak"),
        ("ab" * 30, "too weak"),
    ],
)
def test_a_published_short_or_monotonous_jwt_key_is_refused(
    generated: Settings, value: str, why: str
) -> None:
    weak = tool.load_settings(generated).model_copy(
        update={"jwt_signing_keys": {"k": SecretStr(value)}, "jwt_active_key_id": "k"}
    )
    with pytest.raises(SecretRefused, match=rf"JWT_SIGNING_KEYS\['k'\] is {why}"):
        require(weak, "jwt_signing_keys")


def test_an_active_key_id_not_listed_is_refused(generated: Settings) -> None:
    settings = tool.load_settings(generated).model_copy(update={"jwt_active_key_id": "nope"})
    with pytest.raises(SecretRefused, match="JWT_ACTIVE_KEY_ID"):
        require(settings, "jwt_signing_keys")


def test_a_short_demo_password_is_refused(generated: Settings) -> None:
    settings = tool.load_settings(generated).model_copy(
        update={"demo_operator_password": SecretStr("password")}
    )
    with pytest.raises(SecretRefused, match="DEMO_OPERATOR_PASSWORD"):
        require(settings, "demo_operator_password")


def test_a_key_that_is_not_an_ed25519_pem_is_refused(generated: Settings) -> None:
    settings = tool.load_settings(generated).model_copy(
        update={
            "service_private_key": SecretStr("-----BEGIN PRIVATE KEY-----\nnope\n"),
            "service_public_keys": {"order_manager": "not a key"},
        }
    )
    with pytest.raises(SecretRefused, match="SERVICE_PRIVATE_KEY is not a PEM private key"):
        require(settings, "service_private_key")
    with pytest.raises(SecretRefused, match=r"SERVICE_PUBLIC_KEYS\['order_manager'\]"):
        require(settings, "service_public_keys")


def test_a_private_key_on_one_line_as_in_an_env_file_is_read(
    generated: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    pem = tool.load_secrets(generated).service_keys["gateway"]
    monkeypatch.setenv("SERVICE_PRIVATE_KEY", pem.strip().replace("\n", "\\n"))
    require(Settings(), "service_private_key")


# --- generated once, readable by the owner only ----------------------------------------------


def test_secrets_are_generated_once_and_private(tmp_path: Path) -> None:
    settings = Settings(FOODFLOW_STATE_DIR=tmp_path)
    said: list[str] = []
    home = tool.ensure_secrets(settings, report=said.append)
    assert said == [f"secrets generated in {home} (readable by you only)"]
    first = tool.load_secrets(settings)
    assert tool.ensure_secrets(settings, report=said.append) == home
    assert len(said) == 1 and tool.load_secrets(settings) == first
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    files = [p for p in home.rglob("*") if p.is_file()]
    assert len(files) == 2 + len(tool.SERVICES)
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files)
    assert len(set(first.service_keys.values())) == len(tool.SERVICES)


def test_a_service_gets_its_own_private_key_only(generated: Settings) -> None:
    found = tool.load_secrets(generated)
    env = tool.service_env(generated, "inventory_service")
    assert set(env) == {"SERVICE_PRIVATE_KEY", "SERVICE_PUBLIC_KEYS"}
    assert env["SERVICE_PRIVATE_KEY"] == found.service_keys["inventory_service"]
    assert set(json.loads(env["SERVICE_PUBLIC_KEYS"])) == set(tool.SERVICES)
    assert "PRIVATE" not in env["SERVICE_PUBLIC_KEYS"]
    gateway = tool.service_env(generated, "gateway")
    assert json.loads(gateway["JWT_SIGNING_KEYS"]) == found.jwt_signing_keys
    assert gateway["JWT_ACTIVE_KEY_ID"] == found.jwt_active_key_id
    assert gateway["DEMO_OPERATOR_PASSWORD"] == found.demo_operator_password


def test_every_started_service_process_gets_its_secrets(
    generated: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`foodflow up`, `--scale` instances, bench and chaos restarts all start services through
    `ServiceProcess.start`: it hands each its environment."""
    spawned: dict[str, dict[str, str]] = {}

    def spawn(
        argv: list[str],
        *,
        log: Path,
        pidfile: Path,
        env: dict[str, str],
        base_env: dict[str, str] | None = None,
    ) -> int:
        spawned[argv[-1]] = env
        return 0

    monkeypatch.setattr("foodflow.tools.infra.process.spawn", spawn)
    monkeypatch.setattr("foodflow.tools.infra.process.wait_until", lambda *a, **k: None)
    for service, instance in [("order_manager", 1), ("gateway", 0)]:
        svc = ServiceProcess(service, generated, instance=instance)
        monkeypatch.setattr(svc, "is_running", lambda: False)
        monkeypatch.setattr(svc, "_port_frees", lambda within: True)
        svc.start()
    assert (
        spawned["order_manager"]["SERVICE_PRIVATE_KEY"]
        == (tool.load_secrets(generated).service_keys["order_manager"])
    )
    assert "JWT_SIGNING_KEYS" in spawned["gateway"]


def test_compose_lines_carry_every_secret_on_one_line(generated: Settings) -> None:
    lines = tool.compose_env(generated)
    names = {line.split("=", 1)[0] for line in lines}
    assert {"JWT_SIGNING_KEYS", "JWT_ACTIVE_KEY_ID", "SERVICE_PUBLIC_KEYS"} <= names
    assert {f"{s.upper()}_PRIVATE_KEY" for s in tool.SERVICES} <= names
    assert all("\n" not in line and line.count("'") == 2 for line in lines)


def test_rotation_signs_with_a_new_key_and_keeps_the_old_until_its_tokens_expire(
    generated: Settings,
) -> None:
    before = tool.load_settings(generated)
    principal = Principal(uuid4(), Role.CUSTOMER)
    old_token = issue_token(principal, before)
    new_kid = tool.rotate_jwt_key(generated)
    after = tool.load_settings(generated)
    assert after.jwt_active_key_id == new_kid != before.jwt_active_key_id
    assert jwt.get_unverified_header(issue_token(principal, after))["kid"] == new_kid
    assert read_token(old_token, after) == principal
    # Once the keys after it have been active for a token lifetime, the oldest is dropped.
    expired = generated.model_copy(update={"access_token_ttl_seconds": 0})
    tool.rotate_jwt_key(expired)
    assert set(tool.load_settings(generated).jwt_signing_keys or {}) == {
        tool.load_secrets(generated).jwt_active_key_id
    }


# --- finding 1, against the gateway ---------------------------------------------------------


@pytest.fixture
async def gateway(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_gateway(tool.load_settings(settings, "gateway"))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client,
    ):
        yield client


@pytest.mark.integration
async def test_an_admin_token_forged_with_the_published_constant_is_401(
    gateway: httpx.AsyncClient, settings: Settings
) -> None:
    claims = {"sub": str(uuid4()), "role": "admin", "exp": int(time.time()) + 31 * 365 * 86400}
    for headers in (None, {"kid": settings.jwt_active_key_id}):
        forged = jwt.encode(claims, PUBLISHED, algorithm="HS256", headers=headers)
        response = await gateway.get("/orders", headers={"authorization": f"Bearer {forged}"})
        assert response.status_code == 401, response.text


@pytest.mark.integration
async def test_the_gateway_refuses_to_start_without_its_secrets(settings: Settings) -> None:
    app = create_gateway(settings.model_copy(update={"jwt_signing_keys": None}))
    with pytest.raises(SecretRefused, match="JWT_SIGNING_KEYS"):
        async with app.router.lifespan_context(app):
            pass
