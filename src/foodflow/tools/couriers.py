"""`foodflow couriers …`: the seeded couriers' gateway accounts, and the demo's simulator, which
rides them and plays every seeded restaurant's kitchen (`foodflow.tools.kitchens`).

**Accounts.** Every courier of the delivery service gets a gateway courier account,
`<courier_id>@foodflow.example`, whose password is generated into
`<state_dir>/secrets/couriers/<courier_id>` (0600) like the other secrets. `ensure_accounts`
creates them through the gateway's own path (`POST /couriers/accounts`, logged in as the demo
operator); an account that exists already (409) is left as it is, so it runs at every
`foodflow up`. The restaurants' staff accounts are made the same way (`kitchens`).

**Simulator.** `simulate` logs in as each seeded courier through the public API (real tokens,
renewed on a 401), asks `GET /couriers/me` for the delivery the courier carries, rides from
where the courier is to the restaurant at `COURIER_SIM_SPEED_KMH`, reports `POST
/deliveries/{id}/arrive`, waits at the counter until the kitchen says the food is ready, reports
`/pickup`, rides to the customer, reports `/deliver`: the courier is free again and the
delivery service gives them the next order. `foodflow up` tells the delivery service the same
speed (`COURIER_SPEED_KMH`), so that the courier it sends for the kitchen's ready-by time rides
in as planned. Every step is idempotent at the delivery service, so a simulator restarted
mid-ride only rides its leg again. A refused step (409: the order was cancelled meanwhile) is
logged and the courier asks again; the gateway's outages and 429s are `gateway_api`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError

from foodflow.contracts.delivery import CarriedDelivery, CourierAssignment, GeoPoint
from foodflow.delivery_service.domain import Point, distance_km
from foodflow.platform.config import Settings, get_settings
from foodflow.platform.logs import configure_logging
from foodflow.platform.retry import backoff_delay
from foodflow.tools import http, kitchens
from foodflow.tools.gateway_api import (
    REFUSED_BASE_SECONDS,
    REFUSED_MAX_SECONDS,
    Gateway,
    Refused,
    SeedingFailed,
    Session,
    connected,
    create_account,
    keep_going,
    operator_token,
    seeded_email,
)
from foodflow.tools.secrets import (
    courier_password,
    courier_password_file,
    restaurant_password_file,
)

log = logging.getLogger(__name__)

# `foodflow status` counts the simulator up while it touched its heartbeat this recently.
HEARTBEAT_STALE_SECONDS = 30.0
GATEWAY_CHECK_SECONDS = 2.0
# At the counter before the ready-by time the courier asks again then; after it (the kitchen
# is late, or its word is on its way) this often.
COUNTER_POLL_SECONDS = 0.5
# How long `foodflow up` and `foodflow couriers accounts` give the seeding.
SEEDING_TIMEOUT_SECONDS = 60.0


def courier_email(courier_id: str) -> str:
    return seeded_email(courier_id)


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


@dataclass(frozen=True)
class Move:
    """What a courier does next for the delivery they carry: ride `leg` (if any), then report
    `step` (`arrive`, `pickup`, `deliver`); no step: wait at the counter for the food."""

    leg: Leg | None
    step: str | None


def next_move(assignment: CourierAssignment) -> Move | None:
    """The courier's next move; None with no delivery. ASSIGNED: ride from where the courier
    is to the restaurant and say so (`arrive`), then wait until the food is ready and `pickup`;
    PICKED_UP: ride to the customer and `deliver`."""
    carried = assignment.delivery
    if carried is None:
        return None
    if carried.state == "PICKED_UP":
        return Move(Leg(_point(carried.pickup), _point(carried.dropoff), "the customer"), "deliver")
    if carried.arrived_at is None:
        restaurant = f"the restaurant {carried.restaurant_id}"
        return Move(Leg(_point(assignment.position), _point(carried.pickup), restaurant), "arrive")
    return Move(None, "pickup" if carried.food_ready else None)


def counter_wait(carried: CarriedDelivery, now: datetime, poll: float) -> float:
    """How long a courier at the counter waits before asking again whether the food is ready:
    until the ready-by time (at most `poll`), then `COUNTER_POLL_SECONDS` at a time."""
    if carried.ready_by is None:
        return poll
    until_ready = (carried.ready_by - now).total_seconds()
    return min(poll, max(COUNTER_POLL_SECONDS, until_ready))


def arrival_note(carried: CarriedDelivery, now: datetime) -> str:
    """How the courier's arrival fell against the kitchen's ready-by time, for the log."""
    if carried.ready_by is None:
        return "no ready-by time yet"
    early = (carried.ready_by - now).total_seconds()
    return f"{abs(early):.1f}s {'before' if early >= 0 else 'after'} the ready-by time"


# --- accounts -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CourierLogin:
    courier_id: str
    name: str
    email: str
    password: str


async def ensure_accounts(gateway: Gateway, settings: Settings) -> list[CourierLogin]:
    """One courier account per courier of the delivery service, made through the gateway as
    the demo operator; existing accounts are left alone. The couriers' logins."""
    from foodflow.gateway.schemas import CourierBoard  # seconds to import: only who seeds pays

    token = await operator_token(gateway, settings)
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
        body = {
            "email": login.email,
            "name": login.name,
            "password": login.password,
            "courier_id": login.courier_id,
        }
        if await create_account(gateway, token, "/couriers/accounts", body, login.courier_id):
            log.info("Courier account %s created for %s", login.email, login.courier_id)
        logins.append(login)
    return logins


# --- one simulated courier ----------------------------------------------------------------------


