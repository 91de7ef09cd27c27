"""`foodflow couriers …`: the seeded couriers' gateway accounts, and a simulator that rides them.

**Accounts.** Every courier of the delivery service gets a gateway courier account,
`<courier_id>@foodflow.example`, whose password is generated into
`<state_dir>/secrets/couriers/<courier_id>` (0600) like the other secrets. `ensure_accounts`
creates them through the gateway's own path (`POST /couriers/accounts`, logged in as the demo
operator); an account that exists already (409) is left as it is, so it runs at every
`foodflow up`.

**Simulator.** `simulate` logs in as each seeded courier through the public API (real tokens,
renewed on a 401), asks `GET /couriers/me` for the delivery the courier carries, rides from
where the courier is to the restaurant at `COURIER_SIM_SPEED_KMH`, reports `POST
/deliveries/{id}/pickup`, rides to the customer, reports `/deliver`: the courier is free again
and the delivery service gives them the next waiting order. Every step is idempotent at the
delivery service, so a simulator restarted mid-ride only rides its leg again. A gateway that
does not answer (a restart, a 5xx) is retried with backoff and logged once per outage; a
refused step (409: the order was cancelled meanwhile) is logged and the courier asks again; a
429 waits its `Retry-After`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import typer
from pydantic import BaseModel, ValidationError

from foodflow.contracts.delivery import CarriedDelivery, CourierAssignment, GeoPoint
from foodflow.delivery_service.domain import Point, distance_km
from foodflow.platform.config import Settings, get_settings
from foodflow.platform.errors import FoodflowError
from foodflow.platform.logs import configure_logging
from foodflow.platform.retry import backoff_delay, retry_async
from foodflow.tools import http
from foodflow.tools.secrets import courier_password, courier_password_file, load_secrets

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)

EMAIL_DOMAIN = "foodflow.example"
REQUEST_TIMEOUT_SECONDS = 10.0
# Backoff while the gateway does not answer, and after a refusal no retry soon can mend.
OUTAGE_BASE_SECONDS, OUTAGE_MAX_SECONDS = 0.5, 10.0
REFUSED_BASE_SECONDS, REFUSED_MAX_SECONDS = 2.0, 60.0
# A Retry-After beyond this is not believed (a hostile or broken answer must not park us).
MAX_RETRY_AFTER_SECONDS = 60.0
# `foodflow status` counts the simulator up while it touched its heartbeat this recently.
HEARTBEAT_STALE_SECONDS = 30.0
GATEWAY_CHECK_SECONDS = 2.0
# A courier's request: a 401 (log in again) or a 429 (wait) before it gives up for a while.
CALL_ATTEMPTS = 3


def courier_email(courier_id: str) -> str:
    return f"{courier_id}@{EMAIL_DOMAIN}"


# --- the route (pure) ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Leg:
    """One ride in a straight line (over a city, a straight line is close enough)."""

    start: Point
    end: Point
    to: str  # where it ends, for the log: "the restaurant tokyo-kitchen", "the customer"

    @property
    def km(self) -> float:
        return distance_km(self.start, self.end)

    def seconds(self, speed_kmh: float) -> float:
        """How long the ride takes at `speed_kmh`."""
        return self.km / speed_kmh * 3600.0

    def position(self, fraction: float) -> Point:
        """Where the courier is after `fraction` (0…1, clamped) of the ride."""
        f = min(1.0, max(0.0, fraction))
        return Point(
            self.start.lat + (self.end.lat - self.start.lat) * f,
            self.start.lon + (self.end.lon - self.start.lon) * f,
        )


def _point(p: GeoPoint) -> Point:
    return Point(p.lat, p.lon)


def next_leg(assignment: CourierAssignment) -> Leg | None:
    """The ride before the courier's next step: to the restaurant while ASSIGNED (from where
    the courier is), to the customer once PICKED_UP; None with no delivery."""
    carried = assignment.delivery
    if carried is None:
        return None
    if carried.state == "ASSIGNED":
        return Leg(
            _point(assignment.position),
            _point(carried.pickup),
            f"the restaurant {carried.restaurant_id}",
        )
    return Leg(_point(carried.pickup), _point(carried.dropoff), "the customer")


def step_after(carried: CarriedDelivery) -> str:
    """The courier API's step at the end of the ride: `pickup`, then `deliver`."""
    return "pickup" if carried.state == "ASSIGNED" else "deliver"


