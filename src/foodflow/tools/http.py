"""Blocking HTTP for the command line, on aiohttp (the one HTTP client library of foodflow).

A `HttpSession` runs its own event loop on a private thread for the span of a `with` block, so
it works the same from plain code and from a thread whose event loop is running (a test).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

if TYPE_CHECKING:
    import aiohttp

T = TypeVar("T")


def __getattr__(name: str) -> tuple[type[Exception], ...]:
    """`HTTP_ERRORS`: what a request raises when there is no answer (refused, reset, timed
    out). aiohttp is loaded on first use, not with this module: `foodflow status` imports it
    and, with nothing running, sends no request."""
    if name == "HTTP_ERRORS":
        import aiohttp

        return (aiohttp.ClientError, TimeoutError)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class Response:
    """An answer, read in full."""

    status_code: int
    text: str

    def json(self) -> Any:
        """The body parsed as JSON (ValueError if it is not)."""
        return json.loads(self.text)


class HttpSession:
    """Requests to `base_url` (paths are joined to it) sharing one connection pool, each
    allowed `timeout` seconds in all, and `connect_timeout` of them to connect (the command
    line keeps that short: a server that is down should not cost the whole `timeout`). Use as
    `with HttpSession(...) as session:`."""

    def __init__(
        self, base_url: str | None = None, *, timeout: float, connect_timeout: float | None = None
    ) -> None:
        import aiohttp

        self._base_url = base_url
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=connect_timeout)
        self._worker: ThreadPoolExecutor | None = None
        self._runner: asyncio.Runner | None = None
        self._session: aiohttp.ClientSession | None = None

    def __enter__(self) -> Self:
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="http-session")
        self._runner = asyncio.Runner()
        self._session = self._run(self._open())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        worker, runner, session = self._worker, self._runner, self._session
        self._worker = self._runner = self._session = None
        if worker is None or runner is None:
            return
        try:
            if session is not None:
                worker.submit(runner.run, session.close()).result()
            worker.submit(runner.close).result()
        finally:
            worker.shutdown()

    def get(self, path: str, *, headers: Mapping[str, str] | None = None) -> Response:
        return self.request("GET", path, headers=headers)

    def post(
        self, path: str, *, json: Any = None, headers: Mapping[str, str] | None = None
    ) -> Response:
        return self.request("POST", path, json=json, headers=headers)

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """Send one request and read the whole answer; HTTP_ERRORS if none came."""
        return self._run(self._request(method, path, json, headers))

    async def _open(self) -> aiohttp.ClientSession:
        import aiohttp

        return aiohttp.ClientSession(base_url=self._base_url, timeout=self._timeout)

    async def _request(
        self, method: str, path: str, body: Any, headers: Mapping[str, str] | None
    ) -> Response:
        if self._session is None:
            raise RuntimeError("HttpSession is not open")
        # Redirects are answers too: the caller sees them, as with any other status.
        async with self._session.request(
            method, path, json=body, headers=headers, allow_redirects=False
        ) as answer:
            return Response(answer.status, await answer.text())

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._worker is None or self._runner is None:
            coro.close()
            raise RuntimeError("HttpSession is not open")
        return self._worker.submit(self._runner.run, coro).result()


def get(url: str, *, timeout: float) -> Response:
    """One GET in a session of its own."""
    with HttpSession(timeout=timeout) as session:
        return session.get(url)
