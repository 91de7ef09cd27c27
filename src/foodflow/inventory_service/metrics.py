"""Prometheus gauges of the inventory service, measured when Prometheus scrapes."""

from __future__ import annotations

from prometheus_client import Gauge

from foodflow.inventory_service.repository import InventoryRepository

STOCK_LEVEL = Gauge("foodflow_stock_level", "Units in stock per menu item", ["item_id"])


async def record_stock_levels(repository: InventoryRepository) -> None:
    """Set `foodflow_stock_level` for every listed item, offered now or not (bench and chaos
    items are not the shop's stock, and come and go with their runs)."""
    for item in await repository.catalogue():
        if item.listed:
            STOCK_LEVEL.labels(item.item_id).set(item.stock)