# --- the gateway, as any HTTP client sees it ----------------------------------------------------


class GatewayDown(FoodflowError):
    """No answer, or a 5xx: retried with backoff until the gateway answers."""


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
    many couriers wait on it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.down_since: float | None = None

    def on_retry(self, _attempt: int, exc: BaseException, delay: float) -> None:
        if self.down_since is None:
            self.down_since = time.monotonic()
            log.warning("Gateway %s not answering (%s); couriers retry with backoff", self.url, exc)

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
        # One courier logs in at a time: a login is an argon2 verification (a core and 64 MiB
        # for a while), and ten at once would crowd out the customers' own logins.
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


# --- accounts -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CourierLogin:
    courier_id: str
    name: str
    email: str
    password: str


class SeedingFailed(FoodflowError):
    """The accounts could not be made: the reason is for the operator."""


async def ensure_accounts(gateway: Gateway, settings: Settings) -> list[CourierLogin]:
    """One courier account per courier of the delivery service, made through the gateway as
    the demo operator; existing accounts are left alone. The couriers' logins."""
    # The gateway's modules cost seconds to import (argon2, zxcvbn): only who seeds pays.
    from foodflow.gateway.schemas import CourierBoard
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
    token = str(operator.model(_TokenAnswer).access_token)
    answer = await gateway.request("GET", "/dashboard/couriers", token=token)
    if answer.status != 200:
        raise SeedingFailed(f"the couriers cannot be listed ({answer.status}: {answer.detail()})")
    board = answer.model(CourierBoard)
    if not board.delivery_service:
        raise SeedingFailed(f"the couriers cannot be listed: {board.message}")
    logins = []
    for courier in board.couriers:
        login = CourierLogin(
            courier.courier_id,
            courier.name,
            courier_email(courier.courier_id),
            courier_password(settings, courier.courier_id),
        )
        created = await gateway.request(
            "POST",
            "/couriers/accounts",
            token=token,
            body={
                "email": login.email,
                "name": login.name,
                "password": login.password,
                "courier_id": login.courier_id,
            },
        )
        if created.status == 201:
            log.info("Courier account %s created for %s", login.email, login.courier_id)
        elif created.status != 409:  # 409: it exists already
            raise SeedingFailed(
                f"the account of {login.courier_id} was refused"
                f" ({created.status}: {created.detail()})"
            )
        logins.append(login)
    return logins


class _TokenAnswer(BaseModel):
    access_token: str
    expires_in: int


# --- one simulated courier ----------------------------------------------------------------------


class Refused(FoodflowError):
    """The gateway refused what a courier asked (4xx): said once, then backed off."""


