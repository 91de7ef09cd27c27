"""HTTP adapters for the services the saga calls: pooled keep-alive clients with retries.

aiohttp, not httpx: profiling the order manager under load (py-spy) put 64 % of its CPU inside
httpx/httpcore/anyio (plus a failed `import sniffio` per request); aiohttp does the same
keep-alive POST for a fraction of it (docs/benchmarks.md has the measurements).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TypeVar
from uuid import UUID

import aiohttp
from pydantic import BaseModel

from foodflow.config import Settings
from foodflow.contracts.inventory import OrderRef, ReservationState, ReserveRequest, StockLine
from foodflow.contracts.orders import ValidatedOrder
from foodflow.contracts.pricing import PriceLineIn, PriceRequest, PriceResponse
from foodflow.errors import FoodflowError, ServiceUnavailable
from foodflow.retry import retry_async

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)
MAX_CONNECTIONS = 64


class RequestRefused(FoodflowError):
    """The service answered 4xx: retrying will not help."""

    def __init__(self, service: str, status: int, message: str) -> None:
        super().__init__(f"{service} refused the request ({status}): {message}")
        self.status = status
        self.message = message


class ServiceClient:
    """One pooled client per downstream service; every call idempotent and retried."""

    def __init__(self, name: str, base_url: str, settings: Settings) -> None:
        self.name = name
        self.settings = settings
        self._base_url = base_url.rstrip("/")
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

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def post(
        self, path: str, body: BaseModel, answer: type[M], *, attempts: int | None = None
    ) -> M:
        async def attempt() -> M:
            try:
                async with (
                    self._slots,
                    self._http().post(
                        self._base_url + path, data=body.model_dump_json().encode()
                    ) as response,
                ):
                    status, content = response.status, await response.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise ServiceUnavailable(f"{self.name} {path}: {type(exc).__name__} {exc}") from exc
            if status >= 500:
                raise ServiceUnavailable(f"{self.name} {path}: HTTP {status}")
            if status >= 400:
                raise RequestRefused(self.name, status, _detail(content))
            return answer.model_validate_json(content)

        return await retry_async(
            attempt,
            retry_on=(ServiceUnavailable,),
            attempts=attempts or self.settings.http_retries + 1,
            what=f"{self.name} {path}",
        )


def _detail(content: bytes) -> str:
    text = content.decode(errors="replace")
    try:
        return str(json.loads(text).get("detail", text))
    except (ValueError, AttributeError):
        return text[:500]


# Giving stock back or making it final must outlast a restart of the inventory service.
COMPENSATION_ATTEMPTS = 10


class InventoryClient(ServiceClient):
    def __init__(self, settings: Settings) -> None:
        super().__init__("inventory", settings.inventory_url, settings)

    async def reserve(self, order_id: UUID, order: ValidatedOrder) -> ReservationState:
        lines = [StockLine(item_id=i.item_id, quantity=i.quantity) for i in order.items]
        return await self.post(
            "/reserve", ReserveRequest(order_id=order_id, items=lines), ReservationState
        )

    async def commit(self, order_id: UUID) -> ReservationState:
        return await self.post(
            "/commit", OrderRef(order_id=order_id), ReservationState, attempts=COMPENSATION_ATTEMPTS
        )

    async def release(self, order_id: UUID) -> ReservationState | None:
        try:
            return await self.post(
                "/release",
                OrderRef(order_id=order_id),
                ReservationState,
                attempts=COMPENSATION_ATTEMPTS,
            )
        except RequestRefused as exc:
            if exc.status == 404:  # nothing was reserved: nothing to give back
                return None
            raise


class PricingClient(ServiceClient):
    def __init__(self, settings: Settings) -> None:
        super().__init__("pricing", settings.pricing_url, settings)

    async def calculate_price(self, order_id: UUID, order: ValidatedOrder) -> PriceResponse:
        request = PriceRequest(
            order_id=str(order_id),
            promo_code=order.promo_code,
            items=[
                PriceLineIn(item_id=i.item_id, quantity=i.quantity, price=i.price)
                for i in order.items
            ],
        )
        return await self.post("/calculate_price", request, PriceResponse)
