"""`foodflow dlq list|replay`: inspect dead letters and send their payloads again."""

from __future__ import annotations

import base64
import time

import typer
from rich.console import Console
from rich.table import Table

from foodflow.contracts import topics
from foodflow.contracts.orders import DeadLetter
from foodflow.platform.config import get_settings
from foodflow.tools.kafka_io import read_since, tool_producer

dlq_app = typer.Typer(help="Inspect the dead-letter topic and re-drive its messages.")
console = Console(soft_wrap=True)


def _letters(since_hours: float) -> list[tuple[int, int, DeadLetter]]:
    since_ms = int((time.time() - since_hours * 3600) * 1000)
    out: list[tuple[int, int, DeadLetter]] = []
    for msg in read_since(
        get_settings(), topics.DEAD_LETTER, since_ms, group="foodflow-dlq", timeout=30
    ):
        try:
            letter = DeadLetter.model_validate_json(msg.value() or b"")
        except ValueError:
            continue  # not ours to read; a dead-letter topic must not need one of its own
        out.append((msg.partition() or 0, msg.offset() or 0, letter))
    return sorted(out, key=lambda row: row[2].failed_at)


@dlq_app.command("list")
def dlq_list(
    since_hours: float = typer.Option(24.0, help="How far back to look."),
    limit: int = typer.Option(50, help="Show at most this many (newest)."),
) -> None:
    """Dead letters: when, where from, why, and the start of the payload."""
    letters = _letters(since_hours)
    table = Table("dlq ref", "failed at", "source", "order", "error", "payload")
    for partition, offset, letter in letters[-limit:]:
        table.add_row(
            f"{partition}:{offset}",
            f"{letter.failed_at:%Y-%m-%d %H:%M:%S}",
            f"{letter.source_topic}/{letter.source_partition}@{letter.source_offset}",
            str(letter.order_id or "-"),
            letter.error[:80],
            letter.payload[:60],
        )
    console.print(table)
    console.print(f"{len(letters)} dead letter(s) in the last {since_hours:g} h")


@dlq_app.command("replay")
def dlq_replay(
    refs: list[str] = typer.Argument(None, help="PARTITION:OFFSET refs from `dlq list`."),
    all_: bool = typer.Option(False, "--all", help="Replay every dead letter in the window."),
    since_hours: float = typer.Option(24.0, help="Window for --all."),
) -> None:
    """Publish dead letters' original payloads to their source topic again."""
    if not refs and not all_:
        raise typer.BadParameter("give PARTITION:OFFSET refs, or --all")
    wanted = set(refs or [])
    chosen = [
        letter
        for partition, offset, letter in _letters(since_hours)
        if all_ or f"{partition}:{offset}" in wanted
    ]
    cut = [letter for letter in chosen if letter.payload_truncated]
    if cut:
        # Only the start of these was kept: what they said is gone, and resending a part
        # would be a different message.
        console.print(f"[yellow]skipping {len(cut)} truncated dead letter(s)[/]")
        chosen = [letter for letter in chosen if not letter.payload_truncated]
    producer = tool_producer(get_settings())
    for letter in chosen:
        raw = (
            base64.b64decode(letter.payload_base64)
            if letter.payload_base64
            else letter.payload.encode()
        )
        key = str(letter.order_id) if letter.order_id else None
        producer.produce(letter.source_topic, value=raw, key=key)
    left = producer.flush(30)
    console.print(f"replayed {len(chosen) - left} of {len(chosen)} dead letter(s)")
    if left:
        raise typer.Exit(1)
