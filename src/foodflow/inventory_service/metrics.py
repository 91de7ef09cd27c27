"""Prometheus gauges of the inventory service, measured when Prometheus scrapes."""

from __future__ import annotations

from fastapi import FastAPI
from prometheus_client import Gauge

STOCK_LEVEL = Gauge("foodflow_stock_level", "Units in stock per menu item", ["item_id"])


async def collect_stock_levels(app: FastAPI) -> None:
    """Set `foodflow_stock_level` for every catalogue item from `inventory_items`."""
    for item in await app.state.inventory.repository.menu():
        STOCK_LEVEL.labels(item.item_id).set(item.stock)
