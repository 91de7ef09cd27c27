"""The inventory service's HTTP API as the saga, delivery and the restaurants use it: reserve,
commit, release, give back, and which items are offered."""

from __future__ import annotations

from urllib.parse import quote
from uuid import UUID

from pydantic import TypeAdapter

from foodflow.contracts.inventory import (
    MenuItem,
    OrderRef,
    ReservationState,
    ReserveRequest,
    StockLine,
)
from foodflow.contracts.orders import ValidatedOrder
from foodflow.contracts.restaurant import ItemAvailability
from foodflow.platform.config import Settings
from foodflow.platform.http.client import RequestRefused, ServiceClient
from foodflow.platform.http.service_auth import ServiceTokens

# Giving stock back or making it final must outlast a restart of the inventory service.
COMPENSATION_ATTEMPTS = 10


class InventoryClient(ServiceClient):
    """Reserve, commit and release travel through the batch endpoints (`/reserve_batch`...)."""

    def __init__(self, settings: Settings, tokens: ServiceTokens) -> None:
        super().__init__("inventory", settings.inventory_url, settings, tokens, "inventory_service")
        self._reserve = self.batched("/reserve_batch", ReserveRequest, ReservationState)
        self._commit = self.batched(
            "/commit_batch", OrderRef, ReservationState, attempts=COMPENSATION_ATTEMPTS
        )
        self._release = self.batched(
            "/release_batch", OrderRef, ReservationState, attempts=COMPENSATION_ATTEMPTS
        )

    async def reserve(self, order_id: UUID, order: ValidatedOrder) -> ReservationState:
        lines = [StockLine(item_id=i.item_id, quantity=i.quantity) for i in order.items]
        return await self._reserve(ReserveRequest(order_id=order_id, items=lines))

    async def commit(self, order_id: UUID) -> ReservationState:
        return await self._commit(OrderRef(order_id=order_id))

    async def release(self, order_id: UUID) -> ReservationState | None:
        try:
            return await self._release(OrderRef(order_id=order_id))
        except RequestRefused as exc:
            if exc.status == 404:  # nothing was reserved: nothing to give back
                return None
            raise

    async def menu(self) -> list[MenuItem]:
        """The public listing: every listed item with its price and current stock (`GET /menu`;
        the gateway's menu, its order check and the dashboard's stock)."""
        return await self.get("/menu", _MENU)

    async def catalogue(self) -> list[MenuItem]:
        """Every item, listed or not, with its price (`GET /catalogue`; what pricing prices)."""
        return await self.get("/catalogue", _MENU)

    async def set_availability(self, item_id: str, available: bool) -> MenuItem:
        """Offer an item again, or stop offering it (`PUT /items/{item_id}/availability`; the
        restaurant service, when its staff mark an item). `RequestRefused` 404 for an item the
        inventory does not know."""
        return await self.put(
            f"/items/{quote(item_id, safe='')}/availability",
            ItemAvailability(available=available),
            MenuItem,
        )

    async def cancel(self, order_id: UUID) -> ReservationState | None:
        """Give a cancelled (or timed-out) order's stock back, reserved or committed
        (`/cancel`); None when nothing was reserved."""
        try:
            return await self.post(
                "/cancel",
                OrderRef(order_id=order_id),
                ReservationState,
                attempts=COMPENSATION_ATTEMPTS,
            )
        except RequestRefused as exc:
            if exc.status == 404:
                return None
            raise


_MENU = TypeAdapter(list[MenuItem])
