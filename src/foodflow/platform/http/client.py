"""HTTP adapters for the services the saga calls: pooled keep-alive clients with retries.

aiohttp, not httpx: profiling the order manager under load (py-spy) put 64 % of its CPU inside
httpx/httpcore/anyio (plus a failed `import sniffio` per request); aiohttp does the same
keep-alive POST for a fraction of it (docs/benchmarks.md has the measurements).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Generic, TypeVar

import aiohttp
from pydantic import BaseModel, TypeAdapter

from foodflow.contracts.batch import Outcome, batch_response_type
from foodflow.platform.config import Settings
from foodflow.platform.errors import FoodflowError, ItemUnavailable, ServiceUnavailable
from foodflow.platform.http.batching import Coalescer
from foodflow.platform.http.service_auth import ServiceTokens
from foodflow.platform.retry import retry_async

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)
B = TypeVar("B", bound=BaseModel)
T = TypeVar("T")
MAX_CONNECTIONS = 64


class RequestRefused(FoodflowError):
    """The service answered 4xx: retrying will not help."""

    def __init__(self, service: str, status: int, message: str) -> None:
        super().__init__(f"{service} refused the request ({status}): {message}")
        self.status = status
        self.message = message


class ServiceClient:
    """One pooled client per downstream service; every call idempotent and retried, and
    signed with the caller's token for `audience` (the called service's name)."""

    def __init__(
        self, name: str, base_url: str, settings: Settings, tokens: ServiceTokens, audience: str
    ) -> None:
        self.name = name
        self.settings = settings
        self._base_url = base_url.rstrip("/")
        self._tokens = tokens
        self._audience = audience
        # The per-request timeout starts once a connection slot is ours: waiting for a slot is
        # our own queueing (bounded by the order's time budget), not the service failing.
        self._timeout = aiohttp.ClientTimeout(total=settings.http_timeout_seconds, sock_connect=1.0)
        self._slots = asyncio.Semaphore(MAX_CONNECTIONS)
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        # Created on first use: the session binds to the running event loop.
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS, ttl_dns_cache=None),
                timeout=self._timeout,
                headers={"content-type": "application/json"},
            )
        return self._session

    async def _send(
        self, path: str, body: bytes | None = None, method: str | None = None
    ) -> tuple[int, bytes]:
        """One POST (a GET without a body, unless `method` says otherwise); a network failure
        or a 5xx is `ServiceUnavailable`, a 4xx `RequestRefused`."""
        method = method or ("GET" if body is None else "POST")
        try:
            async with (
                self._slots,
                self._http().request(
                    method,
                    self._base_url + path,
                    data=body,
                    headers={"authorization": self._tokens.authorization(self._audience)},
                ) as response,
            ):
                status, content = response.status, await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ServiceUnavailable(f"{self.name} {path}: {type(exc).__name__} {exc}") from exc
        if status >= 500:
            raise ServiceUnavailable(f"{self.name} {path}: HTTP {status}")
        if status >= 400:
            raise RequestRefused(self.name, status, _detail(content))
        return status, content

    async def post(
        self, path: str, body: BaseModel, answer: type[M], *, attempts: int | None = None
    ) -> M:
        async def attempt() -> M:
            _, content = await self._send(path, body.model_dump_json().encode())
            return answer.model_validate_json(content)

        return await retry_async(
            attempt,
            retry_on=(ServiceUnavailable,),
            attempts=attempts or self.settings.http_retries + 1,
            what=f"{self.name} {path}",
        )

    async def put(
        self, path: str, body: BaseModel, answer: type[M], *, attempts: int | None = None
    ) -> M:
        """PUT `body` at `path` (setting a resource's state: idempotent), retried like `post`."""

        async def attempt() -> M:
            _, content = await self._send(path, body.model_dump_json().encode(), "PUT")
            return answer.model_validate_json(content)

        return await retry_async(
            attempt,
            retry_on=(ServiceUnavailable,),
            attempts=attempts or self.settings.http_retries + 1,
            what=f"{self.name} PUT {path}",
        )

    async def get(self, path: str, answer: TypeAdapter[T], *, attempts: int | None = None) -> T:
        """GET `path`, retried like `post`; the body is validated with `answer`."""

        async def attempt() -> T:
            _, content = await self._send(path)
            return answer.validate_json(content)

        return await retry_async(
            attempt,
            retry_on=(ServiceUnavailable,),
            attempts=attempts or self.settings.http_retries + 1,
            what=f"{self.name} GET {path}",
        )

    async def post_batch(
        self, path: str, items: list[B], answer: type[M]
    ) -> list[M | FoodflowError]:
        """One attempt at a batch endpoint: each item's answer, or the error its caller gets."""
        body = b'{"items":[' + b",".join(i.model_dump_json().encode() for i in items) + b"]}"
        _, content = await self._send(path, body)
        response_type, _ = batch_response_type(answer)
        outcomes = response_type.model_validate_json(content).outcomes
        return [_answer_of(self.name, path, outcome) for outcome in outcomes]

    def batched(
        self,
        path: str,
        request: type[B],
        answer: type[M],
        *,
        attempts: int | None = None,
        in_flight: int | None = None,
    ) -> BatchedCall[B, M]:
        """A per-item call to the batch endpoint `path`, coalesced and retried item by item;
        at most `in_flight` requests out at once (HTTP_BATCHES_IN_FLIGHT by default)."""
        return BatchedCall(
            self,
            path,
            answer,
            attempts or self.settings.http_retries + 1,
            in_flight or self.settings.http_batches_in_flight,
        )

    async def reachable(self) -> bool:
        """Whether the service answers its liveness probe (`GET /health`), once."""
        try:
            await self.get("/health", _HEALTH, attempts=1)
        except FoodflowError:
            return False
        return True

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


class BatchedCall(Generic[B, M]):
    """`await call(item)` answers one item; the items of many callers share the requests."""

    def __init__(
        self, client: ServiceClient, path: str, answer: type[M], attempts: int, in_flight: int
    ) -> None:
        self.what = f"{client.name} {path}"
        self._attempts = attempts

        async def send(items: list[B]) -> list[M | FoodflowError]:
            return await client.post_batch(path, items, answer)

        self._coalescer: Coalescer[B, M] = Coalescer(
            send,
            max_batch=client.settings.http_batch_max_items,
            max_batches_in_flight=in_flight,
            name=self.what,
        )

    async def __call__(self, item: B) -> M:
        return await retry_async(
            lambda: self._coalescer.submit(item),
            retry_on=(ServiceUnavailable,),
            attempts=self._attempts,
            what=self.what,
        )


def _answer_of(service: str, path: str, outcome: Outcome[M]) -> M | FoodflowError:
    if outcome.status == 200 and outcome.result is not None:
        return outcome.result
    if outcome.status >= 500 or outcome.status == 200:
        return ItemUnavailable(f"{service} {path}: item answered {outcome.status}")
    return RequestRefused(service, outcome.status, outcome.detail or "")


_HEALTH = TypeAdapter(dict[str, str])


def _detail(content: bytes) -> str:
    text = content.decode(errors="replace")
    try:
        return str(json.loads(text).get("detail", text))
    except (ValueError, AttributeError):
        return text[:500]
