"""The `foodflow` command line."""

from __future__ import annotations

import asyncio
import time
import uuid
from importlib.metadata import version as package_version
from pathlib import Path

import typer
from confluent_kafka import KafkaException
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rich.console import Console
from rich.table import Table

from foodflow.contracts.orders import OrderItemIn, OrderStatus, OrderStatusUpdate, ValidatedOrder
from foodflow.platform.config import get_settings
from foodflow.platform.errors import FoodflowError, InfraError, PublishError
from foodflow.platform.logs import lines_for_order, log_files
from foodflow.tools import processes, tracking
from foodflow.tools.bench.command import bench
from foodflow.tools.chaos.command import chaos
from foodflow.tools.customer import customer_app
from foodflow.tools.customer import order as customer_order
from foodflow.tools.dead_letters import dlq_app
from foodflow.tools.infra import manager
from foodflow.tools.secrets import compose_env, ensure_secrets, rotate_jwt_key, secrets_dir

app = typer.Typer(help="foodflow: the order-management backend of a food-delivery service.")
# A server that does not answer is the user's situation to mend, not a bug to debug: one line
# and a hint instead of a traceback (see `run`).
UNREACHABLE: tuple[type[BaseException], ...] = (
    OSError,
    RedisConnectionError,
    RedisTimeoutError,
    KafkaException,
    PublishError,
)
infra_app = typer.Typer(help="Kafka, PostgreSQL and Redis as local processes (no Docker).")
app.add_typer(infra_app, name="infra")
order_app = typer.Typer(help="Send orders and follow them.")
app.add_typer(order_app, name="order")
app.add_typer(customer_app, name="customer")
app.add_typer(dlq_app, name="dlq")
app.command("chaos")(chaos)
app.command("bench")(bench)

console = Console(soft_wrap=True)


