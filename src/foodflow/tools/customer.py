"""`foodflow customer …`: the public order API used as a customer's app would, over HTTP.

The gateway is probed before the HTTP client is loaded (a command with the system down answers
in one line, fast); a refused request is shown as the gateway's problem title and detail.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from foodflow.platform.config import get_settings
from foodflow.tools import cli_errors
from foodflow.tools.cli_errors import CONNECT_TIMEOUT_SECONDS, ExitCode, Unavailable

if TYPE_CHECKING:
    from foodflow.tools.http import HttpSession, Response

customer_app = typer.Typer(help="Use the gateway as a customer: sign up, order, follow, cancel.")
console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True, highlight=False)

EmailOption = typer.Option("demo@foodflow.example", help="Account; created on first use.")
PasswordOption = typer.Option("demo password", help="Its password.")


@contextmanager
def _gateway() -> Iterator[HttpSession]:
    """A session with the gateway; Unavailable (one line, exit 3) when it does not answer."""
    settings = get_settings()
    server = cli_errors.gateway(settings)
    cli_errors.require(server)
    from foodflow.tools.http import HTTP_ERRORS, HttpSession

    base_url = settings.service_url(settings.gateway_port)
    try:
        with HttpSession(base_url, timeout=15.0, connect_timeout=CONNECT_TIMEOUT_SECONDS) as client:
            yield client
    except HTTP_ERRORS as exc:
        raise Unavailable([server], cause=str(exc) or type(exc).__name__) from None


def _fail(response: Response) -> typer.Exit:
    """The gateway's refusal as one line on stderr; exit 1 (3 when what is behind it is down)."""
    text = cli_errors.problem_text(response.status_code, response.text)
    errors.print(text, style="red", markup=False)  # the server's words: never read as markup
    return typer.Exit(cli_errors.exit_code_for_status(response.status_code))


def _log_in(client: HttpSession, email: str, password: str) -> dict[str, str]:
    """A bearer header for the account, signing it up first if it does not exist."""
    answer = client.post("/auth/login", json={"email": email, "password": password})
    if answer.status_code == 401:
        created = client.post(
            "/users", json={"email": email, "name": email.split("@")[0], "password": password}
        )
        if created.status_code != 202:  # the same answer whether the email was taken or not
            raise _fail(created)
        answer = client.post("/auth/login", json={"email": email, "password": password})
    if answer.status_code != 200:
        raise _fail(answer)
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def follow_until(until: str) -> Callable[[dict[str, Any]], bool]:
    """`order` follows an order until it has reached `until` (its timeline holds it: a step
    the kitchen or a courier took between two looks counts) or has ended (the contracts are
    loaded once the gateway answered: they take a while)."""
    from foodflow.contracts.orders import OrderStatus

    try:
        wanted = OrderStatus(until.upper())
    except ValueError:
        choices = ", ".join(s.value for s in OrderStatus)
        raise typer.BadParameter(f"{until!r}: one of {choices}", param_hint="--until") from None
    ended = frozenset(s.value for s in OrderStatus if s.is_terminal)

    def reached(order: dict[str, Any]) -> bool:
        return order["status"] in ended or any(
            change["status"] == wanted for change in order.get("timeline", [])
        )

    return reached


def _show(order: dict[str, Any], seen: int) -> int:
    for change in order["timeline"][seen:]:
        line = f"  v{change['version']} {change['at'][11:23]}  [bold]{change['status']}[/]"
        if change.get("reason"):
            line += f"  reason={change['reason']}"
        console.print(line)
    return len(order["timeline"])


