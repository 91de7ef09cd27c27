"""The menu: every catalogue item with its price and current stock, from the inventory service."""

from __future__ import annotations

from fastapi import APIRouter

from foodflow.contracts.inventory import MenuItem
from foodflow.gateway.deps import Inventory

router = APIRouter(tags=["menu"])


@router.get("/menu", response_model=list[MenuItem])
async def menu(inventory: Inventory) -> list[MenuItem]:
    """Every menu item with its price and current stock, by item id."""
    return await inventory.menu()
