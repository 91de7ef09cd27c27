"""The `foodflow` command line.

It imports what a command needs inside that command: the servers a command needs are probed
before any client library or model is loaded, so that with the system down a command answers
in one line within a few seconds (issue 14). `bench` and `chaos`, which load the most, are
loaded only when run (`LazyGroup`).
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import typer
from rich.console import Console
from typer import _click as click  # typer vendors click: its groups take typer's click types
from typer.core import TyperCommand, TyperGroup

from foodflow.platform.config import get_settings
from foodflow.platform.errors import InfraError, PublishError
from foodflow.tools import cli_errors
from foodflow.tools.cli_errors import EXIT_CODES_HELP, ExitCode, Unavailable
from foodflow.tools.customer import customer_app
from foodflow.tools.dead_letters import dlq_app
from foodflow.tools.restaurant import restaurant_app

if TYPE_CHECKING:
    from pydantic import ValidationError

    from foodflow.contracts.orders import OrderItemIn, OrderStatusUpdate
    from foodflow.platform.config import Settings
    from foodflow.tools import kafka_status, processes
    from foodflow.tools.infra import manager


@dataclass(frozen=True)
class LazyCommand:
    """A command whose module is imported only when the command runs: `short_help` stands in
    for its docstring in `foodflow --help`; the servers `needs` lists are probed before the
    import (a module that takes seconds to load should not delay "the system is down")."""

    module: str
    attribute: str
    short_help: str
    needs: Callable[[], list[cli_errors.Server]] | None = None


# Commands loaded only when run (their modules take seconds to import).
LAZY_COMMANDS: Mapping[str, LazyCommand] = {
    "chaos": LazyCommand(
        "foodflow.tools.chaos.command",
        "chaos",
        "Drive orders while faults hit the system; check nothing was lost.",
        needs=lambda: cli_errors.whole_system(get_settings()),
    ),
    "bench": LazyCommand(
        "foodflow.tools.bench.command",
        "bench",
        "Measure end-to-end throughput and latency.",
        needs=lambda: cli_errors.whole_system(get_settings()),
    ),
    "couriers": LazyCommand(
        "foodflow.tools.couriers",
        "couriers_app",
        "Couriers: their accounts, and the simulator that plays the kitchens and the couriers.",
        needs=lambda: [cli_errors.gateway(get_settings())],
    ),
}


class LazyGroup(TyperGroup):
    """The top-level group, with `lazy` commands loaded on first use."""

    lazy: ClassVar[Mapping[str, LazyCommand]] = LAZY_COMMANDS

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*super().list_commands(ctx), *(n for n in self.lazy if n not in self.commands)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = super().get_command(ctx, cmd_name)
        if found is not None or cmd_name not in self.lazy:
            return found
        # Listing the commands for --help: a stand-in, not the module.
        return TyperCommand(cmd_name, short_help=self.lazy[cmd_name].short_help)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] in self.lazy and args[0] not in self.commands:
            name, entry = args[0], self.lazy[args[0]]
            asking_for_help = any(a in ("--help", "-h") for a in args[1:])
            if entry.needs is not None and not asking_for_help:
                cli_errors.require(*entry.needs())
            self.commands[name] = _load(name, entry)
        return super().resolve_command(ctx, args)


def _load(name: str, entry: LazyCommand) -> click.Command:
    target = getattr(import_module(entry.module), entry.attribute)
    if isinstance(target, typer.Typer):
        command = typer.main.get_command(target)
    else:
        single = typer.Typer()
        single.command(name)(target)
        command = typer.main.get_command(single)
    command.name = name
    return command


app = typer.Typer(
    cls=LazyGroup,
    help="foodflow: the order-management backend of a food-delivery service.",
    epilog=EXIT_CODES_HELP,
    # A traceback of a bug must not print local variables: settings hold passwords and keys.
    pretty_exceptions_show_locals=False,
)
infra_app = typer.Typer(help="Kafka, PostgreSQL and Redis as local processes (no Docker).")
app.add_typer(infra_app, name="infra")
order_app = typer.Typer(help="Send orders and follow them.")
app.add_typer(order_app, name="order")
app.add_typer(customer_app, name="customer")
app.add_typer(restaurant_app, name="restaurant")
app.add_typer(dlq_app, name="dlq")

console = Console(soft_wrap=True)
# What went wrong goes to stderr: stdout stays the command's output (one JSON document with
# --json).
errors = Console(stderr=True, soft_wrap=True, highlight=False)


def _show_version(asked: bool) -> None:
    if asked:
        from importlib.metadata import version as package_version

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


BROKERS_HELP = (
    "Kafka nodes: 1, or 3 for a replicated cluster (each a KRaft controller and broker; topics"
    " replicated 3 times, min.insync.replicas 2, 12 partitions). Default: KAFKA_BROKERS, else"
    " what runs (recorded in the state directory), else 1."
)


def _choose_brokers(brokers: int | None) -> None:
    """`--brokers N` as KAFKA_BROKERS=N, for this command's settings and for the services it
    starts (they inherit our environment)."""
    if brokers is None:
        return
    import os

    os.environ["KAFKA_BROKERS"] = str(brokers)
    get_settings.cache_clear()


@infra_app.command("up")
def infra_up(
    brokers: int | None = typer.Option(None, "--brokers", help=BROKERS_HELP, show_default=False),
) -> None:
    """Start Kafka, PostgreSQL and Redis (idempotent); wait until each answers."""
    from foodflow.tools.infra import manager
    from foodflow.tools.secrets import ensure_secrets

    _choose_brokers(brokers)
    settings = get_settings()
    ensure_secrets(settings, report=console.print)
    try:
        manager.up(settings, report=_print_state)
    except InfraError as exc:
        raise fail(exc) from None
    console.print(f"topics ready ({_topics_line(settings)}); state in {settings.state_dir}")


def _topics_line(settings: Settings) -> str:
    line = f"{settings.topic_partitions} partitions each"
    if settings.kafka_brokers > 1:
        line += (
            f", replication factor {settings.kafka_replication_factor},"
            f" min.insync.replicas {settings.kafka_min_insync_replicas}"
        )
    return line


@infra_app.command("browser")
def infra_browser() -> None:
    """Install the Chromium the dashboard's tests drive (apt-get, as root), unless it is there
    (`make test` runs this before the suite)."""
    from foodflow.tools.infra import browser

    try:
        path, installed = browser.install_chromium()
    except InfraError as exc:
        raise fail(exc) from None
    console.print(f"[green]✔[/] chromium  {'installed' if installed else 'present'}: {path}")


@infra_app.command("compose")
def infra_compose() -> None:
    """Install docker-compose, which the suite runs to check the Compose files (`config`: no
    Docker engine needed), unless it is there (`make test` runs this before the suite)."""
    from foodflow.tools.infra import compose

    try:
        path, installed = compose.install_compose()
    except InfraError as exc:
        raise fail(exc) from None
    console.print(f"[green]✔[/] docker-compose  {'installed' if installed else 'present'}: {path}")


@infra_app.command("status")
def infra_status() -> None:
    """Show each server up or down, with its address and log (exit 3 if any is down)."""
    from rich.table import Table

    from foodflow.tools.infra import manager

    table = Table("server", "state", "address", "log")
    try:
        states = manager.status(get_settings())
    except InfraError as exc:
        raise fail(exc) from None
    for s in states:
        table.add_row(
            s.name, "[green]up[/]" if s.running else "[red]down[/]", s.address, str(s.log)
        )
    console.print(table)
    if not all(s.running for s in states):
        raise typer.Exit(ExitCode.UNAVAILABLE)


@infra_app.command("down")
def infra_down(
    wipe: bool = typer.Option(False, "--wipe", help="Also delete the servers' data."),
) -> None:
    """Stop the servers cleanly (data kept unless --wipe)."""
    from foodflow.tools.infra import manager

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


# The statuses that set (or move) an order's kitchen plan: its ready-by time is shown with them.
_KITCHEN_PLANS = frozenset({"RESTAURANT_ACCEPTED", "PREPARING"})


def _print_update(update: OrderStatusUpdate) -> None:
    line = (
        f"  v{update.version} {update.updated_at:%H:%M:%S.%f}"[:-3] + f"  [bold]{update.status}[/]"
    )
    if update.reason:
        line += f"  reason={update.reason} ({update.detail})"
    if update.kitchen is not None and update.status in _KITCHEN_PLANS:
        line += f"  {update.kitchen.restaurant_name}, ready by {update.kitchen.ready_by:%H:%M:%S}"
    if update.price is not None:
        from foodflow.tools.tracking import money

        line += f"  total={money(update.price.total, update.price.currency)}"
    console.print(line)


@app.command("up")
def up(
    demo: bool = typer.Option(True, help="Send the seed's demo order and show its journey."),
    scale: list[str] = typer.Option(
        [], help="SERVICE=N: run N instances of order_manager or order_writer (repeatable)."
    ),
    couriers: bool | None = typer.Option(
        None,
        "--couriers/--no-couriers",
        help="Run the simulator, which plays the restaurants' kitchens and delivers assigned"
        " orders (default: COURIER_SIMULATOR, true); --no-couriers for a system whose"
        " kitchens and couriers are real.",
        show_default=False,
    ),
    brokers: int | None = typer.Option(None, "--brokers", help=BROKERS_HELP, show_default=False),
) -> None:
    """Start the infrastructure and every service, then send the seed's demo order through,
    and a customer's order, which the simulated kitchen cooks and a courier delivers."""
    from foodflow.tools import processes, tracking
    from foodflow.tools.customer import order as customer_order
    from foodflow.tools.infra import manager
    from foodflow.tools.secrets import ensure_secrets, secrets_dir

    _choose_brokers(brokers)
    settings = get_settings()
    simulate = settings.courier_simulator if couriers is None else couriers
    try:
        instances = processes.parse_scale(scale)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--scale") from None
    ensure_secrets(settings, report=console.print)
    try:
        manager.up(settings, report=_print_state)
        processes.up(
            settings,
            report=_print_service,
            scale=instances,
            env=_simulated_speed(settings, simulate),
        )
        _seeded_accounts(settings, couriers=simulate)
        if simulate:
            processes.start_simulator(settings, report=_print_service)
        elif processes.SimulatorProcess(settings).stop():
            console.print(f"[yellow]■[/] {processes.SIMULATOR:<18} stopped (--no-couriers)")
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
    with contextlib.suppress(typer.Exit):  # its exit code is the demo's, not the system's
        customer_order(
            item=["sushi-set:1", "pho-bo:2"],
            address="Torstrasse 1, Berlin",
            lat=52.529,
            lon=13.401,
            card="tok_visa",
            promo=None,
            email="demo@foodflow.example",
            password="demo password",
            timeout=90.0,
            # With the simulator, a kitchen accepts and cooks it and a courier delivers it in
            # seconds; without, it waits for a restaurant's staff (`foodflow restaurant`).
            until="DELIVERED" if simulate else "CONFIRMED",
        )
    console.print(
        "\nLook further:\n"
        f"  foodflow order status {order_id}\n"
        "  foodflow order send --user user-001 --item sushi-set:1 --item pho-bo:2\n"
        "  foodflow customer order --item ramen:1 --card tok_declined\n"
        "  foodflow restaurant orders --restaurant tokyo-kitchen    (as its staff)\n"
        f"  dashboard: {settings.service_url(settings.gateway_port)}/"
        "  (log in as operator@foodflow.local, password in"
        f" {secrets_dir(settings) / 'demo_operator_password'})\n"
        f"  foodflow logs {order_id}    (its lines from every service)\n"
        f"  logs: {settings.state_dir / 'services' / 'logs'}\n"
        "  foodflow down    (stops everything; data kept)"
    )


