"""The `foodflow chaos` command: progress while it runs, a verdict table at the end."""

from __future__ import annotations

import asyncio
import random

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from foodflow.platform.config import get_settings
from foodflow.tools import processes
from foodflow.tools.chaos.brokers import (
    BROKER_FAULTS,
    DOWNTIME_SECONDS,
    IN_SYNC_WITHIN_SECONDS,
    cluster_problem,
)
from foodflow.tools.chaos.faults import OUTAGE_TARGETS, POISON_KINDS
from foodflow.tools.chaos.runner import (
    SETTLE_MARGIN_SECONDS,
    ChaosConfig,
    ChaosReport,
    ChaosRun,
    plan_faults,
)
from foodflow.tools.cli_errors import ExitCode
from foodflow.tools.infra import manager

console = Console(soft_wrap=True)


def chaos(
    orders: int = typer.Option(10_000, min=10, help="How many orders to send."),
    rate: float = typer.Option(100.0, min=1, help="Orders per second, steady."),
    kills: int = typer.Option(1, min=0, help="SIGKILLs of each service during the run."),
    infra: bool = typer.Option(True, help="Restart Kafka, Redis and PostgreSQL once each."),
    recover_timeout: float = typer.Option(600.0, help="Seconds to wait for recovery."),
    seed: int | None = typer.Option(None, help="Random seed, to repeat a run."),
    keep_items: bool = typer.Option(
        False,
        "--keep",
        "--keep-items",
        help="Leave the run's items (chaos-<run>-N, unlisted) in the catalogue afterwards.",
    ),
    flushall: bool = typer.Option(True, help="Redis FLUSHALL once during the run."),
    poison: list[str] = typer.Option(
        list(POISON_KINDS),
        help=f"Poison messages to publish on validated_orders together, one of each kind:"
        f" {', '.join(POISON_KINDS)} (repeat the option; --poison none for none).",
    ),
    outage: list[str] = typer.Option(
        [],
        help=f"Take a dependency away for --outage-seconds: {', '.join(OUTAGE_TARGETS)}, or all"
        " (repeat the option).",
    ),
    outage_seconds: float = typer.Option(30.0, min=1, help="How long each outage lasts."),
    kill2: bool = typer.Option(
        True,
        help="Run --order-managers order managers and SIGKILL one of them (those chaos"
        " started are stopped afterwards).",
    ),
    order_managers: int | None = typer.Option(
        None,
        min=2,
        max=8,
        help="Order managers for --kill2 [default: 2; 3 with --brokers].",
    ),
    brokers: int | None = typer.Option(
        None,
        min=3,
        help="The running Kafka is a cluster of this many nodes (`foodflow up --brokers 3`):"
        " SIGKILL a random broker, the one leading the most validated_orders partitions and"
        " the active controller, each started again after --broker-downtime; then nothing may"
        " stay under-replicated longer than --in-sync-within.",
    ),
    broker_fault: list[str] = typer.Option(
        list(BROKER_FAULTS),
        help=f"With --brokers, the broker faults, each once: {', '.join(BROKER_FAULTS)}"
        " (repeat the option).",
    ),
    broker_downtime: float = typer.Option(
        DOWNTIME_SECONDS, min=0, help="Seconds a killed broker stays down."
    ),
    in_sync_within: float = typer.Option(
        IN_SYNC_WITHIN_SECONDS,
        min=1,
        help="Seconds after a killed broker is back within which no partition may still be"
        " under-replicated.",
    ),
    grace: float | None = typer.Option(
        None, help="The services' grace for outages [default: DEPENDENCY_GRACE_SECONDS]."
    ),
    max_stall: float = typer.Option(
        15.0, help="Longest stall allowed: after any single fault, and in the whole run."
    ),
    kitchens: bool = typer.Option(
        False,
        help="Restaurant faults: a share of orders carry an address (kitchens and couriers take"
        " them on, played by the simulator); kitchens reject some, one never answers, and the"
        " restaurant service is killed with the rest. Each such order must end DELIVERED or"
        " CANCELLED, refunded once, with no courier sent for a rejected one.",
    ),
    delivered: float = typer.Option(
        0.3, min=0, max=1, help="With --kitchens, the share of orders with an address."
    ),
    reject_share: float = typer.Option(
        0.2, min=0, max=1, help="With --kitchens, the share of orders the kitchens reject."
    ),
) -> None:
    """Drive orders while killing services, restarting and flushing Kafka, Redis and
    PostgreSQL, taking dependencies away and publishing poison messages; then check that no
    order was lost, duplicated, stuck, failed by a short outage or charged without a record,
    that stock is conserved, every bad message dead-lettered once, and no fault stalled the
    system for long. With --brokers, also kill brokers of the Kafka cluster and check that
    every partition is fully replicated again soon after."""
    settings = get_settings()
    outages = tuple(OUTAGE_TARGETS) if "all" in outage else tuple(outage)
    poisons = tuple(p for p in poison if p != "none")
    unknown = (
        set(outages) - set(OUTAGE_TARGETS)
        | set(poisons) - set(POISON_KINDS)
        | set(broker_fault) - set(BROKER_FAULTS)
    )
    if unknown:
        raise typer.BadParameter(
            f"unknown outage target, poison kind or broker fault: {sorted(unknown)}"
        )
    if brokers is not None:
        # First: on the wrong Kafka, nothing else about the system matters.
        problem = cluster_problem(settings, brokers)
        if problem is not None:
            code, line = problem
            console.print(f"[red]{line}[/]")
            raise typer.Exit(code)
    down = [s.name for s in manager.status(settings) if not s.running]
    down += [s.name for s in processes.status(settings) if not s.running]
    if down:
        console.print(
            f"[red]not running: {', '.join(down)}[/] — start the system with `foodflow up`"
        )
        raise typer.Exit(ExitCode.UNAVAILABLE)
    cfg = ChaosConfig(
        orders=orders,
        rate=rate,
        kills_per_service=kills,
        restart_infra=infra,
        recover_timeout=recover_timeout,
        seed=seed,
        keep_items=keep_items,
        flushall=flushall,
        poison=poisons,
        outages=outages,
        outage_seconds=outage_seconds,
        kill2=kill2,
        order_managers=order_managers or (3 if brokers else 2),
        brokers=brokers or 0,
        broker_faults=tuple(broker_fault),
        broker_downtime=broker_downtime,
        in_sync_within=in_sync_within,
        grace_seconds=grace,
        max_stall_seconds=max_stall,
        kitchens=kitchens,
        delivered_ratio=delivered,
        kitchen_reject_share=reject_share,
    )
    planned = plan_faults(cfg, orders / rate, random.Random(seed))
    apart = max_stall + SETTLE_MARGIN_SECONDS
    busy = len(outages) * outage_seconds + len(planned) * apart
    if busy > orders / rate:
        console.print(
            f"[yellow]{len(planned)} faults, one at a time and {apart:g} s apart, take at"
            f" least {busy:g} s, longer than the {orders / rate:g} s of"
            " sending: the later ones find fewer orders in flight (lower --rate)[/]"
        )
    with Progress(
        TextColumn("{task.description:<11}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as bars:
        tasks: dict[str, TaskID] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bars.add_task(stage, total=total)
            bars.update(tasks[stage], completed=done, total=total)

        report = asyncio.run(ChaosRun(settings, cfg, progress).run())
    print_report(report)
    if not report.passed:
        raise typer.Exit(1)


def print_report(r: ChaosReport) -> None:
    for fault in r.faults:
        console.print(f"  fault: {fault}")
    for name, ids in (
        ("charged but not persisted", r.charged_not_persisted),
        ("FAILED by a short fault", r.failed_by_short_fault),
        ("not dead-lettered", r.not_dead_lettered),
        ("a courier sent for a rejected order", r.courier_for_rejected),
        ("refunded more than once", r.refunded_twice),
    ):
        if ids:
            console.print(f"  {name}: {', '.join(ids[:10])}{' …' if len(ids) > 10 else ''}")
    table = Table("measure", "value", "verdict", title="foodflow chaos")
    table.columns[0].no_wrap = True
    table.columns[1].no_wrap = True

    def row(name: str, value: object, ok: bool | None = None) -> None:
        verdict = "" if ok is None else ("[green]ok[/]" if ok else "[bold red]FAIL[/]")
        table.add_row(name, str(value), verdict)

    row("orders sent", f"{r.sent} ({r.invalid_sent} malformed on purpose)")
    for status, count in sorted(r.outcomes.items()):
        row(f"  final {status}", count, status != "MISSING")
    row("lost (not final in orders and order_state)", len(r.lost), not r.lost)
    row("duplicated (one version, two transitions)", len(r.duplicated), not r.duplicated)
    row("stock drift (units)", sum(abs(d) for d in r.stock_drift.values()), not r.stock_drift)
    row("stuck (non-final)", len(r.stuck), not r.stuck)
    row("orders / order_state / events / cache disagree", len(r.inconsistent), not r.inconsistent)
    row("malformed with id not FAILED", len(r.invalid_not_failed), not r.invalid_not_failed)
    charged = r.charged_not_persisted
    row("charged but not persisted", len(charged), not charged)
    row(
        f"FAILED by a fault under the grace ({r.grace_seconds:g} s)",
        len(r.failed_by_short_fault),
        not r.failed_by_short_fault,
    )
    row(
        f"not dead-lettered (of {r.bad_messages} bad, {r.poison_sent} poison)",
        len(r.not_dead_lettered),
        not r.not_dead_lettered,
    )
    if r.to_deliver:
        row(f"orders to deliver (of {r.sent})", r.to_deliver)
        rejected = r.courier_for_rejected
        row("a courier sent for a rejected order", len(rejected), not rejected)
        row("refunded more than once", len(r.refunded_twice), not r.refunded_twice)
    excuse = f" ({r.crashes} crashes)" if r.crashes else ""
    row(f"dead letters repeated{excuse}", r.repeated_letters, r.letters_once)
    row("messages dead-lettered (any source)", r.dead_letters)
    recover = "did not recover" if r.recover_seconds is None else f"{r.recover_seconds:.1f} s"
    row("time to recover (after the last fault/send)", recover, r.recover_seconds is not None)
    for fault, seconds in r.stalls:
        row(f"  stall after {fault}", f"{seconds:.1f} s", seconds <= r.max_stall_seconds)
    # The fault by its number: the rows above and the list of faults name it in full.
    after = f" (after {r.longest_stall_after.split()[0]})" if r.longest_stall_after else ""
    row(
        "longest stall (any partition, whole run)",
        f"{r.longest_stall:.1f} s{after}",
        r.longest_stall <= r.max_stall_seconds,
    )
    for fault, in_sync in r.in_sync:
        row(
            f"  under-replicated after {fault}",
            f"none {in_sync:.1f} s after it was back"
            if in_sync is not None
            else f"some still {r.in_sync_within:g} s after it was back",
            in_sync is not None and in_sync <= r.in_sync_within,
        )
    row("run time", f"{r.duration_seconds:.1f} s")
    console.print(table)
    for note in r.notes:
        console.print(f"  {note}")
    for name, ids in (("lost", r.lost), ("duplicated", r.duplicated), ("stuck", r.stuck)):
        if ids:
            console.print(f"  {name}: {', '.join(ids[:10])}{' …' if len(ids) > 10 else ''}")
    console.print(
        "[bold green]all invariants hold[/]" if r.passed else "[bold red]invariants violated[/]"
    )