def _show_version(asked: bool) -> None:
    if asked:
        typer.echo(f"foodflow {package_version('foodflow')}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_show_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """Options of the command itself; the work is done by its subcommands."""


def fail(exc: InfraError) -> typer.Exit:
    console.print(f"[bold red]{exc.server}: {exc.message}[/]")
    if exc.log_tail:
        console.print(f"[dim]{exc.log_tail}[/]", highlight=False, markup=False)
    return typer.Exit(1)


def _print_state(state: manager.ServerState) -> None:
    if state.running:
        verb = "started" if state.changed else "already running"
        console.print(
            f"[green]✔[/] {state.name:<9} {verb:<16} {state.address:<16} log: {state.log}"
        )
    else:
        verb = "stopped" if state.changed else "was not running"
        console.print(f"[yellow]■[/] {state.name:<9} {verb}")


@infra_app.command("up")
def infra_up() -> None:
    """Start Kafka, PostgreSQL and Redis (idempotent); wait until each answers."""
    settings = get_settings()
    ensure_secrets(settings, report=console.print)
    try:
        manager.up(settings, report=_print_state)
    except InfraError as exc:
        raise fail(exc) from None
    console.print(
        f"topics ready ({settings.topic_partitions} partitions each); state in {settings.state_dir}"
    )


@infra_app.command("status")
def infra_status() -> None:
    """Show each server up or down, with its address and log."""
    table = Table("server", "state", "address", "log")
    states = manager.status(get_settings())
    for s in states:
        table.add_row(
            s.name, "[green]up[/]" if s.running else "[red]down[/]", s.address, str(s.log)
        )
    console.print(table)
    if not all(s.running for s in states):
        raise typer.Exit(3)


@infra_app.command("down")
def infra_down(
    wipe: bool = typer.Option(False, "--wipe", help="Also delete the servers' data."),
) -> None:
    """Stop the servers cleanly (data kept unless --wipe)."""
    try:
        manager.down(get_settings(), wipe=wipe, report=_print_state)
    except InfraError as exc:
        raise fail(exc) from None
    if wipe:
        console.print("data wiped")


def _print_service(state: processes.ServiceState) -> None:
    if state.running:
        verb = "started" if state.changed else "already running"
        console.print(f"[green]✔[/] {state.name:<18} {verb:<16} {state.url:<22} log: {state.log}")
    else:
        verb = "stopped" if state.changed else "was not running"
        console.print(f"[yellow]■[/] {state.name:<18} {verb}")


def _print_update(update: OrderStatusUpdate) -> None:
    line = (
        f"  v{update.version} {update.updated_at:%H:%M:%S.%f}"[:-3] + f"  [bold]{update.status}[/]"
    )
    if update.reason:
        line += f"  reason={update.reason} ({update.detail})"
    if update.price is not None:
        line += f"  total={tracking.money(update.price.total, update.price.currency)}"
    console.print(line)


@app.command("up")
def up(
    demo: bool = typer.Option(True, help="Send the seed's demo order and show its journey."),
    scale: list[str] = typer.Option(
        [], help="SERVICE=N: run N instances of order_manager or order_writer (repeatable)."
    ),
) -> None:
    """Start the infrastructure and every service, then send the seed's demo order through."""
    settings = get_settings()
    try:
        instances = processes.parse_scale(scale)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--scale") from None
    ensure_secrets(settings, report=console.print)
    try:
        manager.up(settings, report=_print_state)
        processes.up(settings, report=_print_service, scale=instances)
    except InfraError as exc:
        raise fail(exc) from None
    if not demo:
        return
    console.print("\nSending the seed's demo order to validated_orders:")
    console.print(f"  {tracking.SEED_ORDER_LINE}", markup=False, highlight=False)
    since = int(time.time() * 1000) - 1000
    order_id = tracking.send_seed_line(settings)
    console.print(f"order id (assigned by order_manager): [bold]{order_id}[/]")
    _watch(order_id, since, exit_if_failed=False)  # the system is up whatever the demo met
    console.print("\nAnd as a customer's app would, through the gateway's public API:")
    customer_order(
        item=["sushi-set:1", "pho-bo:2"],
        address="Torstrasse 1, Berlin",
        lat=52.529,
        lon=13.401,
        card="tok_visa",
        promo=None,
        email="demo@foodflow.example",
        password="demo password",
        timeout=30.0,
    )
    console.print(
        "\nLook further:\n"
        f"  foodflow order status {order_id}\n"
        "  foodflow order send --user user-001 --item sushi-set:1 --item pho-bo:2\n"
        "  foodflow customer order --item ramen:1 --card tok_declined\n"
        f"  dashboard: {settings.service_url(settings.gateway_port)}/"
        "  (log in as operator@foodflow.local, password in"
        f" {secrets_dir(settings) / 'demo_operator_password'})\n"
        f"  foodflow logs {order_id}    (its lines from every service)\n"
        f"  logs: {settings.state_dir / 'services' / 'logs'}\n"
        "  foodflow down    (stops everything; data kept)"
    )


@app.command("secrets")
def secrets_command(
    rotate_jwt: bool = typer.Option(
        False,
        "--rotate-jwt",
        help="Sign new user tokens with a new key (older keys kept until their tokens expire).",
    ),
) -> None:
    """Generate the secrets if missing and print them as .env lines for Docker Compose
    (`foodflow secrets >> .env`)."""
    settings = get_settings()
    err = Console(stderr=True)
    ensure_secrets(settings, report=err.print)
    if rotate_jwt:
        err.print(f"new active JWT key {rotate_jwt_key(settings)}; restart the gateway")
    for line in compose_env(settings):
        typer.echo(line)


@app.command("down")
def down(
    wipe: bool = typer.Option(
        False, "--wipe", help="Also delete Kafka, PostgreSQL and Redis data."
    ),
) -> None:
    """Stop every service, then the infrastructure."""
    settings = get_settings()
    try:
        processes.down(settings, report=_print_service)
        manager.down(settings, wipe=wipe, report=_print_state)
    except InfraError as exc:
        raise fail(exc) from None


@app.command("status")
def status() -> None:
    """Show the infrastructure and every service, up or down."""
    settings = get_settings()
    table = Table("component", "state", "restarts", "address", "log")
    infra = manager.status(settings)
    for s in infra:
        table.add_row(
            s.name, "[green]up[/]" if s.running else "[red]down[/]", "", s.address, str(s.log)
        )
    services = processes.status(settings)
    for svc in services:
        table.add_row(
            svc.name,
            "[green]up[/]" if svc.running else "[red]down[/]",
            _restarts(svc),
            svc.url,
            str(svc.log),
        )
    console.print(table)
    if not all(s.running for s in infra) or not all(svc.running for svc in services):
        raise typer.Exit(1)  # scripts can ask `foodflow status` whether everything runs


def _restarts(svc: processes.ServiceState) -> str:
    """How often the supervisor restarted the service; whether it gave up on a crash loop."""
    return f"[red]{svc.restarts}, gave up[/]" if svc.gave_up else str(svc.restarts)


def _parse_item(text: str) -> OrderItemIn:
    item_id, _, quantity = text.partition(":")
    try:
        return OrderItemIn(item_id=item_id, quantity=int(quantity or "1"))
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r}: expected ITEM_ID[:QUANTITY] ({exc})") from None