class CourierRider:
    """One courier: logs in, asks for work, rides, reports. `run` never returns."""

    def __init__(
        self, gateway: Gateway, login: CourierLogin, settings: Settings, speed_kmh: float
    ) -> None:
        self.login = login
        self.settings = settings
        self.speed_kmh = speed_kmh
        self.poll = settings.courier_sim_poll_seconds
        self.name = f"{login.courier_id} ({login.name})"
        self.session = Session(
            gateway,
            login.email,
            login.password,
            name=self.name,
            password_file=courier_password_file(settings, login.courier_id),
            poll=self.poll,
        )

    async def run(self) -> None:
        await keep_going(self.name, self.ride_once)

    async def ride_once(self) -> None:
        """Ask for work; with a delivery, make its next move: ride, then report the step after
        it (or wait at the counter)."""
        assignment = await self.me()
        move, carried = next_move(assignment), assignment.delivery
        if move is None or carried is None:
            await asyncio.sleep(self.poll)
            return
        if move.leg is not None and not await self.ride(move.leg, carried):
            return  # the delivery changed under us (cancelled): ask again
        if move.step is None:
            await asyncio.sleep(counter_wait(carried, datetime.now(UTC), self.poll))
            return
        answer = await self.session.call("POST", f"/deliveries/{carried.order_id}/{move.step}")
        if answer.status == 200:
            self._said(move.step, carried)
        elif answer.status in (403, 404, 409):
            # Cancelled, or moved on by someone else meanwhile: the next ask tells what is left.
            log.info(
                "%s: %s of order %s refused (%d: %s)",
                self.name,
                move.step,
                carried.order_id,
                answer.status,
                answer.detail(),
            )
            await asyncio.sleep(self.poll)
        else:
            raise Refused(
                f"{move.step} of order {carried.order_id}: {answer.status} {answer.detail()}"
            )

    def _said(self, step: str, carried: CarriedDelivery) -> None:
        if step == "arrive":
            log.info(
                "%s at %s for order %s (%s)",
                self.name,
                carried.restaurant_name,
                carried.order_id,
                arrival_note(carried, datetime.now(UTC)),
            )
        else:
            done = "picked up" if step == "pickup" else "delivered"
            log.info("%s %s order %s", self.name, done, carried.order_id)

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
        answer = await self.session.call("GET", "/couriers/me")
        if answer.status != 200:
            raise Refused(f"GET /couriers/me answered {answer.status}: {answer.detail()}")
        return answer.model(CourierAssignment)


# --- the simulator ------------------------------------------------------------------------------


async def simulate(
    settings: Settings,
    *,
    speed_kmh: float | None = None,
    only: frozenset[str] = frozenset(),
    heartbeat: Path | None = None,
    kitchens_too: bool = True,
) -> None:
    """Seed the accounts (retrying until the gateway and the services behind it can), then
    ride every courier (or those in `only`) and, with `kitchens_too`, play every seeded
    restaurant's staff, until cancelled."""
    speed = speed_kmh or settings.courier_sim_speed_kmh
    async with connected(settings) as gateway, asyncio.TaskGroup() as tasks:
        if heartbeat is not None:
            tasks.create_task(_beat(heartbeat, settings.courier_sim_poll_seconds))
        if kitchens_too:
            tasks.create_task(kitchens.run_kitchens(gateway, settings), name="kitchens")
        logins = await _seeded(gateway, settings)
        chosen = [c for c in logins if not only or c.courier_id in only]
        log.info(
            "Courier simulator: %d courier(s) ride at %g km/h through %s",
            len(chosen),
            speed,
            gateway.url,
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
    help="The seeded couriers and restaurants: their accounts, and the simulator that rides"
    " the couriers (and plays the kitchens)."
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
    kitchens_too: bool = typer.Option(
        False, "--kitchens/--no-kitchens", help="Also play the restaurants' staff."
    ),
) -> None:
    """Log in as the seeded couriers and deliver what they are assigned: ride to the
    restaurant, wait for the food, pick up, ride to the customer, deliver (until Ctrl-C).
    `foodflow up` runs one already, kitchens included, unless COURIER_SIMULATOR=false or
    --no-couriers: run a second only for couriers (or kitchens) it does not play."""
    settings = get_settings()
    _require_gateway(settings)
    configure_logging("courier_simulator", settings.log_level, "console")
    _run(
        lambda: simulate(
            settings, speed_kmh=speed, only=frozenset(courier), kitchens_too=kitchens_too
        )
    )


@couriers_app.command("accounts")
def accounts_command() -> None:
    """Create the seeded couriers' and restaurants' gateway accounts if missing; list them and
    where each password is."""
    settings = get_settings()
    _require_gateway(settings)

    async def main() -> None:
        couriers, staff = await seed_all(settings)
        for login in couriers:
            file = courier_password_file(settings, login.courier_id)
            typer.echo(f"{login.email:<36} {login.name:<16} password in {file}")
        for staff_login in staff:
            file = restaurant_password_file(settings, staff_login.restaurant_id)
            typer.echo(f"{staff_login.email:<36} {staff_login.name:<16} password in {file}")

    try:
        _run(main)
    except SeedingFailed as exc:
        typer.echo(f"accounts not made: {exc}", err=True)
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


async def seed_all(
    settings: Settings, *, couriers: bool = True, timeout: float = SEEDING_TIMEOUT_SECONDS
) -> tuple[list[CourierLogin], list[kitchens.StaffLogin]]:
    """Every seeded restaurant's staff account and (with `couriers`) every seeded courier's,
    made if missing, within `timeout` (TimeoutError after)."""
    async with connected(settings) as gateway, asyncio.timeout(timeout):
        staff = await kitchens.ensure_staff_accounts(gateway, settings)
        riders = await ensure_accounts(gateway, settings) if couriers else []
    return riders, staff
