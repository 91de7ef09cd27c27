"""The menu: every listed item with its price and current stock, from the inventory service.

Inventory's listing (`GET /menu` there), not its whole catalogue: the items `foodflow bench` and
`foodflow chaos` create are unlisted, so customers neither see nor order them."""

from __future__ import annotations

from fastapi import APIRouter

from foodflow.contracts.inventory import MenuItem
from foodflow.gateway.deps import Inventory

router = APIRouter(tags=["menu"])


@router.get("/menu", response_model=list[MenuItem])
async def menu(inventory: Inventory) -> list[MenuItem]:
    """Every listed menu item with its price and current stock, by item id."""
    return await inventory.menu()
