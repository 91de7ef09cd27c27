"""`foodflow restaurant …`: the gateway's staff routes used as a restaurant's tablet would, over
HTTP: the restaurant's orders, accepting, cooking, reporting ready or a delay, rejecting, an
item's availability and the opening.

Staff log in as their restaurant's seeded account (`--restaurant tokyo-kitchen`: the password
`foodflow up` generated into `<state dir>/secrets/restaurants/<id>`), or with `--email` and
`--password`. Like `foodflow customer`, the gateway is probed before the HTTP client is loaded,
and a refusal is shown as the gateway's problem title and detail.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from foodflow.platform.config import get_settings
from foodflow.tools import cli_errors
from foodflow.tools.cli_errors import CONNECT_TIMEOUT_SECONDS, ExitCode, Unavailable

if TYPE_CHECKING:
    from foodflow.tools.http import HttpSession, Response

restaurant_app = typer.Typer(
    help="Use the gateway as a restaurant's staff: see, accept, cook and hand over its orders."
)
console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True, highlight=False)

RestaurantOption = typer.Option(
    None,
    "--restaurant",
    envvar="FOODFLOW_RESTAURANT",
    help="Log in as this restaurant's seeded staff account (its password from the state"
    " directory).",
    show_default=False,
)
EmailOption = typer.Option(None, help="Log in with this staff account instead.")
PasswordOption = typer.Option(None, help="Its password.")
REJECT_REASONS = ("KITCHEN_BUSY", "ITEM_UNAVAILABLE", "RESTAURANT_CLOSED")
TICKET_STATES = ("PENDING", "ACCEPTED", "PREPARING", "READY", "PICKED_UP", "REJECTED", "CANCELLED")
HOURS = re.compile(r"^(\d{1,2}:\d{2})-(\d{1,2}:\d{2})$")


@contextmanager
def _staff(
    restaurant: str | None, email: str | None, password: str | None
) -> Iterator[tuple[HttpSession, dict[str, str]]]:
    """A session with the gateway, logged in as the staff account; Unavailable (one line,
    exit 3) when the gateway does not answer."""
    settings = get_settings()
    email, password = _credentials(restaurant, email, password)
    server = cli_errors.gateway(settings)
    cli_errors.require(server)
    from foodflow.tools.http import HTTP_ERRORS, HttpSession

    base_url = settings.service_url(settings.gateway_port)
    try:
        with HttpSession(base_url, timeout=15.0, connect_timeout=CONNECT_TIMEOUT_SECONDS) as client:
            answer = client.post("/auth/login", json={"email": email, "password": password})
            if answer.status_code != 200:
                raise _fail(answer)
            yield client, {"Authorization": f"Bearer {answer.json()['access_token']}"}
    except HTTP_ERRORS as exc:
        raise Unavailable([server], cause=str(exc) or type(exc).__name__) from None


def _credentials(
    restaurant: str | None, email: str | None, password: str | None
) -> tuple[str, str]:
    """The staff account to log in as: `--email`/`--password`, else the restaurant's seeded
    account and the password `foodflow up` generated for it."""
    if email is not None:
        if password is None:
            raise typer.BadParameter("--email needs --password", param_hint="--password")
        return email, password
    if restaurant is None:
        raise typer.BadParameter(
            "which restaurant? --restaurant ID (its seeded staff account), or --email and"
            " --password",
            param_hint="--restaurant",
        )
    from foodflow.tools.gateway_api import seeded_email
    from foodflow.tools.secrets import ACCOUNT_ID, restaurant_password_file

    if not ACCOUNT_ID.fullmatch(restaurant):
        raise typer.BadParameter(
            f"{restaurant!r} is not a restaurant id", param_hint="--restaurant"
        )
    file = restaurant_password_file(get_settings(), restaurant)
    try:
        return seeded_email(restaurant), file.read_text().strip()
    except FileNotFoundError:
        errors.print(
            f"no staff password for {restaurant} in {file}: `foodflow up` makes the seeded"
            " restaurants' accounts (or log in with --email and --password)",
            style="red",
            markup=False,
        )
        raise typer.Exit(ExitCode.REFUSED) from None


def _fail(response: Response) -> typer.Exit:
    """The gateway's refusal as one line on stderr; exit 1 (3 when what is behind it is down)."""
    text = cli_errors.problem_text(response.status_code, response.text)
    errors.print(text, style="red", markup=False)  # the server's words: never read as markup
    return typer.Exit(cli_errors.exit_code_for_status(response.status_code))


