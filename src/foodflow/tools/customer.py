"""`foodflow customer …`: the public order API used as a customer's app would, over HTTP."""

from __future__ import annotations

import time
from typing import Any

import typer
from rich.console import Console

from foodflow.contracts.orders import OrderStatus
from foodflow.platform.config import get_settings
from foodflow.tools.http import HttpSession, Response

customer_app = typer.Typer(help="Use the gateway as a customer: sign up, order, follow, cancel.")
console = Console(soft_wrap=True)

EmailOption = typer.Option("demo@foodflow.example", help="Account; created on first use.")
PasswordOption = typer.Option("demo password", help="Its password.")


def _client() -> HttpSession:
    settings = get_settings()
    return HttpSession(settings.service_url(settings.gateway_port), timeout=15.0)


def _fail(response: Response) -> typer.Exit:
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text
    console.print(f"[red]{response.status_code}: {detail}[/]")
    return typer.Exit(1)


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
    until: OrderStatus = typer.Option(
        OrderStatus.COURIER_ASSIGNED,
        help="Follow until this status (or until it ends), e.g. DELIVERED with couriers riding.",
    ),
) -> None:
    """Place an order through the gateway and follow it until a courier has it (or it ends)."""
    follow_until = {s.value for s in OrderStatus if s.is_terminal} | {until.value}
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
    with _client() as client:
        headers = _log_in(client, email, password)
        placed = client.post("/orders", json=body, headers=headers)
        if placed.status_code != 202:
            raise _fail(placed)
        order_id = placed.json()["order_id"]
        console.print(f"order [bold]{order_id}[/] placed as {email}")
        seen, deadline, current = 0, time.monotonic() + timeout, {}
        while time.monotonic() < deadline:
            current = client.get(f"/orders/{order_id}", headers=headers).json()
            seen = _show(current, seen)
            if current["status"] in follow_until:
                break
            time.sleep(0.2)
    if current.get("price"):
        console.print(f"  total {current['price']['total']} {current['price']['currency']}")
    if current.get("detail"):
        console.print(f"  {current['detail']}")
    console.print(f"\n  foodflow customer show {order_id}     foodflow customer cancel {order_id}")


@customer_app.command("show")
def show(order_id: str, email: str = EmailOption, password: str = PasswordOption) -> None:
    """One of my orders: status, price and timeline."""
    with _client() as client:
        answer = client.get(f"/orders/{order_id}", headers=_log_in(client, email, password))
    if answer.status_code != 200:
        raise _fail(answer)
    current = answer.json()
    console.print(f"order {order_id}: [bold]{current['status']}[/] {current.get('detail') or ''}")
    _show(current, 0)


@customer_app.command("cancel")
def cancel(order_id: str, email: str = EmailOption, password: str = PasswordOption) -> None:
    """Cancel one of my orders (before pickup): refund, stock back."""
    with _client() as client:
        answer = client.post(f"/orders/{order_id}/cancel", headers=_log_in(client, email, password))
    if answer.status_code != 200:
        raise _fail(answer)
    console.print(f"order {order_id}: [bold]{answer.json()['status']}[/]")


@customer_app.command("orders")
def orders(email: str = EmailOption, password: str = PasswordOption) -> None:
    """My orders, newest first."""
    with _client() as client:
        answer = client.get("/orders", headers=_log_in(client, email, password))
    if answer.status_code != 200:
        raise _fail(answer)
    for o in answer.json()["items"]:
        total = o["price"]["total"] if o.get("price") else "-"
        console.print(f"{o['created_at'][:19]}  {o['order_id']}  {o['status']:<17} {total}")
