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
from typing import Any, Self, TypeVar

import aiohttp

T = TypeVar("T")

HTTP_ERRORS: tuple[type[Exception], ...] = (aiohttp.ClientError, TimeoutError)
"""What a request raises when there is no answer (refused, reset, timed out)."""


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
    allowed `timeout` seconds in all. Use as `with HttpSession(...) as session:`."""

    def __init__(self, base_url: str | None = None, *, timeout: float) -> None:
        self._base_url = base_url
        self._timeout = aiohttp.ClientTimeout(total=timeout)
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
