"""The saga's timeout against a stock commit that lands as it fires: the real inventory service
(in-process ASGI, its real PostgreSQL tables), the saga's other collaborators in memory.

Found by the 10,000-order cluster chaos run (docs/reliability.md, "What the first 10,000-order
run found"): on a starved machine the commit reached the inventory service and was written,
but its answer came back after the order's 30 s timeout. The timeout then failed the order and
refunded it, while its stock stayed COMMITTED: a release of a committed reservation is refused
(409), so the stock never came back (63 units drifted over 27 orders).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest

from foodflow.contracts.inventory import ReservationState
from foodflow.contracts.orders import ValidatedOrder
from foodflow.contracts.pricing import PriceResponse
from foodflow.order_manager.saga import OrderSaga, Pricing
from foodflow.platform.config import Settings
from foodflow.platform.errors import ServiceUnavailable
from foodflow.platform.http.client import RequestRefused

from ..unit.test_saga import (
    FakePayment,
    FakePricing,
    FakeStore,
    Recorder,
    WatchedStore,
    gates,
)
from .test_inventory_service import ItemRows, inventory_client, inventory_db, test_items

pytestmark = pytest.mark.integration

# Fixtures of the inventory service's own tests, used here as they are.
__all__ = ["inventory_client", "inventory_db", "test_items"]

ORDER_TIMEOUT = 0.5


class InventoryOverHttp:
    """The saga's `Inventory` port over the inventory service's real endpoints, as the order
    manager's client calls them. `late_answer` holds the answer of a commit back (after the
    service wrote it) for that long: the order manager, starved of CPU, reads it late."""

    def __init__(self, client: httpx.AsyncClient, late_answer: float = 0.0) -> None:
        self.client = client
        self.late_answer = late_answer
        self.calls: list[str] = []

    async def _post(self, path: str, body: dict[str, object]) -> ReservationState:
        response = await self.client.post(path, json=body)
        if response.status_code >= 500:
            raise ServiceUnavailable(f"inventory answered {response.status_code}")
        if response.status_code >= 400:
            raise RequestRefused("inventory", response.status_code, response.text)
        return ReservationState.model_validate(response.json())

    async def reserve(self, order_id: UUID, order: ValidatedOrder) -> ReservationState:
        self.calls.append("reserve")
        lines = [{"item_id": i.item_id, "quantity": i.quantity} for i in order.items]
        return await self._post("/reserve", {"order_id": str(order_id), "items": lines})

    async def commit(self, order_id: UUID) -> ReservationState:
        self.calls.append("commit")
        answer = await self._post("/commit", {"order_id": str(order_id)})
        await asyncio.sleep(self.late_answer)
        return answer

    async def release(self, order_id: UUID) -> ReservationState | None:
        self.calls.append("release")
        try:
            return await self._post("/release", {"order_id": str(order_id)})
        except RequestRefused as exc:
            if exc.status == 404:
                return None
            raise

    async def cancel(self, order_id: UUID) -> ReservationState | None:
        self.calls.append("cancel")
        try:
            return await self._post("/cancel", {"order_id": str(order_id)})
        except RequestRefused as exc:
            if exc.status == 404:
                return None
            raise


def saga_over(
    inventory: InventoryOverHttp,
    pricing: Pricing,
    payment: FakePayment,
    store: FakeStore,
    recorder: Recorder,
    order_timeout: float,
) -> OrderSaga:
    """A saga over the real inventory service, the rest in memory, with no grace."""
    return OrderSaga(
        inventory=inventory,
        pricing=pricing,
        store=store,
        announce=recorder,
        payment=payment,
        gates=gates(0.0),
        order_timeout=order_timeout,
    )


@pytest.fixture
async def item(test_items: ItemRows) -> AsyncIterator[str]:
    yield await test_items.create(stock=10)


def order_of(item_id: str, quantity: int = 3) -> ValidatedOrder:
    return ValidatedOrder.model_validate(
        {"user_id": "u-race", "items": [{"item_id": item_id, "quantity": quantity}]}
    )


async def reservation_state(pool: asyncpg.Pool, order_id: UUID) -> str | None:
    state: str | None = await pool.fetchval(
        "SELECT state FROM stock_reservations WHERE order_id = $1", order_id
    )
    return state


async def test_a_commit_landing_as_the_order_times_out_gives_the_stock_back(
    settings: Settings,
    inventory_client: httpx.AsyncClient,
    inventory_db: asyncpg.Pool,
    test_items: ItemRows,
    item: str,
) -> None:
    inventory = InventoryOverHttp(inventory_client, late_answer=ORDER_TIMEOUT * 4)
    payment, store, recorder = FakePayment(), FakeStore(), Recorder()
    saga = saga_over(inventory, FakePricing(), payment, store, recorder, ORDER_TIMEOUT)
    order_id = uuid4()
    await saga.run(order_id, order_of(item))

    # The timeout decided: the order FAILED, its charge refunded...
    assert [(u.status, u.reason) for u in recorder.updates][-1] == ("FAILED", "TIMED_OUT")
    assert payment.calls[-1] == "refund"
    # ...and the stock the commit had taken for good is back on the shelf.
    assert await reservation_state(inventory_db, order_id) == "RELEASED"
    assert await test_items.stock(item) == 10


async def test_a_commit_arriving_after_the_timeouts_release_is_refused(
    settings: Settings,
    inventory_client: httpx.AsyncClient,
    inventory_db: asyncpg.Pool,
    test_items: ItemRows,
    item: str,
) -> None:
    """The other order of the race: the stock given back first, a late commit cannot take it."""
    inventory = InventoryOverHttp(inventory_client)
    order = order_of(item)
    order_id = uuid4()
    await inventory.reserve(order_id, order)
    assert await test_items.stock(item) == 7
    await inventory.cancel(order_id)
    with pytest.raises(RequestRefused) as refused:
        await inventory.commit(order_id)
    assert refused.value.status == 409
    assert await reservation_state(inventory_db, order_id) == "RELEASED"
    assert await test_items.stock(item) == 10


class PricingThatFailsOnceOvertaken:
    """A pricing service that answers only once another saga of the order has stored
    PROCESSING, and then fails: the stale saga's failure comes after the winner moved on."""

    def __init__(self, store: WatchedStore) -> None:
        self.store = store

    async def calculate_price(self, order_id: UUID, order: ValidatedOrder) -> PriceResponse:
        await self.store.reached(order_id, 2)
        raise ServiceUnavailable("pricing down")