class CourierRider:
    """One courier: logs in, asks for work, rides, reports. `run` never returns."""

    def __init__(
        self, gateway: Gateway, login: CourierLogin, settings: Settings, speed_kmh: float
    ) -> None:
        self.gateway = gateway
        self.login = login
        self.settings = settings
        self.speed_kmh = speed_kmh
        self.poll = settings.courier_sim_poll_seconds
        self.token: str | None = None
        self.token_expires = 0.0
        self.refusals = 0
        self.name = f"{login.courier_id} ({login.name})"

    async def run(self) -> None:
        while True:
            try:
                await self.ride_once()
                self.refusals = 0
            except Refused as exc:
                self.refusals += 1
                delay = backoff_delay(self.refusals, REFUSED_BASE_SECONDS, REFUSED_MAX_SECONDS)
                if self.refusals == 1 or self.refusals % 10 == 0:
                    log.error("%s: %s; trying again in %.0fs", self.name, exc, delay)
                await asyncio.sleep(delay)
            except (ValidationError, ValueError) as exc:
                # An answer that is not what the API documents: not a reason to stop riding.
                log.error("%s: unexpected answer from the gateway: %s", self.name, exc)
                await asyncio.sleep(backoff_delay(1, REFUSED_BASE_SECONDS, REFUSED_MAX_SECONDS))
            except Exception:
                # A surprise in one courier must not stop the others (they share a task group).
                log.exception("%s: unexpected error; riding on", self.name)
                await asyncio.sleep(REFUSED_MAX_SECONDS)

    async def ride_once(self) -> None:
        """Ask for work; with a delivery, ride its next leg and report the step after it."""
        assignment = await self.me()
        leg, carried = next_leg(assignment), assignment.delivery
        if leg is None or carried is None:
            await asyncio.sleep(self.poll)
            return
        if not await self.ride(leg, carried):
            return  # the delivery changed under us (cancelled): ask again
        step = step_after(carried)
        answer = await self.call("POST", f"/deliveries/{carried.order_id}/{step}")
        if answer.status == 200:
            done = "picked up" if step == "pickup" else "delivered"
            log.info("%s %s order %s", self.name, done, carried.order_id)
        elif answer.status in (403, 404, 409):
            # Cancelled, or moved on by someone else meanwhile: the next ask tells what is left.
            log.info(
                "%s: %s of order %s refused (%d: %s)",
                self.name,
                step,
                carried.order_id,
                answer.status,
                answer.detail(),
            )
        else:
            raise Refused(f"{step} of order {carried.order_id}: {answer.status} {answer.detail()}")

    async def ride(self, leg: Leg, carried: CarriedDelivery) -> bool:
        """Ride `leg` at the simulator's speed, checking every poll interval that the
        delivery is still ours in the same state; False when it is not."""
        seconds = leg.seconds(self.speed_kmh)
        log.info(
            "%s rides %.2f km to %s for order %s (%.1fs)",
            self.name,
            leg.km,
            leg.to,
            carried.order_id,
            seconds,
        )
        arrive = time.monotonic() + seconds
        while (left := arrive - time.monotonic()) > 0:
            await asyncio.sleep(min(left, self.poll))
            if time.monotonic() >= arrive:
                break
            now = (await self.me()).delivery
            if now is None or (now.order_id, now.state) != (carried.order_id, carried.state):
                log.info(
                    "%s: order %s changed on the way; asking again", self.name, carried.order_id
                )
                return False
        return True

    async def me(self) -> CourierAssignment:
        answer = await self.call("GET", "/couriers/me")
        if answer.status != 200:
            raise Refused(f"GET /couriers/me answered {answer.status}: {answer.detail()}")
        return answer.model(CourierAssignment)

    async def call(self, method: str, path: str) -> Answer:
        """A request with the courier's token: logs in first when it has none (or it is about
        to expire), and once more after a 401; waits out a 429 (twice at most)."""
        answer = None
        for _ in range(CALL_ATTEMPTS):
            if self.token is None or time.monotonic() > self.token_expires:
                await self.log_in()
            answer = await self.gateway.request(method, path, token=self.token)
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
                "POST",
                "/auth/login",
                body={"email": self.login.email, "password": self.login.password},
            )
        if answer.status == 429:
            await asyncio.sleep(answer.retry_after or REFUSED_BASE_SECONDS)
            raise Refused("login throttled (429)")
        if answer.status != 200:
            hint = ""
            if answer.status == 401:
                file = courier_password_file(self.settings, self.login.courier_id)
                hint = f"; is its password the one in {file}?"
            raise Refused(f"login as {self.login.email} refused ({answer.status}){hint}")
        token = answer.model(_TokenAnswer)
        self.token = token.access_token
        # Renewed a minute early, so no request travels with a token about to lapse.
        self.token_expires = time.monotonic() + max(0, token.expires_in - 60)
        log.info("%s logged in as %s", self.name, self.login.email)


# --- the simulator ------------------------------------------------------------------------------


async def simulate(
    settings: Settings,
    *,
    speed_kmh: float | None = None,
    only: frozenset[str] = frozenset(),
    heartbeat: Path | None = None,
) -> None:
    """Seed the accounts (retrying until the gateway and the delivery service can), then ride
    every courier (or those in `only`) until cancelled."""
    speed = speed_kmh or settings.courier_sim_speed_kmh
    url = settings.service_url(settings.gateway_port)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(timeout=timeout) as session, asyncio.TaskGroup() as tasks:
        if heartbeat is not None:
            tasks.create_task(_beat(heartbeat, settings.courier_sim_poll_seconds))
        gateway = Gateway(session, url)
        logins = await _seeded(gateway, settings)
        chosen = [c for c in logins if not only or c.courier_id in only]
        log.info(
            "Courier simulator: %d courier(s) ride at %g km/h through %s",
            len(chosen),
            speed,
            url,
        )
        for login in chosen:
            rider = CourierRider(gateway, login, settings, speed)
            tasks.create_task(rider.run(), name=login.courier_id)


