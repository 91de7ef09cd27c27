"""`foodflow dlq list|show|replay`: inspect dead letters and send their payloads again.

A message is dead-lettered once per consumer process; a crash between its letter and the commit
of its offset can repeat the letter, with the same source (topic, partition, offset). Every
command here collapses letters by that source: one row, one replay per bad message.
"""

from __future__ import annotations

import base64
import hashlib
import re
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from foodflow.platform.config import get_settings
from foodflow.tools import cli_errors

if TYPE_CHECKING:
    from foodflow.contracts.orders import DeadLetter

dlq_app = typer.Typer(help="Inspect the dead-letter topic and re-drive its messages.")
console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)


@dataclass
class Parked:
    """One bad message: its first letter (and where that sits on the dead-letter topic) and how
    many letters name the same source."""

    partition: int
    offset: int
    letter: DeadLetter
    copies: int = 1

    @property
    def ref(self) -> str:
        return f"{self.partition}:{self.offset}"

    @property
    def source(self) -> str:
        letter = self.letter
        return f"{letter.source_topic}/{letter.source_partition}@{letter.source_offset}"


def collapse(letters: Iterable[tuple[int, int, DeadLetter]]) -> list[Parked]:
    """One `Parked` per source (topic, partition, offset), oldest letter first, in the order of
    the letters' times."""
    by_source: dict[tuple[str, int, int], Parked] = {}
    for partition, offset, letter in sorted(letters, key=lambda row: row[2].failed_at):
        source = (letter.source_topic, letter.source_partition, letter.source_offset)
        if source in by_source:
            by_source[source].copies += 1
        else:
            by_source[source] = Parked(partition, offset, letter)
    return list(by_source.values())


def _parked(since_hours: float) -> list[Parked]:
    """The dead letters of the last `since_hours`, collapsed by source. The broker is probed
    first (Unavailable: one line, exit 3) and the Kafka client and contracts loaded after."""
    settings = get_settings()
    cli_errors.require_kafka(settings)
    from foodflow.contracts import topics
    from foodflow.contracts.orders import DeadLetter
    from foodflow.tools.kafka_io import read_since

    since_ms = int((time.time() - since_hours * 3600) * 1000)
    out: list[tuple[int, int, DeadLetter]] = []
    for msg in read_since(settings, topics.DEAD_LETTER, since_ms, group="foodflow-dlq", timeout=30):
        try:
            letter = DeadLetter.model_validate_json(msg.value() or b"")
        except ValueError:
            continue  # not ours to read; a dead-letter topic must not need one of its own
        out.append((msg.partition() or 0, msg.offset() or 0, letter))
    return collapse(out)


@dlq_app.command("list")
def dlq_list(
    since_hours: float = typer.Option(24.0, help="How far back to look."),
    limit: int = typer.Option(50, help="Show at most this many (newest)."),
) -> None:
    """Dead messages, one row per source (repeated letters collapsed): when, where, why."""
    from rich.table import Table
    from rich.text import Text

    parked = _parked(since_hours)
    table = Table("dlq ref", "failed at", "source", "order", "error", "payload", "letters")
    for one in parked[-limit:]:
        letter = one.letter
        table.add_row(
            one.ref,
            f"{letter.failed_at:%Y-%m-%d %H:%M:%S}",
            one.source,
            str(letter.order_id or "-"),
            Text(letter.error[:80]),  # hostile text: never read as markup
            Text(letter.payload[:60]),
            str(one.copies),
        )
    console.print(table)
    letters = sum(one.copies for one in parked)
    console.print(
        f"{len(parked)} dead message(s) in the last {since_hours:g} h ({letters} letter(s));"
        " `foodflow dlq show REF` for one in full"
    )


@dlq_app.command("show")
def dlq_show(
    ref: str = typer.Argument(..., help="A PARTITION:OFFSET ref from `dlq list`."),
    since_hours: float = typer.Option(24.0, help="How far back to look."),
    original: bool = typer.Option(
        False, "--original", help="Write the whole original message to stdout, from its source."
    ),
) -> None:
    """One dead letter in full, and where the whole original message is."""
    found = [one for one in _parked(since_hours) if one.ref == ref]
    if not found:
        errors.print(f"[red]no dead letter {ref} in the last {since_hours:g} h[/]")
        raise typer.Exit(1)
    one = found[0]
    letter = one.letter
    if original:
        raw = _original(letter)
        if raw is None:
            errors.print(f"[red]{one.source} is gone (past the topic's retention, or changed)[/]")
            raise typer.Exit(1)
        sys.stdout.buffer.write(raw)
        return
    size = letter.payload_bytes if letter.payload_bytes is not None else len(letter.payload)
    console.print(f"source      {one.source}  (the whole original stays there until retention)")
    console.print(f"failed at   {letter.failed_at:%Y-%m-%d %H:%M:%S}, {one.copies} letter(s)")
    console.print(f"order       {letter.order_id or '-'}")
    console.print(f"error       {letter.error}", markup=False, highlight=False)
    cut = ", cut: the letter keeps the first 64 KiB" if letter.payload_truncated else ""
    console.print(f"payload     {size} byte(s){cut}")
    if letter.payload_sha256:
        console.print(f"sha-256     {letter.payload_sha256}")
    console.print(f"original    foodflow dlq show {one.ref} --original > message.bin")
    console.print(letter.payload, markup=False, highlight=False)


