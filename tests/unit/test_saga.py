"""The saga's decisions, with fake inventory, pricing, store and announcer (no servers)."""

from __future__ import annotations

from decimal import Decimal
from uuid import UUID, uuid4

import pytest

from foodflow.contracts.inventory import ReservationState
from foodflow.contracts.orders import OrderFinalEvent, OrderStatusUpdate, ValidatedOrder
from foodflow.contracts.pricing import PriceBreakdown, PriceLine, PriceResponse
from foodflow.errors import ServiceUnavailable
from foodflow.order_manager.clients import RequestRefused
from foodflow.order_manager.saga import OrderSaga

ORDER = ValidatedOrder.model_validate(
    {"user_id": "u-1", "items": [{"item_id": "pho-bo", "quantity": 2}]}
)


class FakeInventory:
    def __init__(self, outcome: str = "reserve") -> None:
        self.outcome = outcome
        self.calls: list[str] = []

    async def reserve(self, order_id: UUID, order: ValidatedOrder) -> ReservationState:
        self.calls.append("reserve")
        if self.outcome == "down":
            raise ServiceUnavailable("inventory down")
        if self.outcome == "unknown":
            return ReservationState(
                order_id=order_id, state="REJECTED", reserved=False, unknown_items=["pho-bo"]
            )
        if self.outcome == "short":
            return ReservationState(
                order_id=order_id, state="REJECTED", reserved=False, short_items=["pho-bo"]
            )
        return ReservationState(order_id=order_id, state="RESERVED", reserved=True)

    async def commit(self, order_id: UUID) -> ReservationState:
        self.calls.append("commit")
        return ReservationState(order_id=order_id, state="COMMITTED", reserved=True)

    async def release(self, order_id: UUID) -> ReservationState | None:
        self.calls.append("release")
        return ReservationState(order_id=order_id, state="RELEASED", reserved=False)


class FakePricing:
    def __init__(self, outcome: str = "ok") -> None:
        self.outcome = outcome

    async def calculate_price(self, order_id: UUID, order: ValidatedOrder) -> PriceResponse:
        if self.outcome == "down":
            raise ServiceUnavailable("pricing down")
        if self.outcome == "refused":
            raise RequestRefused("pricing", 422, "unknown promo code")
        d = Decimal
        return PriceResponse(
            lines=[
                PriceLine(item_id="pho-bo", quantity=2, unit_price=d("9.00"), line_total=d("18.00"))
            ],
            breakdown=PriceBreakdown(
                subtotal=d("18.00"),
                discount=d("0.00"),
                delivery_fee=d("2.99"),
                small_order_fee=d("0.00"),
                tax=d("1.47"),
                total=d("22.46"),
            ),
        )


class FakeStore:
    def __init__(self) -> None:
        self.saved: dict[UUID, OrderStatusUpdate] = {}

    async def save(self, update: OrderStatusUpdate) -> bool:
        self.saved[update.order_id] = update
        return True

    async def load(self, order_id: UUID | str) -> OrderStatusUpdate | None:
        return self.saved.get(UUID(str(order_id)))


class Recorder:
    def __init__(self) -> None:
        self.updates: list[OrderStatusUpdate] = []
        self.finals: list[OrderFinalEvent] = []

    async def __call__(self, update: OrderStatusUpdate, final: OrderFinalEvent | None) -> None:
        self.updates.append(update)
        if final is not None:
            self.finals.append(final)


async def no_sleep(_: float) -> None:
    return None


def saga(inventory: FakeInventory, pricing: FakePricing) -> tuple[OrderSaga, Recorder, FakeStore]:
    recorder, store = Recorder(), FakeStore()
    return (
        OrderSaga(
            inventory=inventory,
            pricing=pricing,
            store=store,
            announce=recorder,
            payment_delay=1.0,
            sleep=no_sleep,
        ),
        recorder,
        store,
    )


async def test_happy_path_confirms_and_commits_stock() -> None:
    inventory = FakeInventory()
    s, recorder, store = saga(inventory, FakePricing())
    order_id = uuid4()
    await s.run(order_id, ORDER)
    assert [u.status for u in recorder.updates] == ["RECEIVED", "PROCESSING", "CONFIRMED"]
    assert inventory.calls == ["reserve", "commit"]
    assert len(recorder.finals) == 1 and recorder.finals[0].price.total == Decimal("22.46")
    assert store.saved[order_id].status == "CONFIRMED"


@pytest.mark.parametrize(
    ("inventory", "pricing", "reason", "calls"),
    [
        ("unknown", "ok", "UNKNOWN_ITEM", ["reserve"]),
        ("short", "ok", "OUT_OF_STOCK", ["reserve"]),
        ("down", "ok", "INVENTORY_UNAVAILABLE", ["reserve", "release"]),
        ("reserve", "down", "PRICING_UNAVAILABLE", ["reserve", "release"]),
        ("reserve", "refused", "INVALID_ORDER", ["reserve", "release"]),
    ],
)
async def test_failures_end_failed_with_reason_and_give_stock_back(
    inventory: str, pricing: str, reason: str, calls: list[str]
) -> None:
    fake_inventory = FakeInventory(inventory)
    s, recorder, _ = saga(fake_inventory, FakePricing(pricing))
    await s.run(uuid4(), ORDER)
    assert [u.status for u in recorder.updates] == ["RECEIVED", "FAILED"]
    assert recorder.updates[-1].reason == reason
    assert fake_inventory.calls == calls
    assert len(recorder.finals) == 1


async def test_an_order_already_final_is_not_driven_again() -> None:
    inventory = FakeInventory()
    s, recorder, _ = saga(inventory, FakePricing())
    order_id = uuid4()
    await s.run(order_id, ORDER)
    await s.run(order_id, ORDER)
    assert len(recorder.finals) == 1
    assert inventory.calls == ["reserve", "commit"]