async def _seeded(gateway: Gateway, settings: Settings) -> list[CourierLogin]:
    attempt = 0
    while True:
        attempt += 1
        try:
            return await ensure_accounts(gateway, settings)
        except (SeedingFailed, ValidationError) as exc:
            delay = backoff_delay(attempt, REFUSED_BASE_SECONDS, REFUSED_MAX_SECONDS)
            if attempt == 1 or attempt % 10 == 0:
                log.error("Courier accounts not ready: %s; trying again in %.0fs", exc, delay)
            await asyncio.sleep(delay)


async def _beat(path: Path, every: float) -> None:
    """Touch `path` while the event loop runs: `foodflow status` reads its age."""
    await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
    while True:
        await asyncio.to_thread(path.touch)
        await asyncio.sleep(every)


def heartbeat_fresh(path: Path) -> bool:
    try:
        return time.time() - path.stat().st_mtime < HEARTBEAT_STALE_SECONDS
    except OSError:
        return False


def run_supervised(heartbeat: Path) -> None:
    """The simulator as `foodflow up` runs it (`foodflow.tools.supervisor courier_simulator`)."""
    settings = get_settings()
    configure_logging("courier_simulator", settings.log_level, settings.log_format)
    asyncio.run(simulate(settings, heartbeat=heartbeat))


# --- the commands -------------------------------------------------------------------------------

couriers_app = typer.Typer(
    help="The seeded couriers: their accounts, and a simulator that rides them."
)


def _run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


@couriers_app.command("simulate")
def simulate_command(
    speed: float | None = typer.Option(
        None, min=0.1, max=1e6, help="km/h (default: COURIER_SIM_SPEED_KMH, 3,600)."
    ),
    courier: list[str] = typer.Option([], help="Ride only this courier id (repeatable)."),
) -> None:
    """Log in as the seeded couriers and deliver what they are assigned: ride to the
    restaurant, pick up, ride to the customer, deliver (until Ctrl-C). `foodflow up` runs one
    already unless COURIER_SIMULATOR=false or --no-couriers: run a second only for couriers it
    does not ride."""
    settings = get_settings()
    _require_gateway(settings)
    configure_logging("courier_simulator", settings.log_level, "console")
    _run(lambda: simulate(settings, speed_kmh=speed, only=frozenset(courier)))


@couriers_app.command("accounts")
def accounts_command() -> None:
    """Create the seeded couriers' gateway accounts if missing; list them and where each
    password is."""
    settings = get_settings()
    _require_gateway(settings)

    async def main() -> None:
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            gateway = Gateway(session, settings.service_url(settings.gateway_port))
            logins = await asyncio.wait_for(ensure_accounts(gateway, settings), 60)
        for login in logins:
            file = courier_password_file(settings, login.courier_id)
            typer.echo(f"{login.email:<32} {login.name:<10} password in {file}")

    try:
        _run(main)
    except SeedingFailed as exc:
        typer.echo(f"courier accounts not made: {exc}", err=True)
        raise typer.Exit(1) from None
    except TimeoutError:
        typer.echo("the gateway is not answering — is the system up? `foodflow status`", err=True)
        raise typer.Exit(3) from None


def _require_gateway(settings: Settings) -> None:
    """Exit 3 with one line when the gateway does not answer at all: a command started while
    the system is down says so at once instead of retrying (the supervised simulator waits)."""
    url = settings.service_url(settings.gateway_port)
    try:
        http.get(url + "/health", timeout=GATEWAY_CHECK_SECONDS)
    except http.HTTP_ERRORS:
        typer.echo(
            f"the gateway at {url} is not answering — is the system up? `foodflow status`",
            err=True,
        )
        raise typer.Exit(3) from None


def ensure_accounts_now(settings: Settings, timeout: float = 60.0) -> list[CourierLogin]:
    """`ensure_accounts` from blocking code (`foodflow up`)."""

    async def main() -> list[CourierLogin]:
        client_timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
        async with aiohttp.ClientSession(timeout=client_timeout) as session:
            gateway = Gateway(session, settings.service_url(settings.gateway_port))
            return await asyncio.wait_for(ensure_accounts(gateway, settings), timeout)

    return asyncio.run(main())