def _watch(
    order_id: uuid.UUID, since_ms: int, timeout: float = 30.0, *, exit_if_failed: bool = True
) -> None:
    """Follow the order to its final state; exit 1 when it did not go through (FAILED or
    CANCELLED) and `exit_if_failed`, so that a script can tell."""
    settings = get_settings()
    last = None
    try:
        for update in tracking.follow(settings, order_id, since_ms, timeout=timeout):
            _print_update(update)
            last = update
    except FoodflowError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    for _ in range(50):
        row = asyncio.run(tracking.stored_order(settings, order_id))
        if row is not None:
            console.print(
                f"  persisted in PostgreSQL: orders.status={row['status']} total={row['total']}"
            )
            break
        time.sleep(0.1)
    else:
        console.print("  [yellow]not yet in PostgreSQL (is order_writer running?)[/]")
    if last is not None and last.status in (OrderStatus.FAILED, OrderStatus.CANCELLED):
        console.print(f"[red]order {order_id} {last.status.value}: {last.reason or ''}[/]")
        if exit_if_failed:
            raise typer.Exit(1)


@order_app.command("send")
def order_send(
    user: str = typer.Option("user-001", help="The customer's id."),
    item: list[str] = typer.Option(..., help="ITEM_ID[:QUANTITY], repeatable."),
    promo: str | None = typer.Option(None, help="A promo code, e.g. WELCOME5."),
    watch: bool = typer.Option(True, help="Follow the order to its final state."),
) -> None:
    """Publish an order on validated_orders (and follow it)."""
    settings = get_settings()
    try:
        order = ValidatedOrder(user_id=user, items=[_parse_item(i) for i in item], promo_code=promo)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    since = int(time.time() * 1000) - 1000
    order_id = tracking.send_order(settings, order)
    console.print(f"sent order [bold]{order_id}[/]")
    if watch:
        _watch(order_id, since)


@order_app.command("status")
def order_status(order_id: uuid.UUID) -> None:
    """Current status (Redis' copy, else PostgreSQL's order state); the stored order after."""
    settings = get_settings()
    update = tracking.current_status(settings, order_id)
    if update is not None:
        console.print(f"[dim]current[/]  order {order_id}  user {update.user_id}")
        _print_update(update)
        if update.price is not None:
            console.print_json(update.price.model_dump_json())
        return
    row = asyncio.run(tracking.stored_order(settings, order_id))
    if row is None:
        console.print(f"[red]no order {order_id}[/]")
        raise typer.Exit(1)
    console.print(f"[dim]from PostgreSQL[/]  order {order_id}  user {row['user_id']}")
    console.print(
        f"  [bold]{row['status']}[/] v{row['version']} reason={row['reason']} total={row['total']}"
    )
    for h in row["history"]:  # type: ignore[attr-defined]
        console.print(f"  v{h['version']} {h['at']:%H:%M:%S.%f} {h['status']} {h['reason'] or ''}")


UNKNOWN_ORDER_WAIT_SECONDS = 5.0


@order_app.command("watch")
def order_watch(
    order_id: uuid.UUID,
    timeout: float = typer.Option(60.0, help="Give up after this many seconds."),
) -> None:
    """Follow an order's status events live until it is final (exit 1 if it FAILED or was
    CANCELLED, or if there is no such order)."""
    settings = get_settings()
    # An order just sent may not be taken in yet: look for it a few seconds before saying no.
    deadline = time.monotonic() + UNKNOWN_ORDER_WAIT_SECONDS
    current = tracking.current_status(settings, order_id)
    while current is None and time.monotonic() < deadline:
        time.sleep(0.5)
        current = tracking.current_status(settings, order_id)
    if current is None:
        console.print(f"[red]unknown order {order_id}[/] (no such order has been taken in)")
        raise typer.Exit(1)
    _watch(order_id, int(current.created_at.timestamp() * 1000) - 1000, timeout)


@app.command("logs")
def logs(
    order_id: uuid.UUID,
    log_dir: Path | None = typer.Option(
        None, help="Folder of the services' logs (default: .state/services/logs)."
    ),
) -> None:
    """One order's log lines from every service's log (rotated files too), in time order."""
    folder = log_dir or get_settings().state_dir / "services" / "logs"
    lines = lines_for_order(str(order_id), log_files(folder))
    if not lines:
        console.print(f"[yellow]no lines about order {order_id} in {folder}/*.log[/]")
        raise typer.Exit(1)
    for line in lines:
        console.print(line.render(), markup=False, highlight=False)


if __name__ == "__main__":
    app()


def run() -> None:
    """The `foodflow` command: `app`, with unreachable servers reported in one line (exit 2)."""
    try:
        app()
    except UNREACHABLE as exc:
        console.print(
            f"cannot reach a server foodflow needs: {exc}", style="bold red", markup=False
        )
        console.print(
            "is the system up? `foodflow status` shows what runs; `foodflow up` starts it"
        )
        raise SystemExit(2) from None
