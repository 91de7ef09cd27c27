"""The seeded restaurants' staff accounts, and the simulator's kitchens, which play that staff.

**Accounts.** Every restaurant of the restaurant service gets a staff account,
`<restaurant_id>@foodflow.example`, whose password is generated into
`<state_dir>/secrets/restaurants/<restaurant_id>` (0600), made through the gateway's own path
(`POST /restaurants/accounts`, as the demo operator) at every `foodflow up` (an account that
exists is left alone), like the couriers' (`foodflow.tools.couriers`).

**Kitchens.** The courier simulator also logs in as each restaurant's staff (except those listed
in `KITCHEN_SIM_SILENT`, which never answer: their orders time out) and polls its open orders
(`GET /restaurant/orders`): a pending order is accepted, to be ready in the kitchen's suggested
time scaled to the demo (`KITCHEN_SIM_SECONDS_PER_MINUTE` real seconds per minute), or, for a
`KITCHEN_SIM_REJECT_SHARE` of the orders, rejected as KITCHEN_BUSY; an accepted order is
prepared at once and reported ready when its ready-by time comes. Every step is idempotent at
the restaurant service; a 404 or 409 (the order was cancelled, or timed out) is logged and the
kitchen looks again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ValidationError

from foodflow.contracts.orders import utcnow
from foodflow.contracts.restaurant import MAX_READY_IN_MINUTES, Tickets, TicketState, TicketView
from foodflow.platform.config import Settings
from foodflow.platform.retry import backoff_delay
from foodflow.tools.gateway_api import (
    REFUSED_BASE_SECONDS,
    REFUSED_MAX_SECONDS,
    Gateway,
    Refused,
    SeedingFailed,
    Session,
    create_account,
    keep_going,
    operator_token,
    seeded_email,
)
from foodflow.tools.secrets import restaurant_password, restaurant_password_file

log = logging.getLogger(__name__)

# The reason a simulated kitchen gives when it says no.
SIMULATED_REJECTION = "KITCHEN_BUSY"
# After taking steps the kitchen looks again this soon (the answers moved its orders on).
AFTER_STEPS_SECONDS = 0.1


# --- the kitchen's decisions (pure) -------------------------------------------------------------


@dataclass(frozen=True)
class KitchenStep:
    """One step a kitchen takes: `accept`, `reject`, `prepare` or `ready` of an order, with
    its body."""

    order_id: UUID
    step: str
    body: dict[str, Any]


def rejects(order_id: UUID, share: float) -> bool:
    """Whether the simulated kitchen says no to this order: `share` of the orders, the same
    answer for one order every time (a restarted simulator decides alike)."""
    return share > 0 and (order_id.int % 10_000) / 10_000 < share


def ready_in_minutes(ticket: TicketView, seconds_per_minute: float) -> float:
    """The kitchen's suggested time, in the demo's time: each minute lasts `seconds_per_minute`
    real seconds (0.5: a 10-minute dish is ready in 5 s)."""
    minutes = ticket.suggested_ready_in_minutes * seconds_per_minute / 60.0
    return round(min(MAX_READY_IN_MINUTES, max(0.0, minutes)), 4)


def kitchen_steps(
    tickets: Iterable[TicketView], now: datetime, *, reject_share: float, seconds_per_minute: float
) -> list[KitchenStep]:
    """What the kitchen does now: answer each pending order (accept, or reject a share of
    them), start cooking what it accepted, and report ready what is due."""
    steps = []
    for ticket in tickets:
        if ticket.state is TicketState.PENDING:
            if rejects(ticket.order_id, reject_share):
                body = {"reason": SIMULATED_REJECTION, "detail": "the simulated kitchen is full"}
                steps.append(KitchenStep(ticket.order_id, "reject", body))
            else:
                minutes = ready_in_minutes(ticket, seconds_per_minute)
                steps.append(KitchenStep(ticket.order_id, "accept", {"ready_in_minutes": minutes}))
        elif ticket.state is TicketState.ACCEPTED:
            steps.append(KitchenStep(ticket.order_id, "prepare", {}))
        elif ticket.state is TicketState.PREPARING and (
            ticket.ready_by is None or ticket.ready_by <= now
        ):
            steps.append(KitchenStep(ticket.order_id, "ready", {}))
    return steps


def next_look(tickets: Iterable[TicketView], now: datetime, poll: float) -> float:
    """Seconds until the kitchen looks again: the next ready-by time of what it cooks, if that
    comes before the next poll."""
    due = [
        (t.ready_by - now).total_seconds()
        for t in tickets
        if t.state is TicketState.PREPARING and t.ready_by is not None
    ]
    return max(0.0, min([poll, *due]))


def silent_restaurants(settings: Settings) -> frozenset[str]:
    """The restaurants whose simulated staff never answer (`KITCHEN_SIM_SILENT`)."""
    return frozenset(r.strip() for r in settings.kitchen_sim_silent.split(",") if r.strip())


# --- accounts -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StaffLogin:
    restaurant_id: str
    name: str
    email: str
    password: str


class _Restaurant(BaseModel):
    restaurant_id: str
    name: str


class _Menu(BaseModel):
    restaurants: list[_Restaurant]


async def ensure_staff_accounts(gateway: Gateway, settings: Settings) -> list[StaffLogin]:
    """One staff account per restaurant of the restaurant service (as `GET /menu` lists them),
    made through the gateway as the demo operator; existing accounts are left alone."""
    token = await operator_token(gateway, settings)
    answer = await gateway.request("GET", "/menu")
    if answer.status != 200:
        raise SeedingFailed(f"the menu cannot be read ({answer.status}: {answer.detail()})")
    restaurants = answer.model(_Menu).restaurants
    if not restaurants:  # the gateway lists none while the restaurant service does not answer
        raise SeedingFailed("the menu lists no restaurant (is the restaurant service up?)")
    logins = []
    for restaurant in restaurants:
        rid = restaurant.restaurant_id
        login = StaffLogin(
            rid, f"{restaurant.name} staff", seeded_email(rid), restaurant_password(settings, rid)
        )
        body = {
            "email": login.email,
            "name": login.name,
            "password": login.password,
            "restaurant_id": rid,
        }
        if await create_account(gateway, token, "/restaurants/accounts", body, rid):
            log.info("Restaurant staff account %s created for %s", login.email, rid)
        logins.append(login)
    return logins


# --- one simulated kitchen ----------------------------------------------------------------------


class KitchenStaff:
    """One restaurant's staff: logs in, looks at the open orders, answers and cooks them.
    `run` never returns."""

    def __init__(self, gateway: Gateway, login: StaffLogin, settings: Settings) -> None:
        self.login = login
        self.poll = settings.courier_sim_poll_seconds
        self.reject_share = settings.kitchen_sim_reject_share
        self.seconds_per_minute = settings.kitchen_sim_seconds_per_minute
        self.name = f"kitchen {login.restaurant_id}"
        self.session = Session(
            gateway,
            login.email,
            login.password,
            name=self.name,
            password_file=restaurant_password_file(settings, login.restaurant_id),
            poll=self.poll,
        )

    async def run(self) -> None:
        await keep_going(self.name, self.serve_once)

    async def serve_once(self) -> None:
        """Look at the open orders, take the steps due, and wait until the next is due."""
        answer = await self.session.call("GET", "/restaurant/orders")
        if answer.status != 200:
            raise Refused(f"GET /restaurant/orders answered {answer.status}: {answer.detail()}")
        tickets = answer.model(Tickets).tickets
        now = utcnow()
        steps = kitchen_steps(
            tickets,
            now,
            reject_share=self.reject_share,
            seconds_per_minute=self.seconds_per_minute,
        )
        taken = [await self.take(step) for step in steps]
        if not steps:
            await asyncio.sleep(next_look(tickets, now, self.poll))
        else:  # a refused step is not tried again at once: the order may be moving on
            await asyncio.sleep(AFTER_STEPS_SECONDS if all(taken) else self.poll)

    async def take(self, step: KitchenStep) -> bool:
        """Take one step; False when it was refused (404, 409: logged)."""
        path = f"/restaurant/orders/{step.order_id}/{step.step}"
        answer = await self.session.call("POST", path, step.body)
        if answer.status == 200:
            log.info("%s: %s order %s %s", self.name, step.step, step.order_id, step.body or "")
            return True
        if answer.status in (404, 409):
            # Cancelled, timed out, or moved on meanwhile: the next look tells what is left.
            log.info(
                "%s: %s of order %s refused (%d: %s)",
                self.name,
                step.step,
                step.order_id,
                answer.status,
                answer.detail(),
            )
            return False
        raise Refused(f"{step.step} of order {step.order_id}: {answer.status} {answer.detail()}")


async def run_kitchens(gateway: Gateway, settings: Settings) -> None:
    """Seed the staff accounts (retrying until the gateway and the restaurant service can),
    then play every restaurant's staff but the silent ones, until cancelled."""
    logins = await _seeded(gateway, settings)
    silent = silent_restaurants(settings)
    playing = [login for login in logins if login.restaurant_id not in silent]
    for restaurant_id in sorted(silent):
        log.warning("Kitchen %s never answers (KITCHEN_SIM_SILENT)", restaurant_id)
    log.info(
        "Kitchen simulator: %d kitchen(s), a minute of cooking lasts %gs, %.0f%% rejected",
        len(playing),
        settings.kitchen_sim_seconds_per_minute,
        settings.kitchen_sim_reject_share * 100,
    )
    async with asyncio.TaskGroup() as tasks:
        for login in playing:
            tasks.create_task(
                KitchenStaff(gateway, login, settings).run(), name=login.restaurant_id
            )


async def _seeded(gateway: Gateway, settings: Settings) -> list[StaffLogin]:
    attempt = 0
    while True:
        attempt += 1
        try:
            return await ensure_staff_accounts(gateway, settings)
        except (SeedingFailed, ValidationError) as exc:
            delay = backoff_delay(attempt, REFUSED_BASE_SECONDS, REFUSED_MAX_SECONDS)
            if attempt == 1 or attempt % 10 == 0:
                log.error("Restaurant accounts not ready: %s; trying again in %.0fs", exc, delay)
            await asyncio.sleep(delay)