@customer_app.command("order")
def order(
    item: list[str] = typer.Option(["pho-bo:2"], help="ITEM_ID[:QUANTITY], repeatable."),
    address: str = typer.Option("Torstrasse 1, Berlin", help="Delivery address."),
    lat: float = typer.Option(52.529, help="Latitude of the address."),
    lon: float = typer.Option(13.401, help="Longitude of the address."),
    card: str = typer.Option("tok_visa", help="Test card: tok_visa, tok_declined, …"),
    promo: str | None = typer.Option(None, help="A promo code, e.g. WELCOME5."),
    email: str = EmailOption,
    password: str = PasswordOption,
    timeout: float = typer.Option(30.0, help="Stop following after this many seconds."),
    until: str = typer.Option(
        "COURIER_ASSIGNED",
        help="Follow until this status (or until it ends): RESTAURANT_ACCEPTED, PREPARING,"
        " READY_FOR_PICKUP, …, DELIVERED (with the simulator's kitchens and couriers).",
    ),
) -> None:
    """Place an order through the gateway and follow it until a courier has it, or `--until`
    another status (or it ends; exit 1 if it FAILED or was CANCELLED, a restaurant's rejection
    included). A closed restaurant or an unavailable item is refused at once (exit 1)."""
    lines = []
    for text in item:
        item_id, _, quantity = text.partition(":")
        if not quantity.isdigit() and quantity:
            raise typer.BadParameter(f"{text!r}: expected ITEM_ID[:QUANTITY]", param_hint="--item")
        lines.append({"item_id": item_id, "quantity": int(quantity or "1")})
    body = {
        "items": lines,
        "delivery_address": {"address": address, "lat": lat, "lon": lon},
        "payment_token": card,
        "promo_code": promo,
    }
    with _gateway() as client:
        headers = _log_in(client, email, password)
        placed = client.post("/orders", json=body, headers=headers)
        if placed.status_code != 202:
            raise _fail(placed)
        order_id = placed.json()["order_id"]
        console.print(f"order [bold]{order_id}[/] placed as {email}")
        seen, deadline, current = 0, time.monotonic() + timeout, {}
        reached = follow_until(until)
        while time.monotonic() < deadline:
            answer = client.get(f"/orders/{order_id}", headers=headers)
            if answer.status_code != 200:
                raise _fail(answer)
            current = answer.json()
            seen = _show(current, seen)
            if reached(current):
                break
            time.sleep(0.2)
    if current.get("price"):
        console.print(f"  total {current['price']['total']} {current['price']['currency']}")
    if current.get("detail"):
        console.print(f"  {current['detail']}")
    console.print(f"\n  foodflow customer show {order_id}     foodflow customer cancel {order_id}")
    from foodflow.contracts.orders import OrderStatus  # loaded by now (follow_until)

    if current.get("status") in {s.value for s in OrderStatus.ABORTED}:
        errors.print(f"order {order_id} {current['status']}", style="red", markup=False)
        raise typer.Exit(ExitCode.REFUSED)  # a declined card, an item out of stock…


@customer_app.command("show")
def show(
    order_id: str,
    email: str = EmailOption,
    password: str = PasswordOption,
    as_json: bool = typer.Option(False, "--json", help="The answer as JSON, for scripts."),
) -> None:
    """One of my orders: status, price and timeline (exit 1 if I have no such order)."""
    with _gateway() as client:
        answer = client.get(f"/orders/{order_id}", headers=_log_in(client, email, password))
    if answer.status_code != 200:
        raise _fail(answer)
    current = answer.json()
    if as_json:
        sys.stdout.write(json.dumps(current, indent=2) + "\n")
        return
    console.print(f"order {order_id}: [bold]{current['status']}[/] {current.get('detail') or ''}")
    _show(current, 0)


@customer_app.command("cancel")
def cancel(order_id: str, email: str = EmailOption, password: str = PasswordOption) -> None:
    """Cancel one of my orders (before pickup): refund, stock back."""
    with _gateway() as client:
        answer = client.post(f"/orders/{order_id}/cancel", headers=_log_in(client, email, password))
    if answer.status_code != 200:
        raise _fail(answer)
    console.print(f"order {order_id}: [bold]{answer.json()['status']}[/]")


@customer_app.command("orders")
def orders(email: str = EmailOption, password: str = PasswordOption) -> None:
    """My orders, newest first."""
    with _gateway() as client:
        answer = client.get("/orders", headers=_log_in(client, email, password))
    if answer.status_code != 200:
        raise _fail(answer)
    for o in answer.json()["items"]:
        total = o["price"]["total"] if o.get("price") else "-"
        console.print(f"{o['created_at'][:19]}  {o['order_id']}  {o['status']:<17} {total}")