def _simulated_speed(settings: Settings, simulate: bool) -> dict[str, str]:
    """The services' environment for the simulator: the delivery service plans each courier's
    ride (when to send them, so that they reach the kitchen as the food is ready) at the speed
    the simulated couriers ride, unless COURIER_SPEED_KMH is set."""
    if not simulate or "courier_speed_kmh" in settings.model_fields_set:
        return {}
    return {"COURIER_SPEED_KMH": str(settings.courier_sim_speed_kmh)}


def _seeded_accounts(settings: Settings, *, couriers: bool) -> None:
    """The seeded restaurants' staff accounts, and with the simulator the seeded couriers'
    (a courier account is the simulator's: no standing logins without it). Made once; a
    failure is said, not fatal: the simulator keeps trying on its own."""
    import asyncio

    from foodflow.tools.couriers import seed_all
    from foodflow.tools.gateway_api import SeedingFailed
    from foodflow.tools.secrets import secrets_dir

    try:
        riders, staff = asyncio.run(seed_all(settings, couriers=couriers))
    except (SeedingFailed, TimeoutError) as exc:
        console.print(f"[yellow]seeded accounts not made: {exc or 'the gateway did not answer'}[/]")
        return
    home = secrets_dir(settings)
    console.print(
        f"[green]✔[/] {len(staff)} restaurant accounts <restaurant_id>@foodflow.example,"
        f" passwords in {home / 'restaurants'}/"
    )
    if couriers:
        console.print(
            f"[green]✔[/] {len(riders)} courier accounts    <courier_id>@foodflow.example,"
            f" passwords in {home / 'couriers'}/"
        )


