"""The `foodflow bench` command: restart for the measurement, load, ceilings, report."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import platform
import signal
import sys
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import psutil
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from foodflow.platform.config import PROJECT_ROOT, Settings, get_settings
from foodflow.tools import processes, restore
from foodflow.tools.bench.ceilings import kafka_ceiling, postgres_ceiling, sample_final_event
from foodflow.tools.bench.load import (
    BENCH_ITEMS,
    LoadResult,
    LoadRun,
    order_manager_backlog,
    prepare_catalogue,
    remove_catalogue,
    wait_for_backlog,
)
from foodflow.tools.bench.procstats import ProcessSampler
from foodflow.tools.bench.report import plot, summarize, write_json

log = logging.getLogger(__name__)
console = Console(soft_wrap=True)

BENCH_ENV = {"PAYMENT_DELAY_SECONDS": "0"}
# The seed's model: one order at a time, one message per consume, one item per HTTP call.
SEQUENTIAL_ENV = {
    "MAX_IN_FLIGHT_ORDERS": "1",
    "CONSUME_BATCH_SIZE": "1",
    "CONSUME_BATCHES_IN_FLIGHT": "1",
    "HTTP_BATCH_MAX_ITEMS": "1",
}
# Kafka messages one order causes: validated_orders, 3 status updates, 1 db_write.
MESSAGES_PER_ORDER = 5
ORDER_PATH = frozenset(
    {"inventory_service", "pricing_service", "payment_service", "order_writer", "order_manager"}
)


def bench(
    rate: float | None = typer.Option(None, help="Open loop: orders per second, on schedule."),
    max_: bool = typer.Option(False, "--max", help="Closed loop: as fast as the system sustains."),
    idle: bool = typer.Option(
        False, "--idle", help="No orders: what the system costs at rest, for --duration seconds."
    ),
    duration: float = typer.Option(30.0, help="Seconds of sending, warm-up included."),
    warmup: float = typer.Option(5.0, help="Seconds at the start left out of the figures."),
    window: int = typer.Option(2000, help="--max: at most this many orders unfinished."),
    restart: bool = typer.Option(
        True,
        help="Restart the services with PAYMENT_DELAY_SECONDS=0 first (else use as they run;"
        " --env PAYMENT_DELAY_SECONDS=0.3 measures with the provider's latency).",
    ),
    scale: list[str] = typer.Option([], help="SERVICE=N instances for the run (with --restart)."),
    env: list[str] = typer.Option(
        [], help="KEY=VALUE setting for the restarted services, e.g. CONSUME_BATCH_SIZE=50."
    ),
    compare_sequential: bool = typer.Option(
        False, help="Also run with the order_manager at one order in flight; print the ratio."
    ),
    ceilings: bool = typer.Option(True, help="Measure PostgreSQL's and Kafka's ceilings too."),
    drain_timeout: float = typer.Option(30.0, help="Seconds to wait for the last orders."),
    results: Path = typer.Option(PROJECT_ROOT / "results", help="Folder for JSON and PNG."),
    keep: bool = typer.Option(
        False, help="Leave the bench items (bench-NN, unlisted) in the catalogue afterwards."
    ),
) -> None:
    """Measure end-to-end throughput and latency (publish → CONFIRMED → row in PostgreSQL).

    The bench orders its own items (bench-NN: off the public menu and the dashboard, removed
    afterwards unless --keep), never the shop's. Services it restarts with its settings are
    restarted as they ran before when it ends, also when it fails or is interrupted."""
    if (rate is not None) + max_ + idle != 1:
        raise typer.BadParameter("give exactly one of --rate N, --max or --idle")
    if idle:
        _idle(get_settings(), duration, results)
        return
    if not 0 <= warmup < duration:
        raise typer.BadParameter("--warmup must be shorter than --duration")
    try:
        instances = processes.parse_scale(scale)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--scale") from None
    if any("=" not in item for item in env):
        raise typer.BadParameter("expected KEY=VALUE", param_hint="--env")
    service_env = {**BENCH_ENV, **dict(item.split("=", 1) for item in env)}
    settings = get_settings()
    logging.basicConfig(level=logging.WARNING)
    mode = f"open loop at {rate:g}/s" if rate is not None else f"closed loop (window {window})"

    # The services as they run now, to put back at the end: the bench restarts them with its
    # own settings (--restart, or the order manager alone for --compare-sequential).
    before = restore.snapshot(settings, ORDER_PATH) if restart or compare_sequential else None
    try:
        with _stop_signals_raise():
            if restart:
                delay = service_env["PAYMENT_DELAY_SECONDS"]
                console.print(
                    f"Restarting the services with PAYMENT_DELAY_SECONDS={delay} to measure"
                )
                _restart(settings, service_env, instances, before or {})
            else:
                console.print(
                    "[yellow]Using the services as they run (their payment delay counts)[/]"
                )
            asyncio.run(prepare_catalogue(settings))
            try:
                _run(
                    settings,
                    rate=rate,
                    duration=duration,
                    warmup=warmup,
                    window=window,
                    drain_timeout=drain_timeout,
                    results=results,
                    mode=mode,
                    restart=restart,
                    instances=instances,
                    service_env=service_env,
                    ceilings=ceilings,
                    compare_sequential=compare_sequential,
                    before=before or {},
                )
            finally:
                if keep:
                    console.print(f"bench items kept (unlisted): {BENCH_ITEMS[0]}…")
                else:
                    asyncio.run(remove_catalogue(settings))
    finally:
        if before is not None:
            _put_back(settings, before)


def _run(
    settings: Settings,
    *,
    rate: float | None,
    duration: float,
    warmup: float,
    window: int,
    drain_timeout: float,
    results: Path,
    mode: str,
    restart: bool,
    instances: dict[str, int],
    service_env: dict[str, str],
    ceilings: bool,
    compare_sequential: bool,
    before: Mapping[str, restore.Started],
) -> None:
    """The measurement (and the optional ceilings and sequential run), then the report."""
    started_at = datetime.now(UTC)
    console.print(f"[bold]Load[/]: {mode}, {duration:g}s ({warmup:g}s warm-up)")
    res, procs = _measure(settings, rate, duration, warmup, window, drain_timeout)
    summary = summarize(res, duration)
    out: dict[str, Any] = {
        **_header(started_at, mode),
        "payment_delay_zero": restart and float(service_env["PAYMENT_DELAY_SECONDS"]) == 0,
        "scale": instances,
        "service_env": service_env if restart else None,
        "duration_s": duration,
        "warmup_s": warmup,
        "result": summary,
        "processes": procs,
        "cpu_ms_per_order": _cpu_ms_per_order(summary, procs),
        "cpu_ms_per_order_by_process": _cpu_ms_per_order_by_process(summary, procs),
    }
    _print_result("foodflow", summary, procs)

    if ceilings:
        console.print("\n[bold]Ceilings of this machine[/] (scratch table / scratch topic)")
        pg = asyncio.run(postgres_ceiling(settings))
        size = len(sample_final_event().model_dump_json())
        kafka = kafka_ceiling(settings, size)
        ours = summary["throughput_persisted_per_s"]
        out["ceilings"] = {
            "postgres": pg,
            "kafka": kafka,
            "ratio_to_postgres": round(ours / pg["orders_per_s"], 4),
            "ratio_to_kafka_messages": round(
                ours * MESSAGES_PER_ORDER / kafka["messages_per_s"], 4
            ),
        }
        console.print(
            f"  PostgreSQL, the writer's statements: {pg['orders_per_s']:,.0f} orders/s  → ours is"
            f" {out['ceilings']['ratio_to_postgres']:.1%} of it\n"
            f"  Kafka produce→consume, {size} B: {kafka['messages_per_s']:,.0f} msg/s"
            f"  → ours ({ours:,.0f} orders/s x {MESSAGES_PER_ORDER} messages) is"
            f" {out['ceilings']['ratio_to_kafka_messages']:.1%} of it"
        )

    if compare_sequential:
        console.print(
            "\n[bold]Sequential[/]: order_manager restarted with MAX_IN_FLIGHT_ORDERS=1 and"
            " CONSUME_BATCH_SIZE=1; same duration, closed loop (an open loop above its capacity"
            " would only queue)"
        )
        # Put back with the others when the bench ends (`restore`).
        sequential_env = {**service_env, **SEQUENTIAL_ENV} if restart else SEQUENTIAL_ENV
        _restart_order_manager(settings, sequential_env, before)
        seq_res, seq_procs = _measure(settings, None, duration, warmup, 50, drain_timeout)
        seq = summarize(seq_res, duration)
        _print_result("sequential", seq, seq_procs)
        ratio = summary["throughput_persisted_per_s"] / max(1e-9, seq["throughput_persisted_per_s"])
        out["sequential"] = {"result": seq, "processes": seq_procs, "ratio": round(ratio, 2)}
        console.print(f"  concurrent / sequential throughput: [bold]{ratio:.1f}x[/]")

    stamp = started_at.strftime("%Y%m%dT%H%M%SZ")
    json_path = results / f"bench-{stamp}.json"
    png_path = results / f"bench-{stamp}.png"
    write_json(json_path, out)
    plot(png_path, res, f"foodflow bench, {mode}, {started_at:%Y-%m-%d %H:%M} UTC")
    console.print(f"\nresults: {json_path}\n         {png_path}")


def _idle(settings: Settings, duration: float, results: Path) -> None:
    """Each process's CPU and memory over `duration` seconds with no order sent: what the
    system costs at rest (the services as they run; nothing restarted)."""
    started_at = datetime.now(UTC)
    console.print(f"[bold]Idle[/]: no orders, {duration:g}s, the services as they run")
    sampler = ProcessSampler(settings)
    sampler.start()
    try:
        time.sleep(duration)
    finally:
        procs = sampler.stop()
    _print_processes(procs)
    machine = procs.get("machine", {}).get("cpu_avg_percent")
    console.print(f"  the whole machine at rest: [bold]{machine} %[/] of one core")
    out = {
        **_header(started_at, "idle"),
        "duration_s": duration,
        "processes": procs,
    }
    json_path = results / f"bench-idle-{started_at:%Y%m%dT%H%M%SZ}.json"
    write_json(json_path, out)
    console.print(f"\nresults: {json_path}")


def _header(started_at: datetime, mode: str) -> dict[str, Any]:
    """What every result file starts with: the command, when, on what machine, which mode."""
    return {
        "command": "foodflow bench " + " ".join(_argv()),
        "date": started_at.isoformat(timespec="seconds"),
        "machine": _machine(),
        "mode": mode,
    }


def _put_back(settings: Settings, before: Mapping[str, restore.Started]) -> None:
    """Restart the services the bench restarted as they ran before it (stopped if they did not
    run); say so, and say what failed."""
    console.print("Restarting the services with the settings they had before the bench")
    errors = restore.restore(settings, before, ORDER_PATH)
    for error in errors:
        console.print(f"[bold red]{error}[/] — `foodflow up` starts what is missing")
    if errors:
        raise typer.Exit(3)


@contextlib.contextmanager
def _stop_signals_raise() -> Iterator[None]:
    """SIGTERM and SIGHUP end the bench as Ctrl-C does (an exception), so its clean-up runs."""

    def stop(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _measure(
    settings: Settings,
    rate: float | None,
    duration: float,
    warmup: float,
    window: int,
    drain_timeout: float,
) -> tuple[LoadResult, dict[str, dict[str, float | int | str]]]:
    backlog = order_manager_backlog(settings)
    if backlog:
        console.print(f"waiting for {backlog:,} earlier orders to clear validated_orders")
        if (left := wait_for_backlog(settings)) > 0:
            console.print(f"[yellow]{left:,} earlier orders still queued: figures include them[/]")
    run = LoadRun(
        settings,
        rate=rate,
        duration=duration,
        warmup=warmup,
        window=window,
        drain_timeout=drain_timeout,
    )
    sampler = ProcessSampler(settings)
    expected = int(rate * duration) if rate is not None else None
    with Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        sent_task = progress.add_task("sent", total=expected)
        final_task = progress.add_task("final", total=expected)
        stored_task = progress.add_task("persisted", total=expected)

        def show(r: LoadRun) -> None:
            sent = r.res.sent
            total = expected or sent
            progress.update(sent_task, completed=sent, total=total)
            progress.update(final_task, completed=r.final_count, total=total)
            progress.update(stored_task, completed=r.done_count, total=total)

        sampler.start()
        try:
            res = asyncio.run(run.run(show))
        finally:
            procs = sampler.stop()
    return res, procs


def _print_result(label: str, s: dict[str, Any], procs: dict[str, dict[str, Any]]) -> None:
    console.print(
        f"[bold]{label}[/]: sent {s['sent']:,} (offered {s['offered_per_s']:,.0f}/s), statuses"
        f" {s['statuses']}, persisted {s['persisted']:,}, Redis verified {s['redis_verified']:,},"
        f" every order accounted for: {s['accounted']}"
    )
    console.print(
        f"  sustained after warm-up: [bold]{s['throughput_confirmed_per_s']:,.0f}[/] CONFIRMED/s,"
        f" [bold]{s['throughput_persisted_per_s']:,.0f}[/] persisted/s;"
        f" errors {s['error_total']} {s['errors']}"
    )
    table = Table("latency (ms)", "p50", "p90", "p99", "p99.9", "max", "n")
    for name in ("confirmed", "persisted"):
        lat = s[f"latency_{name}"]
        table.add_row(
            "→ CONFIRMED event" if name == "confirmed" else "→ row in PostgreSQL",
            *(f"{lat[k]:,.1f}" for k in ("p50_ms", "p90_ms", "p99_ms", "p99.9_ms", "max_ms")),
            f"{lat['count']:,}",
        )
    console.print(table)
    _print_processes(procs)
    per_order = _cpu_ms_per_order(s, procs)
    if per_order is not None:
        console.print(
            f"  CPU per order, whole machine: ≈ {per_order:.1f} ms"
            f" ({procs['machine']['cpu_avg_percent']} % of one core ÷"
            f" {s['throughput_confirmed_per_s']:,.0f} orders/s)"
        )


def _print_processes(procs: dict[str, dict[str, Any]]) -> None:
    ptable = Table("process", "pid", "CPU avg %", "CPU max %", "RSS start MB", "RSS end MB")
    for name, p in procs.items():
        ptable.add_row(
            name if name != "machine" else "machine (all)",
            str(p["pid"]) if name != "machine" else "",
            f"{p['cpu_avg_percent']}",
            f"{p['cpu_max_percent']}",
            f"{p['rss_start_mb']}",
            f"{p['rss_end_mb']}",
        )
    console.print(ptable)


def _cpu_ms_per_order(s: dict[str, Any], procs: dict[str, dict[str, Any]]) -> float | None:
    """The machine's CPU (all processes and the kernel) per sustained order, in ms. The CPU
    average covers the whole sampled run, warm-up and drain included: a lower bound."""
    machine = procs.get("machine")
    if not machine or s["throughput_confirmed_per_s"] <= 0:
        return None
    return _ms_per_order(machine, s, digits=2)


def _cpu_ms_per_order_by_process(
    s: dict[str, Any], procs: dict[str, dict[str, Any]]
) -> dict[str, float]:
    """Each process's (and the machine's) CPU per sustained order, in ms: where it goes."""
    if s["throughput_confirmed_per_s"] <= 0:
        return {}
    return {name: _ms_per_order(p, s, digits=3) for name, p in procs.items()}


def _ms_per_order(proc: dict[str, Any], s: dict[str, Any], digits: int) -> float:
    """A process's average CPU (% of one core) as ms per sustained order."""
    cpu_ms_per_s = float(proc["cpu_avg_percent"]) * 10
    return round(cpu_ms_per_s / float(s["throughput_confirmed_per_s"]), digits)