REF = re.compile(r"\d+:\d+")


@dlq_app.command("replay")
def dlq_replay(
    refs: list[str] = typer.Argument(None, help="PARTITION:OFFSET refs from `dlq list`."),
    all_: bool = typer.Option(False, "--all", help="Replay every dead letter in the window."),
    since_hours: float = typer.Option(24.0, help="Window for --all."),
) -> None:
    """Publish dead letters' original payloads to their source topic again (once per source)."""
    if not refs and not all_:
        raise typer.BadParameter("give PARTITION:OFFSET refs, or --all")
    wanted = set(refs or [])
    malformed = sorted(ref for ref in wanted if not REF.fullmatch(ref))
    if malformed:
        raise typer.BadParameter(f"{', '.join(malformed)}: expected PARTITION:OFFSET, e.g. 0:42")
    parked = _parked(since_hours)
    chosen = [one.letter for one in parked if all_ or one.ref in wanted]
    unknown = sorted(wanted - {one.ref for one in parked})
    if unknown:
        errors.print(f"[red]no dead letter {', '.join(unknown)} in the last {since_hours:g} h[/]")
        raise typer.Exit(1)
    from foodflow.platform.kafka.producer import refuses_message
    from foodflow.tools.kafka_io import tool_producer

    # The broker answered just before: one that does not acknowledge within this long has
    # stopped answering (librdkafka would otherwise keep trying for 5 minutes).
    producer = tool_producer(get_settings(), {"message.timeout.ms": REPLAY_TIMEOUT_MS})
    sent = gone = 0
    acknowledged: list[object] = []
    failures: list[object] = []

    def delivered(err: object, msg: object) -> None:
        if err is None:
            acknowledged.append(msg)
        else:
            failures.append(err)

    for letter in chosen:
        # A letter keeps the first 64 KiB only of a larger message: that one is read back from
        # its source, and skipped once the source no longer holds it (resending a part of it
        # would be a different message).
        raw = _original(letter) if letter.payload_truncated else _kept(letter)
        if raw is None:
            gone += 1
            continue
        key = str(letter.order_id) if letter.order_id else None
        producer.produce(letter.source_topic, value=raw, key=key, on_delivery=delivered)
        sent += 1
    if gone:
        console.print(f"[yellow]skipping {gone} cut dead letter(s) whose original is gone[/]")
    producer.flush(REPLAY_TIMEOUT_MS / 1000 + 1)
    console.print(f"replayed {len(acknowledged)} of {len(chosen)} dead letter(s)")
    if len(acknowledged) < sent:
        refused = [err for err in failures if refuses_message(err)]
        if refused:  # the broker answered, and said no to the message itself
            errors.print(f"Kafka refused {len(refused)}: {refused[0]}", style="red", markup=False)
            raise typer.Exit(cli_errors.ExitCode.REFUSED)
        why = failures[0] if failures else "no acknowledgement"
        raise cli_errors.Unavailable(
            [cli_errors.kafka(get_settings())],
            cause=f"{sent - len(acknowledged)} not acknowledged: {why}",
        )


REPLAY_TIMEOUT_MS = 15_000


def _kept(letter: DeadLetter) -> bytes:
    if letter.payload_base64:
        return base64.b64decode(letter.payload_base64)
    return letter.payload.encode()


def _original(letter: DeadLetter) -> bytes | None:
    """The whole message `letter` parked, read from its source; None when it is gone."""
    from foodflow.tools.kafka_io import read_at

    raw = read_at(
        get_settings(), letter.source_topic, letter.source_partition, letter.source_offset
    )
    return raw if raw is not None and matches(letter, raw) else None


def matches(letter: DeadLetter, raw: bytes) -> bool:
    """True when `raw` is the message `letter` parked (by its SHA-256 when it was cut)."""
    if letter.payload_sha256 is not None:
        return hashlib.sha256(raw).hexdigest() == letter.payload_sha256
    return letter.payload_base64 is None or base64.b64decode(letter.payload_base64) == raw
