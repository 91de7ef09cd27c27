"""HTTP adapters for the services the saga calls: pooled keep-alive clients with retries."""

from __future__ import annotations

import asyncio
import logging
from typing import TypeVar
from uuid import UUID

import httpx
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
        self._http = httpx.AsyncClient(
            base_url=base_url,
            # Waiting for a free pooled connection is our own queueing, not the service failing:
            # it gets the order's whole time budget rather than the per-request timeout.
            timeout=httpx.Timeout(
                settings.http_timeout_seconds, connect=1.0, pool=settings.order_timeout_seconds
            ),
            limits=httpx.Limits(
                max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS
            ),
        )
        # httpcore matches every queued request against every connection each time one frees
        # up; with hundreds of orders in flight that is quadratic CPU (seen at 85 % with the
        # service it calls idle). Queue here instead, so its queue stays short.
        self._slots = asyncio.Semaphore(MAX_CONNECTIONS)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def post(
        self, path: str, body: BaseModel, answer: type[M], *, attempts: int | None = None
    ) -> M:
        async def attempt() -> M:
            try:
                async with self._slots:
                    response = await self._http.post(
                        path,
                        content=body.model_dump_json(),
                        headers={"content-type": "application/json"},
                    )
            except httpx.HTTPError as exc:
                raise ServiceUnavailable(f"{self.name} {path}: {type(exc).__name__} {exc}") from exc
            if response.status_code >= 500:
                raise ServiceUnavailable(f"{self.name} {path}: HTTP {response.status_code}")
            if response.status_code >= 400:
                raise RequestRefused(self.name, response.status_code, _detail(response))
            return answer.model_validate_json(response.content)

        return await retry_async(
            attempt,
            retry_on=(ServiceUnavailable,),
            attempts=attempts or self.settings.http_retries + 1,
            what=f"{self.name} {path}",
        )


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", response.text))
    except ValueError:
        return response.text[:500]


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