@app.command("secrets")
def secrets_command(
    rotate_jwt: bool = typer.Option(
        False,
        "--rotate-jwt",
        help="Sign new user tokens with a new key (older keys kept until their tokens expire).",
    ),
    kubernetes: bool = typer.Option(
        False,
        "--kubernetes",
        help="Print them as Kubernetes Secrets instead, for `| kubectl apply -n foodflow -f -`.",
    ),
) -> None:
    """Generate the secrets if missing and print them as .env lines for Docker Compose
    (`foodflow secrets >> .env`), or as Kubernetes objects (docs/deployment.md#secrets)."""
    from foodflow.tools.secrets import (
        compose_env,
        ensure_secrets,
        kubernetes_objects,
        rotate_jwt_key,
    )

    settings = get_settings()
    err = Console(stderr=True)
    ensure_secrets(settings, report=err.print)
    if rotate_jwt:
        err.print(f"new active JWT key {rotate_jwt_key(settings)}; restart the gateway")
    if kubernetes:
        typer.echo(json.dumps(kubernetes_objects(settings), indent=2))
        return
    for line in compose_env(settings):
        typer.echo(line)


@app.command("down")
def down(
    wipe: bool = typer.Option(
        False, "--wipe", help="Also delete Kafka, PostgreSQL and Redis data."
    ),
) -> None:
    """Stop every service, then the infrastructure."""
    from foodflow.tools import processes
    from foodflow.tools.infra import manager

    settings = get_settings()
    try:
        processes.down(settings, report=_print_service)
        manager.down(settings, wipe=wipe, report=_print_state)
    except InfraError as exc:
        raise fail(exc) from None


