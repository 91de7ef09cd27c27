"""What the command line says when something expected goes wrong, and the exit code it says it
with: a script reads the code, a person one line; neither wants a traceback for a server that is
down, a typo in an option or an order the system refused (issue 14).

Probing a server here is a TCP connect (Kafka: then a metadata request) with a short timeout,
so that a command with the system down answers within a few seconds instead of waiting out a
client library's own retries (librdkafka's 30 s delivery timeout, Redis' reconnects). Nothing
heavy is imported at module level: the command line imports this before anything else.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from foodflow.platform.config import PORT_SETTING, Settings
from foodflow.platform.errors import FoodflowError

if TYPE_CHECKING:
    from pydantic import ValidationError


class ExitCode(IntEnum):
    """Every command's exit codes (`foodflow --help`, docs/operations.md)."""

    OK = 0
    # The order failed, was cancelled or refused; or what was asked for does not exist.
    REFUSED = 1
    # A bad option or argument (typer's own usage errors are 2 as well).
    USAGE = 2
    # A server foodflow needs does not answer.
    UNAVAILABLE = 3


EXIT_CODES_HELP = (
    "Exit codes: 0 success; 1 the order failed, was cancelled or refused, or what was asked for"
    " does not exist; 2 usage (a bad option or argument); 3 the system is unavailable (a server"
    " foodflow needs does not answer)."
)

# Long enough for a server on a loaded machine to accept a connection, short enough that a
# command with the system down still answers within 3 s (the CLI only: services keep theirs).
CONNECT_TIMEOUT_SECONDS = 1.5

HINT = "is the system up? `foodflow status` shows what runs, `foodflow up` starts it"


@dataclass(frozen=True)
class Server:
    """A server a command talks to, as the user would name it. A replicated one (a Kafka
    cluster) has `replicas`, more (host, port) it may be reached at: it answers when any does."""

    name: str
    host: str
    port: int
    replicas: tuple[tuple[str, int], ...] = ()

    @property
    def endpoints(self) -> list[tuple[str, int]]:
        return [(self.host, self.port), *self.replicas]

    @property
    def address(self) -> str:
        return ",".join(
            f"[{host}]:{port}" if ":" in host else f"{host}:{port}" for host, port in self.endpoints
        )


def kafka(settings: Settings) -> Server:
    """Kafka at every broker of `settings.kafka_bootstrap`: one that answers is enough (a
    client finds the others through it)."""
    endpoints = [_host_port(address) for address in settings.kafka_bootstrap.split(",")]
    (host, port), *others = endpoints
    return Server("Kafka", host, port, tuple(others))


def _host_port(address: str) -> tuple[str, int]:
    """ "host:port" or "[v6]:port" → (host, port); a missing or bad port is Kafka's 9092."""
    host, _, port = address.strip().rpartition(":")
    if not host or not port.isdigit():
        return address.strip().strip("[]"), 9092
    return host.strip("[]"), int(port)


def postgres(settings: Settings) -> Server:
    return Server("PostgreSQL", settings.postgres_host, settings.postgres_port)


def redis(settings: Settings) -> Server:
    return Server("Redis", settings.redis_host, settings.redis_port)


def gateway(settings: Settings) -> Server:
    return Server("the gateway", settings.service_host, settings.gateway_port)


def services(settings: Settings) -> list[Server]:
    """Every service at the address the others call it (an *_URL override counts)."""
    overrides = {
        "inventory_service": settings.inventory_url,
        "pricing_service": settings.pricing_url,
        "payment_service": settings.payment_url,
        "delivery_service": settings.delivery_url,
        "restaurant_service": settings.restaurant_url,
    }
    out = []
    for name, port_setting in PORT_SETTING.items():
        url = urlsplit(overrides.get(name) or settings.service_url(getattr(settings, port_setting)))
        out.append(Server(name, url.hostname or settings.service_host, url.port or 80))
    return out


def whole_system(settings: Settings) -> list[Server]:
    return [kafka(settings), postgres(settings), redis(settings), *services(settings)]


NAMED_AT_MOST = 4


class Unavailable(FoodflowError):
    """Servers a command needs did not answer; `str()` is the line to show."""

    def __init__(self, servers: Sequence[Server], cause: str = "") -> None:
        self.servers = list(servers)
        self.cause = cause
        super().__init__(self.line())

    def line(self) -> str:
        names = [f"{s.name} at {s.address}" for s in self.servers]
        if len(names) > NAMED_AT_MOST:  # the whole system down: the first few say enough
            names = [*names[: NAMED_AT_MOST - 1], f"{len(names) - NAMED_AT_MOST + 1} more"]
        who = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        verb = "is" if len(names) == 1 else "are"
        why = f" ({one_line(self.cause, 120)})" if self.cause else ""
        return f"{who} {verb} not answering{why} — {HINT}"


