"""The `foodflow` command line."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from foodflow.config import get_settings
from foodflow.errors import InfraError
from foodflow.infra import manager

app = typer.Typer(help="foodflow: the order-management backend of a food-delivery service.")
infra_app = typer.Typer(help="Kafka, PostgreSQL and Redis as local processes (no Docker).")
app.add_typer(infra_app, name="infra")

console = Console(soft_wrap=True)


def fail(exc: InfraError) -> typer.Exit:
    console.print(f"[bold red]{exc.server}: {exc.message}[/]")
    if exc.log_tail:
        console.print(f"[dim]{exc.log_tail}[/]", highlight=False, markup=False)
    return typer.Exit(1)


def _print_state(state: manager.ServerState) -> None:
    if state.running:
        verb = "started" if state.changed else "already running"
        console.print(f"[green]✔[/] {state.name:<9} {verb:<16} {state.address:<16} log: {state.log}")
    else:
        verb = "stopped" if state.changed else "was not running"
        console.print(f"[yellow]■[/] {state.name:<9} {verb}")


@infra_app.command("up")
def infra_up() -> None:
    """Start Kafka, PostgreSQL and Redis (idempotent); wait until each answers."""
    settings = get_settings()
    try:
        manager.up(settings, report=_print_state)
    except InfraError as exc:
        raise fail(exc) from None
    console.print(f"topics ready ({settings.topic_partitions} partitions each); state in {settings.state_dir}")


@infra_app.command("status")
def infra_status() -> None:
    """Show each server up or down, with its address and log."""
    table = Table("server", "state", "address", "log")
    states = manager.status(get_settings())
    for s in states:
        table.add_row(s.name, "[green]up[/]" if s.running else "[red]down[/]", s.address, str(s.log))
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


if __name__ == "__main__":
    app()
