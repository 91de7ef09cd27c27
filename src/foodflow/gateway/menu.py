"""The menu: every listed item with its price and current stock, from the inventory service,
and the same items by restaurant with its opening, from the restaurant service.

Inventory's listing (`GET /menu` there), not its whole catalogue: the items `foodflow bench` and
`foodflow chaos` create are unlisted, so customers neither see nor order them; nor do they see
an item its restaurant marked unavailable."""

from __future__ import annotations

from fastapi import APIRouter

from foodflow.gateway import services
from foodflow.gateway.deps import Inventory, Restaurants
from foodflow.gateway.schemas import Menu

router = APIRouter(tags=["menu"])


@router.get("/menu", response_model=Menu)
async def menu(inventory: Inventory, kitchens: Restaurants) -> Menu:
    """Every listed item with its price and stock, and by restaurant with its opening."""
    return await services.menu(inventory, kitchens)