def _answer(response: Response) -> Any:
    if response.status_code != 200:
        raise _fail(response)
    return response.json()


def _clock(iso: str) -> str:
    """A time of the API (UTC) as this machine's wall clock shows it."""
    return datetime.fromisoformat(iso).astimezone().strftime("%H:%M:%S")


def _lines(ticket: dict[str, Any]) -> str:
    return ", ".join(f"{line['item_id']}:{line['quantity']}" for line in ticket["lines"])


def _show_ticket(ticket: dict[str, Any]) -> None:
    line = f"order [bold]{ticket['order_id']}[/] {ticket['state']}  {_lines(ticket)}"
    if ticket.get("ready_by"):
        line += f"  ready by {_clock(ticket['ready_by'])}"
    if ticket.get("reason"):
        line += f"  reason={ticket['reason']}"
    console.print(line)


@restaurant_app.command("orders")
def orders(
    state: str | None = typer.Option(
        None, help=f"Only orders in this state: {', '.join(TICKET_STATES)} (default: open ones)."
    ),
    as_json: bool = typer.Option(False, "--json", help="The answer as JSON, for scripts."),
    restaurant: str | None = RestaurantOption,
    email: str | None = EmailOption,
    password: str | None = PasswordOption,
) -> None:
    """My restaurant's orders: the open ones (pending, accepted, preparing, ready), oldest
    first, or those in `--state`."""
    if state is not None and state.upper() not in TICKET_STATES:
        raise typer.BadParameter(
            f"{state!r}: one of {', '.join(TICKET_STATES)}", param_hint="--state"
        )
    query = f"?state={state.upper()}" if state else ""
    with _staff(restaurant, email, password) as (client, headers):
        tickets = _answer(client.get(f"/restaurant/orders{query}", headers=headers))["tickets"]
    if as_json:
        sys.stdout.write(json.dumps(tickets, indent=2) + "\n")
        return
    if not tickets:
        console.print("no orders" + (f" {state.upper()}" if state else " open"))
    for t in tickets:
        ready = f"ready by {_clock(t['ready_by'])}" if t.get("ready_by") else ""
        suggested = f"~{t['suggested_ready_in_minutes']:g} min"
        console.print(
            f"{_clock(t['received_at'])}  {t['order_id']}  {t['state']:<9} {suggested:<9}"
            f" {ready:<17} {_lines(t)}",
            markup=False,
            highlight=False,
        )


@restaurant_app.command("accept")
def accept(
    order_id: str,
    minutes: float | None = typer.Option(
        None,
        min=0,
        max=240,
        help="Ready in this many minutes (default: what the kitchen suggests for it now).",
    ),
    restaurant: str | None = RestaurantOption,
    email: str | None = EmailOption,
    password: str | None = PasswordOption,
) -> None:
    """Accept a pending order, to be ready in `--minutes`: the customer sees it accepted and
    a courier is sent to be there when it is ready."""
    with _staff(restaurant, email, password) as (client, headers):
        if minutes is None:
            ticket = _answer(client.get(f"/restaurant/orders/{order_id}", headers=headers))
            minutes = float(ticket["suggested_ready_in_minutes"])
        body = {"ready_in_minutes": minutes}
        path = f"/restaurant/orders/{order_id}/accept"
        _show_ticket(_answer(client.post(path, json=body, headers=headers)))


@restaurant_app.command("reject")
def reject(
    order_id: str,
    reason: str = typer.Option(
        "KITCHEN_BUSY", help=f"Why: {', '.join(REJECT_REASONS)}.", case_sensitive=False
    ),
    detail: str | None = typer.Option(None, help="A word for the operators (200 characters)."),
    restaurant: str | None = RestaurantOption,
    email: str | None = EmailOption,
    password: str | None = PasswordOption,
) -> None:
    """Refuse a pending order: it is cancelled, the customer refunded, the stock given back."""
    if reason.upper() not in REJECT_REASONS:
        raise typer.BadParameter(
            f"{reason!r}: one of {', '.join(REJECT_REASONS)}", param_hint="--reason"
        )
    body = {"reason": reason.upper(), "detail": detail}
    with _staff(restaurant, email, password) as (client, headers):
        path = f"/restaurant/orders/{order_id}/reject"
        _show_ticket(_answer(client.post(path, json=body, headers=headers)))


