"""The gateway's public API as the simulator's actors use it (`foodflow.tools.couriers`,
`foodflow.tools.kitchens`): requests retried through an outage, one account's logins renewed
on a 401, 429s waited out, and the seeding of the demo accounts as the demo operator.

A gateway that does not answer (a restart, a 5xx) is retried with backoff and logged once per
outage, however many actors wait on it; a refusal (4xx) is the caller's to handle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from pydantic import BaseModel, ValidationError

from foodflow.platform.config import Settings
from foodflow.platform.errors import FoodflowError
from foodflow.platform.retry import backoff_delay, retry_async
from foodflow.tools.secrets import load_secrets

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)

# The seeded accounts' domain: `<courier_id>@foodflow.example`, `<restaurant_id>@…`.
EMAIL_DOMAIN = "foodflow.example"
REQUEST_TIMEOUT_SECONDS = 10.0
# Backoff while the gateway does not answer, and after a refusal no retry soon can mend.
OUTAGE_BASE_SECONDS, OUTAGE_MAX_SECONDS = 0.5, 10.0
REFUSED_BASE_SECONDS, REFUSED_MAX_SECONDS = 2.0, 60.0
# A Retry-After beyond this is not believed (a hostile or broken answer must not park us).
MAX_RETRY_AFTER_SECONDS = 60.0
# An account's request: a 401 (log in again) or a 429 (wait) before it gives up for a while.
CALL_ATTEMPTS = 3


def seeded_email(account_id: str) -> str:
    """The gateway account of a seeded courier or restaurant."""
    return f"{account_id}@{EMAIL_DOMAIN}"


class GatewayDown(FoodflowError):
    """No answer, or a 5xx: retried with backoff until the gateway answers."""


class Refused(FoodflowError):
    """The gateway refused what an actor asked (4xx): said once, then backed off."""


class SeedingFailed(FoodflowError):
    """The accounts could not be made: the reason is for the operator."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    retry_after: float | None = None

    def model(self, model: type[M]) -> M:
        return model.model_validate_json(self.body)

    def detail(self) -> str:
        text = self.body[:300].decode("utf-8", errors="replace")
        return text.replace("\n", " ")


class Outage:
    """Says once that the gateway stopped answering, and once that it answers again, however
    many actors wait on it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.down_since: float | None = None

    def on_retry(self, _attempt: int, exc: BaseException, delay: float) -> None:
        if self.down_since is None:
            self.down_since = time.monotonic()
            log.warning("Gateway %s not answering (%s); retrying with backoff", self.url, exc)

    def answered(self) -> None:
        if self.down_since is not None:
            log.info(
                "Gateway %s answers again after %.1fs", self.url, time.monotonic() - self.down_since
            )
            self.down_since = None


class Gateway:
    """Requests to the gateway's public API, each retried until it gets an answer below 500."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url
        self.outage = Outage(url)
        # One account logs in at a time: a login is an argon2 verification (a core and 64 MiB
        # for a while), and a dozen at once would crowd out the customers' own logins.
        self.logins = asyncio.Lock()

    async def request(
        self, method: str, path: str, *, token: str | None = None, body: Any = None
    ) -> Answer:
        headers = {"Authorization": f"Bearer {token}"} if token else {}

        async def attempt() -> Answer:
            try:
                async with self.session.request(
                    method, self.url + path, json=body, headers=headers, allow_redirects=False
                ) as response:
                    content = await response.read()
                    status, retry_after = response.status, response.headers.get("Retry-After")
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise GatewayDown(f"{type(exc).__name__}: {exc}") from None
            if status >= 500:
                raise GatewayDown(f"{method} {path} answered {status}")
            self.outage.answered()
            return Answer(status, content, _seconds(retry_after))

        return await retry_async(
            attempt,
            retry_on=(GatewayDown,),
            attempts=None,
            base_delay=OUTAGE_BASE_SECONDS,
            max_delay=OUTAGE_MAX_SECONDS,
            on_retry=self.outage.on_retry,
        )


def _seconds(retry_after: str | None) -> float | None:
    if retry_after is None:
        return None
    try:
        return min(MAX_RETRY_AFTER_SECONDS, max(0.0, float(retry_after)))
    except ValueError:
        return None


class TokenAnswer(BaseModel):
    access_token: str
    expires_in: int