@app.command("status")
def status(
    as_json: bool = typer.Option(False, "--json", help="One JSON document, for scripts."),
) -> None:
    """Show the infrastructure and every service, up or down; Kafka's brokers, the active
    controller, under-replicated partitions and each consumer group's members, partitions and
    lag (exit 3 if anything is down)."""
    from foodflow.tools import processes
    from foodflow.tools.infra import manager

    settings = get_settings()
    try:
        infra = manager.status(settings)
    except InfraError as exc:
        raise fail(exc) from None
    services = processes.status(settings)
    everything_up = all(s.running for s in infra) and all(svc.running for svc in services)
    kafka = (
        _kafka_status(settings)
        if any(s.running for s in infra if s.name.startswith("kafka"))
        else None
    )
    if as_json:
        components = [
            {"name": s.name, "kind": "infrastructure", "running": s.running}
            | {"address": s.address, "log": str(s.log)}
            for s in infra
        ] + [
            {"name": svc.name, "kind": "service", "running": svc.running}
            | {"address": svc.url, "log": str(svc.log)}
            | {"restarts": svc.restarts, "gave_up": svc.gave_up}
            for svc in services
        ]
        _print_json(
            {"up": everything_up, "components": components, "kafka": _kafka_document(kafka)}
        )
    else:
        from rich.table import Table

        table = Table("component", "state", "restarts", "address", "log")
        for s in infra:
            table.add_row(
                s.name, "[green]up[/]" if s.running else "[red]down[/]", "", s.address, str(s.log)
            )
        for svc in services:
            table.add_row(
                svc.name,
                "[green]up[/]" if svc.running else "[red]down[/]",
                _restarts(svc),
                svc.url,
                str(svc.log),
            )
        console.print(table)
        if isinstance(kafka, str):
            console.print(f"[yellow]kafka: {kafka}[/]", markup=True, highlight=False)
        elif kafka is not None:
            _print_kafka(kafka)
    if not everything_up:
        raise typer.Exit(ExitCode.UNAVAILABLE)  # scripts can ask `foodflow status` what runs