class CommitAfter(InventoryOverHttp):
    """The winner's commit, sent only once the stale saga has finished failing."""

    def __init__(self, client: httpx.AsyncClient, stale_done: asyncio.Event) -> None:
        super().__init__(client)
        self.stale_done = stale_done

    async def commit(self, order_id: UUID) -> ReservationState:
        await self.stale_done.wait()
        return await super().commit(order_id)


async def test_a_stale_sagas_pricing_failure_does_not_give_back_the_winners_stock(
    settings: Settings,
    inventory_client: httpx.AsyncClient,
    inventory_db: asyncpg.Pool,
    test_items: ItemRows,
    item: str,
) -> None:
    """Two sagas of one order (a redelivery after a rebalance, a sweep): the stale one's
    pricing fails after the other stored PROCESSING and charged. It released the reservation
    before it tried to store FAILED (and lost that version), so the winner's commit was refused
    and a paid order ended FAILED, refunded. Its failure must be decided first: it loses the
    version and undoes nothing, and the winner confirms."""
    store, order_id, stale_done = WatchedStore(), uuid4(), asyncio.Event()

    def saga_of(inventory: InventoryOverHttp, pricing: Pricing, payment: FakePayment) -> OrderSaga:
        return saga_over(inventory, pricing, payment, store, Recorder(), order_timeout=10.0)

    stale_payment, winner_payment = FakePayment(), FakePayment()
    stale = saga_of(
        InventoryOverHttp(inventory_client),
        PricingThatFailsOnceOvertaken(store),
        stale_payment,
    )
    winner_inventory = CommitAfter(inventory_client, stale_done)
    winner = saga_of(winner_inventory, FakePricing(), winner_payment)

    async def run_stale() -> None:
        try:
            await stale.run(order_id, order_of(item))
        finally:
            stale_done.set()

    stale_run = asyncio.ensure_future(run_stale())
    await store.reached(order_id, 1)  # the stale saga stored RECEIVED v1
    await asyncio.gather(winner.run(order_id, order_of(item)), stale_run)

    assert store.saved[order_id].status == "CONFIRMED"
    assert await reservation_state(inventory_db, order_id) == "COMMITTED"
    assert await test_items.stock(item) == 7
    assert winner_payment.calls == ["authorise"] and stale_payment.calls == []
