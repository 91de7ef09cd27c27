"""Restaurant staff accounts (created by operators, each bound to one restaurant of the
restaurant service) and the staff's own routes: their restaurant's orders, each step of a
ticket, their items' availability and their opening. A staff route always acts on the staff
account's own restaurant: another restaurant's order is a 404 there."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query, status

from foodflow.contracts.restaurant import (
    AcceptTicket,
    DelayTicket,
    ItemAvailability,
    MenuEntry,
    OpeningChange,
    RejectTicket,
    RestaurantView,
    Tickets,
    TicketState,
    TicketView,
)
from foodflow.gateway import services
from foodflow.gateway.auth import CurrentUser, staff_user
from foodflow.gateway.deps import PasswordHashing, Repository, Restaurants
from foodflow.gateway.schemas import RestaurantAccountCreate, UserPublic

router = APIRouter(tags=["restaurants"])

# What every staff route may answer besides its own result.
STAFF_REFUSALS: dict[int | str, dict[str, str]] = {
    403: {"description": "Not a restaurant staff account, or one bound to no restaurant"},
    503: {"description": "The restaurant service cannot answer"},
}
TICKET_REFUSALS: dict[int | str, dict[str, str]] = {
    **STAFF_REFUSALS,
    404: {"description": "No such order at my restaurant"},
    409: {"description": "The order's ticket is not in a state for this step"},
}


@router.post(
    "/restaurants/accounts",
    response_model=UserPublic,
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(staff_user)],
    responses={
        409: {"description": "The email is taken"},
        422: {"description": "No such restaurant at the restaurant service"},
        503: {"description": "The restaurant service cannot say which restaurants exist"},
    },
)
async def create_restaurant_account(
    body: RestaurantAccountCreate,
    repository: Repository,
    passwords: PasswordHashing,
    kitchens: Restaurants,
) -> UserPublic:
    """Operators: a restaurant staff account, bound to a restaurant of `GET /menu`."""
    return await services.create_restaurant_account(repository, passwords, kitchens, body)


@router.get("/restaurant", response_model=RestaurantView, responses=STAFF_REFUSALS)
async def my_restaurant(
    user: CurrentUser, repository: Repository, kitchens: Restaurants
) -> RestaurantView:
    """Staff: my restaurant, its opening, its queue and its menu."""
    return await services.my_restaurant(repository, kitchens, user)


@router.get("/restaurant/orders", response_model=Tickets, responses=STAFF_REFUSALS)
async def restaurant_orders(
    user: CurrentUser,
    repository: Repository,
    kitchens: Restaurants,
    state: Annotated[TicketState | None, Query()] = None,
) -> Tickets:
    """Staff: my restaurant's orders in `state`; without, the open ones (not yet picked up)."""
    return await services.restaurant_orders(repository, kitchens, user, state)


@router.get("/restaurant/orders/{order_id}", response_model=TicketView, responses=TICKET_REFUSALS)
async def restaurant_order(
    order_id: UUID, user: CurrentUser, repository: Repository, kitchens: Restaurants
) -> TicketView:
    """Staff: one order of my restaurant, with what the kitchen would promise for it now."""
    return await services.restaurant_order(repository, kitchens, user, order_id)


@router.post(
    "/restaurant/orders/{order_id}/accept", response_model=TicketView, responses=TICKET_REFUSALS
)
async def accept_order(
    order_id: UUID,
    body: AcceptTicket,
    user: CurrentUser,
    repository: Repository,
    kitchens: Restaurants,
) -> TicketView:
    """Staff: accept the order, ready in `ready_in_minutes` (RESTAURANT_ACCEPTED)."""
    return await services.accept_order(repository, kitchens, user, order_id, body.ready_in_minutes)


@router.post(
    "/restaurant/orders/{order_id}/prepare", response_model=TicketView, responses=TICKET_REFUSALS
)
async def prepare_order(
    order_id: UUID, user: CurrentUser, repository: Repository, kitchens: Restaurants
) -> TicketView:
    """Staff: the kitchen starts cooking an accepted order (PREPARING)."""
    return await services.prepare_order(repository, kitchens, user, order_id)


@router.post(
    "/restaurant/orders/{order_id}/delay", response_model=TicketView, responses=TICKET_REFUSALS
)
async def delay_order(
    order_id: UUID,
    body: DelayTicket,
    user: CurrentUser,
    repository: Repository,
    kitchens: Restaurants,
) -> TicketView:
    """Staff: the food is now ready in `ready_in_minutes` (the courier's plan moves with it)."""
    return await services.delay_order(repository, kitchens, user, order_id, body.ready_in_minutes)


@router.post(
    "/restaurant/orders/{order_id}/ready", response_model=TicketView, responses=TICKET_REFUSALS
)
async def ready_order(
    order_id: UUID, user: CurrentUser, repository: Repository, kitchens: Restaurants
) -> TicketView:
    """Staff: the food is ready for the courier (READY_FOR_PICKUP)."""
    return await services.ready_order(repository, kitchens, user, order_id)


@router.post(
    "/restaurant/orders/{order_id}/reject", response_model=TicketView, responses=TICKET_REFUSALS
)
async def reject_order(
    order_id: UUID,
    body: RejectTicket,
    user: CurrentUser,
    repository: Repository,
    kitchens: Restaurants,
) -> TicketView:
    """Staff: refuse a pending order with a reason: it is cancelled and refunded."""
    return await services.reject_order(
        repository, kitchens, user, order_id, body.reason, body.detail
    )


@router.put(
    "/restaurant/items/{item_id}/availability",
    response_model=MenuEntry,
    responses={**STAFF_REFUSALS, 404: {"description": "No such item on my restaurant's menu"}},
)
async def set_item_availability(
    item_id: Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")],
    body: ItemAvailability,
    user: CurrentUser,
    repository: Repository,
    kitchens: Restaurants,
) -> MenuEntry:
    """Staff: mark an item of my menu available or not (an unavailable one leaves `/menu`)."""
    return await services.set_item_availability(repository, kitchens, user, item_id, body.available)


@router.put("/restaurant/opening", response_model=RestaurantView, responses=STAFF_REFUSALS)
async def set_opening(
    body: OpeningChange, user: CurrentUser, repository: Repository, kitchens: Restaurants
) -> RestaurantView:
    """Staff: pause or resume taking orders, or change the hours (both times given)."""
    return await services.set_opening(repository, kitchens, user, body)
