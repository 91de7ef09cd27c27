"""Catalogue prices over a fake menu: reuse within the TTL, fresh reads when needed."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from foodflow.contracts.inventory import MenuItem
from foodflow.platform.errors import ServiceUnavailable
from foodflow.pricing_service.catalogue import CataloguePrices


class FakeMenu:
    def __init__(self, prices: dict[str, str]) -> None:
        self.prices = prices
        self.reads = 0
        self.failing = False
        self.gate: asyncio.Event | None = None

    async def catalogue(self) -> list[MenuItem]:
        self.reads += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.failing:
            raise ServiceUnavailable("inventory down")
        return [
            MenuItem(item_id=item_id, name=item_id, price=Decimal(price), stock=1)
            for item_id, price in self.prices.items()
        ]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_prices_are_reused_within_the_ttl_and_read_again_after() -> None:
    menu, clock = FakeMenu({"a": "1.50", "b": "2.00"}), Clock()
    catalogue = CataloguePrices(menu, ttl_seconds=5, clock=clock)

    assert await catalogue.prices(["a"]) == {"a": Decimal("1.50")}
    menu.prices["a"] = "9.99"
    clock.now += 4.9
    assert await catalogue.prices(["a", "b"]) == {"a": Decimal("1.50"), "b": Decimal("2.00")}
    assert menu.reads == 1
    clock.now += 0.1
    assert await catalogue.prices(["a"]) == {"a": Decimal("9.99")}
    assert menu.reads == 2


async def test_an_unknown_item_triggers_a_fresh_read_and_stays_absent() -> None:
    menu, clock = FakeMenu({"a": "1.50"}), Clock()
    catalogue = CataloguePrices(menu, ttl_seconds=5, clock=clock)
    await catalogue.prices(["a"])

    assert await catalogue.prices(["a", "ghost"]) == {"a": Decimal("1.50")}
    menu.prices["new"] = "3.00"
    assert await catalogue.prices(["new"]) == {"new": Decimal("3.00")}
    assert menu.reads == 3


async def test_concurrent_requests_share_one_read() -> None:
    menu = FakeMenu({"a": "1.50"})
    menu.gate = asyncio.Event()
    catalogue = CataloguePrices(menu)

    waiting = [asyncio.create_task(catalogue.prices(["a"])) for _ in range(5)]
    await asyncio.sleep(0)
    menu.gate.set()

    assert await asyncio.gather(*waiting) == [{"a": Decimal("1.50")}] * 5
    assert menu.reads == 1


async def test_a_failed_read_is_raised_and_the_next_request_reads_again() -> None:
    menu = FakeMenu({"a": "1.50"})
    menu.failing = True
    catalogue = CataloguePrices(menu)

    with pytest.raises(ServiceUnavailable):
        await catalogue.prices(["a"])
    menu.failing = False
    assert await catalogue.prices(["a"]) == {"a": Decimal("1.50")}
    assert menu.reads == 2