def answers(server: Server, timeout: float = CONNECT_TIMEOUT_SECONDS) -> bool:
    """True when `server` (any of its endpoints, tried side by side) accepts a TCP connection
    within `timeout` seconds."""
    if not server.replicas:
        return _connects(server.host, server.port, timeout)
    with ThreadPoolExecutor(max_workers=len(server.endpoints)) as pool:
        return any(pool.map(lambda e: _connects(e[0], e[1], timeout), server.endpoints))


def _connects(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:  # refused, unreachable, timed out, a name that does not resolve
        return False


def require(*servers: Server, timeout: float = CONNECT_TIMEOUT_SECONDS) -> None:
    """Unavailable naming every one of `servers` that does not accept a connection; probed
    side by side, so a black-holed address costs `timeout` once, not once per server."""
    if not servers:
        return
    with ThreadPoolExecutor(max_workers=len(servers)) as pool:
        up = list(pool.map(lambda s: answers(s, timeout), servers))
    down = [server for server, ok in zip(servers, up, strict=True) if not ok]
    if down:
        raise Unavailable(down)


def require_kafka(settings: Settings, timeout: float = CONNECT_TIMEOUT_SECONDS) -> None:
    """Unavailable unless the broker accepts a connection and answers a metadata request
    within `timeout` seconds each (a port that accepts but a broker that does not answer, as
    while it starts, would otherwise hold a producer for its whole delivery timeout)."""
    server = kafka(settings)
    require(server, timeout=timeout)
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap,
        "socket.connection.setup.timeout.ms": max(1000, int(timeout * 1000)),
        "logger": QUIET,  # librdkafka's own lines would be the second and third line
    }
    client = AdminClient(config)
    try:
        client.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise Unavailable([server], cause=kafka_reason(exc)) from None


def kafka_reason(error: object) -> str:
    """What a KafkaException or KafkaError says, without the KafkaError{code=…} wrapping."""
    if isinstance(error, BaseException) and error.args:
        error = error.args[0]
    text = getattr(error, "str", None)
    return str(text()) if callable(text) else str(error)


# The Kafka clients of the command line log nowhere: what went wrong reaches the user as one
# line (Unavailable, PublishError), not as librdkafka's FAIL lines on stderr.
QUIET = logging.getLogger("foodflow.cli.librdkafka")
QUIET.addHandler(logging.NullHandler())
QUIET.propagate = False


def one_line(text: str, limit: int = 300) -> str:
    """`text` as one printable line of at most `limit` characters: a server's answer may hold
    newlines or terminal escapes, which must not reach the user's terminal."""
    flat = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def validation_lines(exc: ValidationError) -> list[str]:
    """A pydantic ValidationError as `field: message` lines, without pydantic's input reprs
    and documentation links."""
    return [_error_line(error) for error in exc.errors(include_url=False, include_input=False)]


def _error_line(error: Mapping[str, Any]) -> str:
    where = ".".join(str(part) for part in error.get("loc", ()))
    message = str(error.get("msg", "invalid"))
    return one_line(f"{where}: {message}" if where else message)


# FastAPI's own 422 names where a field sat before its path: `body.items.0.quantity`.
_REQUEST_PARTS = frozenset({"body", "query", "path", "header", "cookie"})


def problem_text(status: int, body: str) -> str:
    """A refused HTTP request as one line: an RFC 9457 problem's title and detail, FastAPI's
    `{"detail": …}` (a message, or a list of field errors), or the text itself."""
    try:
        problem = json.loads(body)
    except ValueError:
        problem = None
    if not isinstance(problem, dict):
        return one_line(f"{status}: {body.strip() or 'no detail'}")
    title = problem.get("title")
    detail = problem.get("detail")
    fields = problem.get("errors")
    if isinstance(detail, list):  # FastAPI's validation error list
        fields, detail = detail, None
    parts = [str(detail)] if detail not in (None, "") else []
    if isinstance(fields, list):
        parts += [_error_line(_field(error)) for error in fields if isinstance(error, dict)]
    head = f"{status} {title}" if title else str(status)
    return one_line(f"{head}: {'; '.join(parts)}" if parts else head)


def _field(error: dict[str, Any]) -> dict[str, Any]:
    loc = list(error.get("loc") or [])
    if loc and loc[0] in _REQUEST_PARTS:
        loc = loc[1:]
    return {**error, "loc": loc}


def exit_code_for_status(status: int) -> ExitCode:
    """A gateway that answered 502/503/504 is up, but what it needs behind it is not."""
    return ExitCode.UNAVAILABLE if status in (502, 503, 504) else ExitCode.REFUSED