def _restart(
    settings: Settings,
    env: dict[str, str],
    scale: dict[str, int],
    before: Mapping[str, restore.Started],
) -> None:
    """Restart, in start order, the services an order passes through (the others are left
    alone): `scale` instances of each scalable one, and any extra instance stopped. Each starts
    from the environment it ran with (`before`), `env` over it: the bench's settings on top of
    the user's, not the environment of the shell the bench runs in."""
    wanted = {name: scale.get(name, 1) for name in processes.SCALABLE}
    path = [s for s in processes.all_services(settings, env, wanted) if s.service in ORDER_PATH]
    for svc in reversed(path):
        svc.stop()
    for svc in path:
        if svc.instance < wanted.get(svc.service, 1):
            svc.base_env = restore.base_environ(before, svc.service, svc.instance) or None
            svc.start()


def _restart_order_manager(
    settings: Settings, env: dict[str, str], before: Mapping[str, restore.Started]
) -> None:
    """Restart every running order_manager instance with `env` over what it ran with."""
    for svc in processes.all_services(settings, env):
        if svc.service == "order_manager" and svc.stop():
            svc.base_env = restore.base_environ(before, svc.service, svc.instance) or None
            svc.start()


def _machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "cpu_model": _cpu_model(),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _argv() -> list[str]:
    args = sys.argv[1:]
    return args[1:] if args and args[0] == "bench" else args
