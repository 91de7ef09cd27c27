"""Abuse limits (issue 12, findings 4 and 5): the client address, login and sign-up throttling,
no account enumeration by answer or by time, request bodies bounded, hashing off the loop."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from foodflow.gateway.adapters import _address_key
from foodflow.gateway.deps import client_address
from foodflow.platform import serve
from foodflow.platform.config import Settings

from .conftest import STRONG_PASSWORD, an_address, an_email

pytestmark = pytest.mark.integration

MakeClient = Callable[[str], httpx.AsyncClient]


async def sign_up(client: httpx.AsyncClient, email: str, password: str = STRONG_PASSWORD) -> None:
    answer = await client.post("/users", json={"email": email, "name": "Sec", "password": password})
    assert answer.status_code == 202, answer.text


def log_in(client: httpx.AsyncClient, email: str, password: str, **kw: Any) -> Any:
    return client.post("/auth/login", json={"email": email, "password": password}, **kw)


# --- the client address ----------------------------------------------------------------------


def test_uvicorn_is_not_told_to_believe_forwarded_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    """uvicorn's default trusts X-Forwarded-For from 127.0.0.1: it rewrote the client address
    before the gateway saw it, and each forged header was a fresh address to the throttle."""
    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: seen.update(options))
    monkeypatch.setattr(serve, "configure_logging", lambda *args, **kw: None)
    serve.serve("gateway", lambda settings: FastAPI())
    assert seen["proxy_headers"] is False


def test_forwarded_for_counts_only_behind_a_trusted_proxy() -> None:
    proxies = Settings(TRUSTED_PROXIES="10.0.0.0/8, 192.0.2.7").trusted_proxies
    # No trusted proxy: the socket peer, whatever the header says.
    assert client_address("127.0.0.1", ["203.0.113.9"], []) == "127.0.0.1"
    assert client_address("198.51.100.1", ["203.0.113.9"], proxies) == "198.51.100.1"
    # Behind trusted proxies: the right-most hop that is not one; the left is client-written.
    forged = ["1.1.1.1, 203.0.113.9, 10.1.2.3"]
    assert client_address("192.0.2.7", forged, proxies) == "203.0.113.9"
    assert client_address("10.9.9.9", ["1.1.1.1", "203.0.113.9"], proxies) == "203.0.113.9"
    assert client_address("10.9.9.9", ["garbage"], proxies) == "garbage"
    assert client_address("10.9.9.9", [], proxies) == "10.9.9.9"
    # A proxy seen on a dual-stack socket as an IPv4-mapped address is still that proxy.
    assert client_address("::ffff:10.1.2.3", ["203.0.113.9"], proxies) == "203.0.113.9"


def test_ipv4_clients_on_a_dual_stack_socket_keep_a_throttle_key_each() -> None:
    # Mapped IPv4 addresses (::ffff:a.b.c.d) all sit in ::/64: keyed by /64 they would share
    # one bucket, and twenty bad logins from anyone would lock out every IPv4 client.
    assert _address_key("::ffff:198.51.100.1") == "198.51.100.1"
    assert _address_key("::ffff:198.51.100.1") != _address_key("::ffff:198.51.100.2")
    assert _address_key("2001:db8::1") == _address_key("2001:db8::2") == "2001:db8::/64"


async def test_forged_forwarded_for_does_not_escape_the_login_throttle(
    client_from: MakeClient,
) -> None:
    email = an_email()
    async with client_from("127.0.0.1") as client:
        codes = [
            (
                await log_in(
                    client, email, "wrong guess", headers={"X-Forwarded-For": an_address()}
                )
            ).status_code
            for _ in range(7)
        ]
    assert codes[:5] == [401] * 5 and codes[5:] == [429, 429]


# --- throttling ---------------------------------------------------------------------------------


async def test_wrong_passwords_are_throttled_per_account_across_addresses(
    client_from: MakeClient,
) -> None:
    email = an_email()
    async with client_from(an_address()) as client:
        await sign_up(client, email)
    codes = []
    for _ in range(6):
        async with client_from(an_address()) as client:
            codes.append((await log_in(client, email, "not the password")).status_code)
    assert codes == [401] * 5 + [429]
    async with client_from(an_address()) as client:
        refused = await log_in(client, email, STRONG_PASSWORD)  # even the right one, for now
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60


async def test_spraying_30_accounts_from_one_address_is_slowed(
    client_from: MakeClient, infra: Settings
) -> None:
    async with client_from(an_address()) as client:
        answers = [await log_in(client, an_email(), "Summer2026!!") for _ in range(30)]
    codes = [answer.status_code for answer in answers]
    allowed = infra.login_attempts_per_address_per_minute
    assert codes == [401] * allowed + [429] * (30 - allowed)
    assert int(answers[-1].headers["Retry-After"]) >= 1


async def test_sign_ups_are_throttled_per_address(client_from: MakeClient, infra: Settings) -> None:
    async with client_from(an_address()) as client:
        allowed = infra.signups_per_address_per_minute
        for _ in range(allowed):
            await sign_up(client, an_email())
        refused = await client.post(
            "/users", json={"email": an_email(), "name": "S", "password": STRONG_PASSWORD}
        )
    assert refused.status_code == 429 and "Retry-After" in refused.headers


# --- no account enumeration -------------------------------------------------------------------


async def test_sign_up_answers_the_same_for_a_taken_email(client_from: MakeClient) -> None:
    email = an_email()
    async with client_from(an_address()) as client:
        first = await client.post(
            "/users", json={"email": email, "name": "A", "password": STRONG_PASSWORD}
        )
        again = await client.post(
            "/users", json={"email": email.upper(), "name": "B", "password": "orbit violet staple"}
        )
    assert (first.status_code, first.json()) == (again.status_code, again.json())
    assert first.status_code == 202
    assert email not in again.text.lower()
    async with client_from(an_address()) as client:
        # The account keeps its first owner's password.
        assert (await log_in(client, email, STRONG_PASSWORD)).status_code == 200
        assert (await log_in(client, email, "orbit violet staple")).status_code == 401


async def _login_seconds(client_from: MakeClient, email: str) -> float:
    async with client_from(an_address()) as client:
        started = time.perf_counter()
        answer = await log_in(client, email, "not the password")
        elapsed = time.perf_counter() - started
    assert answer.status_code == 401, answer.text
    return elapsed


async def test_a_known_and_an_unknown_email_take_the_same_time(client_from: MakeClient) -> None:
    known = an_email()
    async with client_from(an_address()) as client:
        await sign_up(client, known)
    await _login_seconds(client_from, an_email())  # warm-up: the dummy hash is made once
    tries = 4  # within the per-account limit of the known email
    known_times, unknown_times = [], []
    for _ in range(tries):  # interleaved, so that a busy moment of the machine hits both
        known_times.append(await _login_seconds(client_from, known))
        unknown_times.append(await _login_seconds(client_from, an_email()))
    slow, fast = sorted([statistics.median(known_times), statistics.median(unknown_times)])
    # Before: 247 ms against 32 ms (7.7x). Both now verify an argon2 hash.
    assert slow / fast < 2.5, (known_times, unknown_times)


# --- resources ---------------------------------------------------------------------------------


async def _health_latencies(client: httpx.AsyncClient, until: asyncio.Event) -> list[float]:
    """Seconds between consecutive /health answers, asked every 20 ms: in-process, a blocked
    event loop shows as a long gap (the request itself may run between two blocking calls)."""
    gaps = []
    last = time.perf_counter()
    while not until.is_set():
        answer = await client.get("/health")
        assert answer.status_code == 200
        now = time.perf_counter()
        gaps.append(now - last)
        last = now
        await asyncio.sleep(0.02)
    return gaps


async def test_a_10_mb_body_is_refused_at_once_and_health_answers(client_from: MakeClient) -> None:
    body = b'{"email": "big@example.com", "name": "' + b"x" * 10_000_000 + b'", "password": "p"}'
    done = asyncio.Event()
    async with client_from(an_address()) as attacker, client_from(an_address()) as probe:
        watch = asyncio.create_task(_health_latencies(probe, done))
        await asyncio.sleep(0.05)
        started = time.perf_counter()
        answer = await attacker.post(
            "/users", content=body, headers={"content-type": "application/json"}
        )
        elapsed = time.perf_counter() - started
        await asyncio.sleep(0.1)
        done.set()
        latencies = await watch
    assert answer.status_code == 413, answer.text[:200]
    assert elapsed < 1.0
    assert max(latencies) < 0.5, latencies


async def test_concurrent_sign_ups_do_not_stall_health(client_from: MakeClient) -> None:
    """20 sign-ups at once (argon2id, 64 MiB each) are hashed in worker threads, a few at a
    time: before, on the event loop, they pushed /health's median to 2.3 s."""
    done = asyncio.Event()

    async def one() -> int:
        async with client_from(an_address()) as client:
            answer = await client.post(
                "/users", json={"email": an_email(), "name": "C", "password": STRONG_PASSWORD}
            )
            return answer.status_code

    async with client_from(an_address()) as probe:
        watch = asyncio.create_task(_health_latencies(probe, done))
        codes = await asyncio.gather(*(one() for _ in range(20)))
        done.set()
        latencies = await watch
    assert codes == [202] * 20
    assert statistics.median(latencies) < 0.2, latencies
    assert max(latencies) < 1.0, latencies