@restaurant_app.command("prepare")
def prepare(
    order_id: str,
    restaurant: str | None = RestaurantOption,
    email: str | None = EmailOption,
    password: str | None = PasswordOption,
) -> None:
    """The kitchen starts cooking an accepted order."""
    _step(order_id, "prepare", restaurant, email, password)


@restaurant_app.command("ready")
def ready(
    order_id: str,
    restaurant: str | None = RestaurantOption,
    email: str | None = EmailOption,
    password: str | None = PasswordOption,
) -> None:
    """The food is ready for the courier."""
    _step(order_id, "ready", restaurant, email, password)


def _step(
    order_id: str, step: str, restaurant: str | None, email: str | None, password: str | None
) -> None:
    with _staff(restaurant, email, password) as (client, headers):
        _show_ticket(_answer(client.post(f"/restaurant/orders/{order_id}/{step}", headers=headers)))


@restaurant_app.command("delay")
def delay(
    order_id: str,
    minutes: float = typer.Option(..., min=0, max=240, help="Ready in this many minutes from now."),
    restaurant: str | None = RestaurantOption,
    email: str | None = EmailOption,
    password: str | None = PasswordOption,
) -> None:
    """The kitchen needs longer: a new ready-by time (the courier's plan and the customer's
    ETA move with it)."""
    with _staff(restaurant, email, password) as (client, headers):
        path = f"/restaurant/orders/{order_id}/delay"
        body = {"ready_in_minutes": minutes}
        _show_ticket(_answer(client.post(path, json=body, headers=headers)))


@restaurant_app.command("availability")
def availability(
    item_id: str,
    available: bool = typer.Option(
        ..., "--available/--unavailable", help="Whether it can be ordered."
    ),
    restaurant: str | None = RestaurantOption,
    email: str | None = EmailOption,
    password: str | None = PasswordOption,
) -> None:
    """Mark an item of my menu available or not (an unavailable item leaves the public menu
    and orders for it are refused)."""
    with _staff(restaurant, email, password) as (client, headers):
        path = f"/restaurant/items/{item_id}/availability"
        entry = _answer(client.request("PUT", path, json={"available": available}, headers=headers))
    console.print(f"{entry['item_id']}: {'available' if entry['available'] else 'unavailable'}")


@restaurant_app.command("opening")
def opening(
    accepting: bool | None = typer.Option(
        None,
        "--accepting/--paused",
        help="Take orders again, or pause (orders are refused as closed).",
        show_default=False,
    ),
    hours: str | None = typer.Option(
        None,
        help="Opening hours HH:MM-HH:MM, local time (equal: all day; 18:00-02:00: past midnight).",
    ),
    restaurant: str | None = RestaurantOption,
    email: str | None = EmailOption,
    password: str | None = PasswordOption,
) -> None:
    """My restaurant's opening: shown, or changed with --accepting/--paused and --hours."""
    change: dict[str, Any] = {}
    if accepting is not None:
        change["accepting"] = accepting
    if hours is not None:
        found = HOURS.fullmatch(hours)
        if found is None:
            raise typer.BadParameter(f"{hours!r}: expected HH:MM-HH:MM", param_hint="--hours")
        change["opens_at"], change["closes_at"] = found.group(1), found.group(2)
    with _staff(restaurant, email, password) as (client, headers):
        if change:
            view = _answer(
                client.request("PUT", "/restaurant/opening", json=change, headers=headers)
            )
        else:
            view = _answer(client.get("/restaurant", headers=headers))
    state = "[green]open[/]" if view["open_now"] else "[red]closed[/]"
    switch = "accepting" if view["accepting"] else "paused"
    console.print(
        f"{view['name']} ({view['restaurant_id']}): {state}, {switch},"
        f" hours {view['opens_at'][:5]}-{view['closes_at'][:5]} {view['timezone']},"
        f" {view['active_tickets']}/{view['capacity']} orders in the kitchen"
    )
