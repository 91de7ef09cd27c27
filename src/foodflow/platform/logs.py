"""Logging shared by every foodflow process: JSON lines (or a console format), order id on each.

`configure_logging` routes the standard library's logging through structlog's
`ProcessorFormatter`, so the existing `log.info("Checking inventory... order %s", order_id)`
calls stay as they are and come out as one JSON object per line:

    {"ts": "2026-11-28T03:40:00.123456Z", "level": "info", "service": "order_manager",
     "logger": "foodflow.order_manager.saga", "message": "Checking inventory... order 5f…",
     "order_id": "5f…"}

`order_id` comes from `bind_order_id` (context variables, per asyncio task) or, failing that,
from an order id written in the message itself ("order <uuid>", "order_id=<uuid>"). A line
about a batch names every order in it once, in `order_ids` (`log.info(..., extra=
batch_of(ids))`): one line per batch, not one per order, on the hot path.
`LOG_FORMAT=console` renders the same events as readable lines instead.

A service started by `foodflow up` writes its own log file (`LOG_FILE`), rotated by size
(`LOG_MAX_BYTES`, `LOG_BACKUPS` kept): see `RotatingLogHandler`. `lines_for_order` reads the
rotated files too.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TextIO

import orjson
import structlog

LogFormat = Literal["json", "console"]

_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
# "order <id>", "Order <id>", "order id <id>", "order_id=<id>", "order_id: <id>"
_ORDER_ID_IN_TEXT = re.compile(rf"\border(?:[ _]id)?[=: ]+({_UUID})", re.IGNORECASE)
_FIELD_ORDER = ("ts", "level", "service", "logger", "message")
# The `extra` field of a line about many orders (`batch_of`).
ORDER_IDS = "order_ids"
# `<name>.log` and its rotated files `<name>.log.1`, `<name>.log.2`, ...
_LOG_FILE_NAME = re.compile(r"^(?P<name>.+)\.log(?:\.(?P<backup>\d+))?$")


def bind_order_id(order_id: object | None) -> None:
    """Put `order_id` on every log line of the current task (and the tasks it starts)."""
    if order_id is not None:
        structlog.contextvars.bind_contextvars(order_id=str(order_id))


def batch_of(order_ids: Iterable[object]) -> Mapping[str, object]:
    """The `extra` of a line about a batch: its orders' ids, all on that one line.

    The ids are serialised once, when the line is written (orjson turns a list of 500 UUIDs
    into text in ~20 µs), not formatted into the message."""
    return {ORDER_IDS: list(order_ids)}


def order_id_in_text(text: str) -> str | None:
    """The order id a message names ("order <uuid>", "order_id=<uuid>"), lower-cased, or None."""
    found = _ORDER_ID_IN_TEXT.search(text)
    return found.group(1).lower() if found else None


def _add_order_id(
    _: Any, __: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    if "order_id" not in event_dict:
        order_id = order_id_in_text(str(event_dict.get("event", "")))
        if order_id is not None:
            event_dict["order_id"] = order_id
    return event_dict


def _add_service(service: str) -> structlog.types.Processor:
    def add(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        event_dict.setdefault("service", service)
        return event_dict

    return add


# Control characters of a logged value shown escaped: a request path or a message field holding
# "\n2026-… INFO gateway …" must not start a forged line of its own (nor an ESC repaint one).
_ESCAPED = {c: f"\\x{c:02x}" for c in (*range(32), 127) if c != 9} | {10: "\\n", 13: "\\r"}


def render_console(event: MutableMapping[str, Any]) -> str:
    """One readable line: time, level, service, logger, message, then the other fields (their
    control characters escaped; only an exception's traceback spans lines)."""
    ts = str(event.get("ts", ""))
    level = str(event.get("level", "")).upper()
    message = str(event.get("message", event.get("event", ""))).translate(_ESCAPED)
    line = f"{ts} {level:<7} {event.get('service', '-')} {event.get('logger', '-')}: {message}"
    extras = {
        k: v
        for k, v in event.items()
        if k not in {*_FIELD_ORDER, "event", "exception"}
        and not (k == "order_id" and str(v) in message)
    }
    if extras:
        line += "  " + " ".join(f"{k}={v}".translate(_ESCAPED) for k, v in extras.items())
    if event.get("exception"):
        line += "\n" + str(event["exception"])
    return line


def _console_renderer(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> str:
    return render_console(event_dict)


def _processors(service: str) -> list[structlog.types.Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        _add_service(service),
        _add_order_id,
    ]


class JsonLineFormatter(logging.Formatter):
    """The JSON line of a record: ts, level, service, logger and message first, then the bound
    context (order_id, …) and the exception. A standard-library record is turned into it in one
    step, not through structlog's chain of processors: less than half the cost, and the order
    manager writes ~9 lines per order. orjson, not json, for the same reason."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        if isinstance(record.msg, dict):  # a structlog logger's event, stamped by `_processors`
            fields = structlog.processors.format_exc_info(None, "", dict(record.msg))
            fields["message"] = fields.pop("event", "")
            # The same leading keys as every other line: easy to scan by eye as by machine.
            leading = {k: fields.pop(k) for k in _FIELD_ORDER if k in fields}
            return orjson.dumps({**leading, **fields}, default=str).decode()
        message = record.getMessage()
        event: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "level": record.levelname.lower(),
            "service": self._service,
            "logger": record.name,
            "message": message,
        }
        for key, value in structlog.contextvars.get_contextvars().items():
            event.setdefault(key, value)
        order_ids = record.__dict__.get(ORDER_IDS)
        if order_ids is not None:
            event[ORDER_IDS] = order_ids
        if "order_id" not in event:
            order_id = order_id_in_text(message)
            if order_id is not None:
                event["order_id"] = order_id
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(event, default=str).decode()


class PeriodicFlushHandler(logging.StreamHandler[TextIO]):
    """A stream handler that flushes every `interval` seconds, and at once for WARNING and
    above, instead of after every line. For services, which write ~9 INFO lines per order:
    a write system call per line was a quarter of the cost of logging. On SIGKILL at most
    `interval` seconds of INFO lines are lost; a normal exit flushes (`logging.shutdown`)."""

    def __init__(self, stream: TextIO, interval: float = 0.2) -> None:
        super().__init__(stream)
        self._closed = threading.Event()
        self._interval = interval
        threading.Thread(target=self._flush_forever, name="log-flush", daemon=True).start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(self.format(record) + self.terminator)
            if record.levelno >= logging.WARNING:
                self.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def _flush_forever(self) -> None:
        while not self._closed.wait(self._interval):
            self.flush()

    def close(self) -> None:
        self._closed.set()
        super().close()


def redirect_std_streams(path: Path) -> None:
    """Point this process's stdout and stderr (file descriptors 1 and 2) at `path`, appended.

    What is written there without logging (a traceback of a crash, a print) lands in the
    current log file, not in one rotated away since the process started."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
    finally:
        os.close(fd)


class RotatingLogHandler(PeriodicFlushHandler):
    """A service's log file, rotated by size: once a write takes it past `max_bytes`,
    `path` becomes `path.1` (`.1` becomes `.2`, ..., the oldest beyond `backups` is deleted)
    and a new `path` is begun.

    The bytes written are counted here, not asked of the file system per line (a `stat` or
    `tell` per line would cost more than the line). The process's stdout and stderr follow
    the current file (`redirect_std`), so a crash's traceback lands next to the last lines.
    Only one process writes a given file: each service instance has its own.
    """

    def __init__(
        self,
        path: Path,
        max_bytes: int,
        backups: int,
        *,
        redirect_std: bool = True,
        interval: float = 0.2,
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self.redirect_std = redirect_std
        path.parent.mkdir(parents=True, exist_ok=True)
        super().__init__(self._open(), interval)
        self._size = path.stat().st_size

    def _open(self) -> TextIO:
        if self.redirect_std:
            redirect_std_streams(self.path)
        # 0640 as the redirected streams: a log names orders and customers' ids.
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        return os.fdopen(fd, "a", encoding="utf-8", errors="backslashreplace")

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
            self.stream.write(line)
            # Characters, not bytes: non-ASCII text is rare in these lines, and the limit is
            # a bound on disk use, not an exact size.
            self._size += len(line)
            if self._size >= self.max_bytes:
                self._rotate()
            elif record.levelno >= logging.WARNING:
                self.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def _rotate(self) -> None:
        """Called with the handler's lock held (from `emit`)."""
        self.stream.flush()
        for number in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{number}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{number + 1}"))
        if self.path.exists():
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        old, self.stream = self.stream, self._open()
        old.close()
        self._size = 0

    def close(self) -> None:
        super().close()
        self.acquire()
        try:
            if self.stream is not None:
                self.stream.close()
            # The flush thread may still wake once: it finds nothing to flush.
            self.stream = None  # type: ignore[assignment]
        finally:
            self.release()


@dataclass(frozen=True)
class LogFile:
    """Where a service writes its lines, and how the file is rotated (`RotatingLogHandler`)."""

    path: Path
    max_bytes: int
    backups: int


def configure_logging(
    service: str,
    level: str = "INFO",
    fmt: LogFormat = "json",
    *,
    buffered: bool = False,
    file: LogFile | None = None,
) -> None:
    """Send every log record of this process to stderr as JSON lines or console lines.

    `buffered` (services): stderr is written in blocks and flushed periodically, see
    `PeriodicFlushHandler`. `file`: to that file instead, rotated by size, with stdout and
    stderr sent there too.
    """
    # The logging HOWTO's optimisations: no caller lookup, no thread or process fields
    # (no line of ours shows them).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    shared = _processors(service)
    formatter: logging.Formatter = (
        JsonLineFormatter(service)
        if fmt == "json"
        else structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder(allow=(ORDER_IDS,))],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.EventRenamer("message"),
                _console_renderer,
            ],
        )
    )
    handler: logging.Handler
    if file is not None:
        handler = RotatingLogHandler(file.path, file.max_bytes, file.backups)
    elif buffered and isinstance(sys.stderr, io.TextIOWrapper):
        sys.stderr.reconfigure(line_buffering=False)
        handler = PeriodicFlushHandler(sys.stderr)
    else:
        handler = logging.StreamHandler()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # structlog's own loggers (structlog.get_logger()) go through the same handler.
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    # The access log of every health probe would drown the order lines.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