def _kafka_status(settings: Settings) -> kafka_status.KafkaStatus | str:
    """Kafka's own view, or why it could not be read (a line, not a traceback)."""
    from confluent_kafka import KafkaException

    from foodflow.tools import kafka_status

    try:
        return kafka_status.kafka_status(settings)
    except KafkaException as exc:
        return f"metadata unreadable ({cli_errors.one_line(cli_errors.kafka_reason(exc), 160)})"


def _kafka_document(kafka: kafka_status.KafkaStatus | str | None) -> object:
    """`foodflow status --json`'s "kafka": null when no broker runs, {"error": …} when it did
    not answer."""
    if kafka is None:
        return None
    if isinstance(kafka, str):
        return {"error": kafka}
    return {
        "brokers": [vars(b) for b in kafka.brokers],
        "active_controller": kafka.active_controller,
        "replication_factor": kafka.replication_factor,
        "min_insync_replicas": kafka.min_insync_replicas,
        "partitions": kafka.partitions,
        "under_replicated": [{"topic": t, "partition": p} for t, p in kafka.under_replicated],
        "offline": [{"topic": t, "partition": p} for t, p in kafka.offline],
        "groups": [
            {
                "group_id": g.group_id,
                "state": g.state,
                "lag": g.lag,
                "lag_by_topic": g.by_topic,
                "members": [
                    {
                        "member_id": m.member_id,
                        "instance_id": m.instance_id,
                        "client_id": m.client_id,
                        "host": m.host,
                        "partitions": [{"topic": t, "partition": p} for t, p in m.partitions],
                        "lag": m.lag,
                    }
                    for m in g.assignment
                ],
            }
            for g in kafka.groups
        ],
        "errors": kafka.errors,
    }


def _print_kafka(kafka: kafka_status.KafkaStatus) -> None:
    from rich.table import Table

    from foodflow.tools.kafka_status import partition_ranges

    brokers = Table(
        "broker",
        "address",
        "state",
        "controller",
        "rack",
        title=f"Kafka: replication factor {kafka.replication_factor}, min.insync.replicas"
        f" {kafka.min_insync_replicas}, {kafka.partitions} partitions a topic",
        title_justify="left",
    )
    for b in kafka.brokers:
        brokers.add_row(
            str(b.node_id),
            b.address,
            "[green]up[/]" if b.up else "[red]down[/]",
            "[bold]active[/]" if b.controller else "",
            b.rack or "",
        )
    console.print(brokers)
    if kafka.active_controller is None:
        console.print("[yellow]no active controller (an election is under way?)[/]")
    if kafka.offline:
        console.print(f"[red]offline partitions (no leader): {partition_ranges(kafka.offline)}[/]")
    if kafka.under_replicated:
        console.print(
            f"[yellow]under-replicated partitions ({len(kafka.under_replicated)}):"
            f" {partition_ranges(kafka.under_replicated)}[/]"
        )
    else:
        console.print("[green]no under-replicated partitions[/]")
    groups = Table("consumer group", "state", "member", "partitions", "lag", title_justify="left")
    for g in kafka.groups:
        if not g.assignment:
            groups.add_row(g.group_id, g.state, "", "", str(g.lag))
            continue
        for i, m in enumerate(sorted(g.assignment, key=lambda m: m.instance_id or m.client_id)):
            groups.add_row(
                g.group_id if i == 0 else "",
                g.state if i == 0 else "",
                m.instance_id or m.client_id,
                partition_ranges(m.partitions),
                str(m.lag),
            )
    console.print(groups)
    for error in kafka.errors:
        console.print(f"[yellow]{error}[/]")


def _restarts(svc: processes.ServiceState) -> str:
    """How often the supervisor restarted the service; whether it gave up on a crash loop."""
    return f"[red]{svc.restarts}, gave up[/]" if svc.gave_up else str(svc.restarts)


def _print_json(document: object) -> None:
    """`document` as the only thing on stdout (Decimal, datetime, UUID as JSON text)."""
    from pydantic_core import to_jsonable_python

    sys.stdout.write(json.dumps(to_jsonable_python(document), indent=2) + "\n")


