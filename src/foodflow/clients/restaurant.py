"""The restaurant service's HTTP API as the gateway uses it: the restaurants, the order check,
and the staff's tickets, steps, menu availability and opening."""

from __future__ import annotations

from urllib.parse import quote, urlencode
from uuid import UUID

from pydantic import BaseModel, TypeAdapter

from foodflow.contracts.restaurant import (
    AcceptTicket,
    DelayTicket,
    ItemAvailability,
    MenuEntry,
    OpeningChange,
    OrderCheck,
    OrderCheckResult,
    RejectReason,
    RejectTicket,
    Restaurants,
    RestaurantView,
    Tickets,
    TicketState,
    TicketView,
)
from foodflow.platform.config import Settings
from foodflow.platform.http.client import ServiceClient
from foodflow.platform.http.service_auth import ServiceTokens


class _Empty(BaseModel):
    """The body of a step that needs none (`prepare`, `ready`): `{}`."""


class RestaurantClient(ServiceClient):
    """Every call is safe to retry: a step already taken answers the ticket as it is, and the
    PUTs set a state."""

    def __init__(self, settings: Settings, tokens: ServiceTokens) -> None:
        super().__init__(
            "restaurant", settings.restaurant_url, settings, tokens, "restaurant_service"
        )

    async def restaurants(self) -> list[RestaurantView]:
        """Every restaurant with its opening, load and menu (`GET /restaurants`)."""
        return (await self.get("/restaurants", _RESTAURANTS)).restaurants

    async def restaurant(self, restaurant_id: str) -> RestaurantView:
        return await self.get(_restaurant(restaurant_id), _RESTAURANT)

    async def check_order(self, item_ids: list[str]) -> OrderCheckResult:
        """Whether the restaurant that would cook these items takes an order now."""
        return await self.post("/check_order", OrderCheck(item_ids=item_ids), OrderCheckResult)

    async def tickets(
        self, restaurant_id: str, state: TicketState | None = None
    ) -> list[TicketView]:
        """The restaurant's tickets in `state` (the open ones when None), oldest first."""
        query = f"?{urlencode({'state': state.value})}" if state is not None else ""
        return (await self.get(f"{_restaurant(restaurant_id)}/tickets{query}", _TICKETS)).tickets

    async def ticket(self, restaurant_id: str, order_id: UUID) -> TicketView:
        return await self.get(_ticket(restaurant_id, order_id), _TICKET)

    async def accept(self, restaurant_id: str, order_id: UUID, minutes: float) -> TicketView:
        body = AcceptTicket(ready_in_minutes=minutes)
        return await self.post(f"{_ticket(restaurant_id, order_id)}/accept", body, TicketView)

    async def prepare(self, restaurant_id: str, order_id: UUID) -> TicketView:
        return await self._step(restaurant_id, order_id, "prepare")

    async def delay(self, restaurant_id: str, order_id: UUID, minutes: float) -> TicketView:
        body = DelayTicket(ready_in_minutes=minutes)
        return await self.post(f"{_ticket(restaurant_id, order_id)}/delay", body, TicketView)

    async def ready(self, restaurant_id: str, order_id: UUID) -> TicketView:
        return await self._step(restaurant_id, order_id, "ready")

    async def reject(
        self,
        restaurant_id: str,
        order_id: UUID,
        reason: RejectReason,
        detail: str | None = None,
    ) -> TicketView:
        body = RejectTicket(reason=reason, detail=detail)
        return await self.post(f"{_ticket(restaurant_id, order_id)}/reject", body, TicketView)

    async def set_availability(
        self, restaurant_id: str, item_id: str, available: bool
    ) -> MenuEntry:
        """Mark an item of the restaurant's menu (un)available (the catalogue follows)."""
        path = f"{_restaurant(restaurant_id)}/items/{quote(item_id, safe='')}/availability"
        return await self.put(path, ItemAvailability(available=available), MenuEntry)

    async def set_opening(self, restaurant_id: str, change: OpeningChange) -> RestaurantView:
        return await self.put(f"{_restaurant(restaurant_id)}/opening", change, RestaurantView)

    async def _step(self, restaurant_id: str, order_id: UUID, step: str) -> TicketView:
        return await self.post(f"{_ticket(restaurant_id, order_id)}/{step}", _Empty(), TicketView)


def _restaurant(restaurant_id: str) -> str:
    return f"/restaurants/{quote(restaurant_id, safe='')}"


def _ticket(restaurant_id: str, order_id: UUID) -> str:
    return f"{_restaurant(restaurant_id)}/tickets/{order_id}"


_RESTAURANTS = TypeAdapter(Restaurants)
_RESTAURANT = TypeAdapter(RestaurantView)
_TICKETS = TypeAdapter(Tickets)
_TICKET = TypeAdapter(TicketView)
