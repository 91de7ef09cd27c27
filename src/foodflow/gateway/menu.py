"""The menu: every catalogue item with its price and current stock, from `inventory_items`."""

from __future__ import annotations

from fastapi import APIRouter

from foodflow.contracts.inventory import MenuItem
from foodflow.gateway.deps import DbPool

router = APIRouter(tags=["menu"])


async def read_menu(pool: DbPool) -> list[MenuItem]:
    rows = await pool.fetch(
        "SELECT item_id, name, price, stock FROM inventory_items ORDER BY item_id"
    )
    return [MenuItem(**dict(row)) for row in rows]


@router.get("/menu", response_model=list[MenuItem])
async def menu(pool: DbPool) -> list[MenuItem]:
    """Every menu item with its price and current stock, by item id."""
    return await read_menu(pool)