def _parse_item(text: str) -> OrderItemIn:
    from pydantic import ValidationError

    from foodflow.contracts.orders import OrderItemIn

    item_id, _, quantity = text.partition(":")
    if quantity and not quantity.isdigit():
        raise typer.BadParameter(f"{text!r}: expected ITEM_ID[:QUANTITY]", param_hint="--item")
    try:
        return OrderItemIn(item_id=item_id, quantity=int(quantity or "1"))
    except ValidationError as exc:
        raise _bad_value(text, exc, "--item") from None


def _bad_value(text: str, exc: ValidationError, option: str) -> typer.BadParameter:
    """A usage error that names the fields pydantic refused, not its repr of them."""
    lines = "; ".join(cli_errors.validation_lines(exc))
    return typer.BadParameter(f"{text!r}: {lines}", param_hint=option)


def _watch(
    order_id: uuid.UUID, since_ms: int, timeout: float = 30.0, *, exit_if_failed: bool = True
) -> None:
    """Follow the order to its final state; exit 1 when it did not go through (FAILED or
    CANCELLED) and `exit_if_failed`, so that a script can tell."""
    import asyncio

    from foodflow.contracts.orders import OrderStatus
    from foodflow.platform.errors import FoodflowError
    from foodflow.tools import tracking

    settings = get_settings()
    last = None
    try:
        for update in tracking.follow(settings, order_id, since_ms, timeout=timeout):
            _print_update(update)
            last = update
    except Unavailable:
        raise
    except FoodflowError as exc:
        errors.print(f"[red]{exc}[/]")
        raise typer.Exit(ExitCode.REFUSED) from None
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
        errors.print(f"[red]order {order_id} {last.status.value}: {last.reason or ''}[/]")
        if exit_if_failed:
            raise typer.Exit(ExitCode.REFUSED)


@order_app.command("send")
def order_send(
    user: str = typer.Option("user-001", help="The customer's id."),
    item: list[str] = typer.Option(..., help="ITEM_ID[:QUANTITY], repeatable."),
    promo: str | None = typer.Option(None, help="A promo code, e.g. WELCOME5."),
    watch: bool = typer.Option(True, help="Follow the order to its final state."),
) -> None:
    """Publish an order on validated_orders (and follow it; exit 1 if it FAILED or was
    CANCELLED)."""
    from pydantic import ValidationError

    from foodflow.contracts.orders import ValidatedOrder

    settings = get_settings()
    lines = [_parse_item(i) for i in item]
    try:
        order = ValidatedOrder(user_id=user, items=lines, promo_code=promo)
    except ValidationError as exc:
        raise typer.BadParameter("; ".join(cli_errors.validation_lines(exc))) from None
    needs = [cli_errors.postgres(settings)] if watch else []
    cli_errors.require(*needs)
    cli_errors.require_kafka(settings)
    from foodflow.tools import tracking

    since = int(time.time() * 1000) - 1000
    try:
        order_id = tracking.send_order(settings, order, timeout=SEND_TIMEOUT_SECONDS)
    except PublishError as exc:
        if exc.refused:
            errors.print(f"Kafka refused the order: {cli_errors.one_line(str(exc))}", markup=False)
            raise typer.Exit(ExitCode.REFUSED) from None
        raise Unavailable([cli_errors.kafka(settings)], cause=str(exc)) from None
    console.print(f"sent order [bold]{order_id}[/]")
    if watch:
        _watch(order_id, since)


# The broker answered the probe just before: a publish not acknowledged within this long means
# it stopped answering meanwhile.
SEND_TIMEOUT_SECONDS = 10.0