# --- reading logs back: `foodflow logs <order_id>` ------------------------------------------


@dataclass(frozen=True)
class LogLine:
    at: datetime
    service: str
    event: dict[str, Any]

    def render(self) -> str:
        """The console line; a batch line shows how many orders it names, not all their ids
        (the line was found for one of them)."""
        ids = self.event.get(ORDER_IDS)
        if isinstance(ids, list) and len(ids) > 1:
            event = {k: v for k, v in self.event.items() if k != ORDER_IDS}
            return render_console({**event, "batch": f"{len(ids)} orders"})
        return render_console(self.event)


def _parse(line: str) -> dict[str, Any] | None:
    if not line.startswith("{"):  # not one of our lines: a raw traceback of a crash, say
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


def _timestamp(event: dict[str, Any]) -> datetime | None:
    try:
        return datetime.fromisoformat(str(event["ts"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return None


def log_files(folder: Path) -> list[Path]:
    """Every log file in `folder`: each `<name>.log` and its rotated `<name>.log.N`."""
    try:
        return sorted(p for p in folder.iterdir() if _LOG_FILE_NAME.match(p.name) and p.is_file())
    except FileNotFoundError:
        return []


def _service_of(path: Path) -> str:
    found = _LOG_FILE_NAME.match(path.name)
    return found.group("name") if found else path.stem


def lines_for_order(order_id: str, log_files: Iterable[Path]) -> list[LogLine]:
    """Every line about `order_id` in `log_files` (JSON lines), by time: the lines that carry
    it as `order_id`, name it among a batch's `order_ids`, or mention it anywhere else."""
    wanted = order_id.lower()
    found: list[LogLine] = []
    for path in log_files:
        for event in _events(path, wanted):
            if not _about(event, wanted):
                continue
            at = _timestamp(event)
            if at is not None:
                event.setdefault("service", _service_of(path))
                found.append(LogLine(at, str(event["service"]), event))
    found.sort(key=lambda line: line.at)
    return found


def _about(event: dict[str, Any], wanted: str) -> bool:
    if "order_id" in event:
        if str(event["order_id"]).lower() == wanted:
            return True
    elif wanted in json.dumps(event).lower():
        return True
    ids = event.get(ORDER_IDS)
    return isinstance(ids, list) and any(str(i).lower() == wanted for i in ids)


def _events(path: Path, containing: str) -> Iterator[dict[str, Any]]:
    """The events of `path` whose line contains `containing` (lower case) in any case: the
    text is searched before any JSON is parsed, as grep would, for logs of many megabytes."""
    try:
        with path.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                if containing not in line.lower():
                    continue
                event = _parse(line)
                if event is not None:
                    yield event
    except FileNotFoundError:
        return