class Session:
    """One account's requests, with its own bearer token: it logs in first when it has none
    (or it is about to expire), and once more after a 401; a 429 is waited out (CALL_ATTEMPTS
    answers at most). `password_file` is named when the password is refused."""

    def __init__(
        self,
        gateway: Gateway,
        email: str,
        password: str,
        *,
        name: str,
        password_file: Path,
        poll: float,
    ) -> None:
        self.gateway = gateway
        self.email = email
        self.password = password
        self.name = name
        self.password_file = password_file
        self.poll = poll
        self.token: str | None = None
        self.token_expires = 0.0

    async def call(self, method: str, path: str, body: Any = None) -> Answer:
        answer = None
        for _ in range(CALL_ATTEMPTS):
            if self.token is None or time.monotonic() > self.token_expires:
                await self.log_in()
            answer = await self.gateway.request(method, path, token=self.token, body=body)
            if answer.status == 429:
                await asyncio.sleep(answer.retry_after or self.poll)
            elif answer.status == 401:
                self.token = None  # expired or signed with a retired key: log in again
            else:
                return answer
        assert answer is not None
        raise Refused(f"{method} {path} answered {answer.status} {CALL_ATTEMPTS} times")

    async def log_in(self) -> None:
        async with self.gateway.logins:
            answer = await self.gateway.request(
                "POST", "/auth/login", body={"email": self.email, "password": self.password}
            )
        if answer.status == 429:
            await asyncio.sleep(answer.retry_after or REFUSED_BASE_SECONDS)
            raise Refused("login throttled (429)")
        if answer.status != 200:
            hint = ""
            if answer.status == 401:
                hint = f"; is its password the one in {self.password_file}?"
            raise Refused(f"login as {self.email} refused ({answer.status}){hint}")
        token = answer.model(TokenAnswer)
        self.token = token.access_token
        # Renewed a minute early, so no request travels with a token about to lapse.
        self.token_expires = time.monotonic() + max(0, token.expires_in - 60)
        log.info("%s logged in as %s", self.name, self.email)


async def keep_going(name: str, once: Callable[[], Awaitable[None]]) -> None:
    """Run an actor's `once` for ever: a refusal is said (the first, then every tenth) and
    backed off; an answer that is not what the API documents, or any surprise, is logged and
    waited out. One actor's trouble never stops the others (they share a task group)."""
    refusals = 0
    while True:
        try:
            await once()
            refusals = 0
        except Refused as exc:
            refusals += 1
            delay = backoff_delay(refusals, REFUSED_BASE_SECONDS, REFUSED_MAX_SECONDS)
            if refusals == 1 or refusals % 10 == 0:
                log.error("%s: %s; trying again in %.0fs", name, exc, delay)
            await asyncio.sleep(delay)
        except (ValidationError, ValueError) as exc:
            log.error("%s: unexpected answer from the gateway: %s", name, exc)
            await asyncio.sleep(backoff_delay(1, REFUSED_BASE_SECONDS, REFUSED_MAX_SECONDS))
        except Exception:
            log.exception("%s: unexpected error; going on", name)
            await asyncio.sleep(REFUSED_MAX_SECONDS)


async def operator_token(gateway: Gateway, settings: Settings) -> str:
    """A bearer token of the demo operator, who makes the seeded accounts."""
    # The gateway's modules cost seconds to import (argon2, zxcvbn): only who seeds pays.
    from foodflow.gateway.services import DEMO_OPERATOR_EMAIL

    operator = await gateway.request(
        "POST",
        "/auth/login",
        body={
            "email": DEMO_OPERATOR_EMAIL,
            "password": load_secrets(settings).demo_operator_password,
        },
    )
    if operator.status != 200:
        raise SeedingFailed(
            f"the demo operator cannot log in ({operator.status}: {operator.detail()})"
        )
    return operator.model(TokenAnswer).access_token


async def create_account(
    gateway: Gateway, token: str, path: str, body: dict[str, str], what: str
) -> bool:
    """Make one seeded account through the operators' `path`; False when it exists already
    (409: left as it is). SeedingFailed on any other refusal."""
    created = await gateway.request("POST", path, token=token, body=body)
    if created.status == 409:
        return False
    if created.status != 201:
        raise SeedingFailed(
            f"the account of {what} was refused ({created.status}: {created.detail()})"
        )
    return True


@contextlib.asynccontextmanager
async def connected(settings: Settings) -> AsyncIterator[Gateway]:
    """The gateway of `settings` over a client session of its own, closed after."""
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        yield Gateway(session, settings.service_url(settings.gateway_port))