@order_app.command("status")
def order_status(
    order_id: uuid.UUID,
    as_json: bool = typer.Option(False, "--json", help="One JSON document, for scripts."),
) -> None:
    """Current status (Redis' copy, else PostgreSQL's order state); the stored order after
    (exit 1 if there is no such order)."""
    import asyncio

    settings = get_settings()
    cli_errors.require(cli_errors.redis(settings), cli_errors.postgres(settings))
    from foodflow.tools import tracking

    update = tracking.current_status(settings, order_id)
    if update is not None:
        if as_json:
            _print_json({"source": "order_state", **update.model_dump(mode="json")})
            return
        console.print(f"[dim]current[/]  order {order_id}  user {update.user_id}")
        _print_update(update)
        if update.price is not None:
            console.print_json(update.price.model_dump_json())
        return
    row = asyncio.run(tracking.stored_order(settings, order_id))
    if row is None:
        errors.print(f"[red]no order {order_id}[/]")
        raise typer.Exit(ExitCode.REFUSED)
    if as_json:
        _print_json({"source": "orders", **row})
        return
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
    """Follow an order's status events live until it is final: through the kitchen's and the
    courier's steps to DELIVERED (the seed's orders, which have no address, end CONFIRMED);
    exit 1 if it FAILED or was CANCELLED, or if there is no such order."""
    settings = get_settings()
    cli_errors.require(cli_errors.redis(settings), cli_errors.postgres(settings))
    cli_errors.require_kafka(settings)
    from foodflow.tools import tracking

    # An order just sent may not be taken in yet: look for it a few seconds before saying no.
    deadline = time.monotonic() + UNKNOWN_ORDER_WAIT_SECONDS
    current = tracking.current_status(settings, order_id)
    while current is None and time.monotonic() < deadline:
        time.sleep(0.5)
        current = tracking.current_status(settings, order_id)
    if current is None:
        errors.print(f"[red]unknown order {order_id}[/] (no such order has been taken in)")
        raise typer.Exit(ExitCode.REFUSED)
    _watch(order_id, int(current.created_at.timestamp() * 1000) - 1000, timeout)


@app.command("logs")
def logs(
    order_id: uuid.UUID,
    log_dir: Path | None = typer.Option(
        None, help="Folder of the services' logs (default: .state/services/logs)."
    ),
) -> None:
    """One order's log lines from every service's log (rotated files too), in time order
    (exit 1 if none)."""
    from foodflow.platform.logs import lines_for_order, log_files

    folder = log_dir or get_settings().state_dir / "services" / "logs"
    lines = lines_for_order(str(order_id), log_files(folder))
    if not lines:
        errors.print(f"[yellow]no lines about order {order_id} in {folder}/*.log[/]")
        raise typer.Exit(ExitCode.REFUSED)
    for line in lines:
        console.print(line.render(), markup=False, highlight=False)


def run() -> None:
    """The `foodflow` command: `app`, with what the user can mend said in one line instead of
    a traceback: a server that does not answer (exit 3), invalid settings (exit 2)."""
    try:
        app()
    except Unavailable as exc:
        errors.print(exc.line(), style="bold red", markup=False)
        raise SystemExit(ExitCode.UNAVAILABLE) from None
    except Exception as exc:
        if _is_settings_error(exc):
            for line in cli_errors.validation_lines(exc):  # type: ignore[arg-type]
                errors.print(f"invalid setting {line}", style="bold red", markup=False)
            raise SystemExit(ExitCode.USAGE) from None
        if not isinstance(exc, _unreachable()):
            raise
        # A server that stopped answering after its probe, in a client library's words.
        errors.print(
            f"a server foodflow needs is not answering ({cli_errors.one_line(str(exc), 160)})"
            f" — {cli_errors.HINT}",
            style="bold red",
            markup=False,
        )
        raise SystemExit(ExitCode.UNAVAILABLE) from None


def _is_settings_error(exc: Exception) -> bool:
    """A ValidationError of `Settings`: an environment variable or .env line the user set."""
    from pydantic import ValidationError

    return isinstance(exc, ValidationError) and exc.title == "Settings"


# A file system error is not a server that does not answer: it keeps its traceback.
_LOCAL_OS_ERRORS = (FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError)


def _unreachable() -> tuple[type[BaseException], ...]:
    """Exceptions that say a server did not answer, from the client libraries loaded (one
    that was never imported cannot have raised)."""
    found: list[type[BaseException]] = [ConnectionError, TimeoutError, PublishError]
    if "redis" in sys.modules:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        found += [RedisConnectionError, RedisTimeoutError]
    if "confluent_kafka" in sys.modules:
        from confluent_kafka import KafkaException

        found.append(KafkaException)
    if "aiohttp" in sys.modules:
        import aiohttp

        found.append(aiohttp.ClientConnectionError)
    if "asyncpg" in sys.modules:
        from foodflow.platform.db.pool import DATABASE_UNAVAILABLE_ERRORS

        found += [e for e in DATABASE_UNAVAILABLE_ERRORS if e is not OSError]
    return tuple(found)


if __name__ == "__main__":
    run()
