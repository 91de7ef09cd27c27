"""The saga's decisions, with fake inventory, pricing, store and announcer (no servers)."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from uuid import UUID, uuid4

import pytest

from foodflow.contracts.inventory import ReservationState
from foodflow.contracts.orders import (
    OrderFinalEvent,
    OrderSnapshot,
    OrderStatus,
    OrderStatusUpdate,
    ValidatedOrder,
)
from foodflow.contracts.payment import (
    AuthoriseRequest,
    PaymentOperation,
    PaymentRequest,
    PaymentResult,
    PaymentState,
)
from foodflow.contracts.pricing import PriceBreakdown, PriceLine, PriceResponse
from foodflow.order_manager.saga import SAGA_DEPENDENCIES, OrderSaga
from foodflow.orders.status_store import SaveOutcome
from foodflow.payment_service.domain import Payment, decide_authorisation
from foodflow.platform.errors import ServiceUnavailable
from foodflow.platform.gate import DependencyGate, DependencyGates
from foodflow.platform.http.client import RequestRefused

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
        if self.outcome == "released":
            return ReservationState(order_id=order_id, state="RELEASED", reserved=False)
        if self.outcome == "short":
            return ReservationState(
                order_id=order_id, state="REJECTED", reserved=False, short_items=["pho-bo"]
            )
        return ReservationState(order_id=order_id, state="RESERVED", reserved=True)

    async def commit(self, order_id: UUID) -> ReservationState:
        self.calls.append("commit")
        if self.outcome == "commit_lost":
            raise ServiceUnavailable("inventory down")
        if self.outcome == "commit_late":  # written by the service, its answer never read
            await asyncio.sleep(10)
        return ReservationState(order_id=order_id, state="COMMITTED", reserved=True)

    async def release(self, order_id: UUID) -> ReservationState | None:
        self.calls.append("release")
        return ReservationState(order_id=order_id, state="RELEASED", reserved=False)

    async def cancel(self, order_id: UUID) -> ReservationState | None:
        self.calls.append("cancel")
        if self.outcome == "commit_lost" and self.calls.count("cancel") == 1:
            await asyncio.sleep(10)  # the order's timeout cuts the first one short
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
    """The version guard of the Redis store, in a dict."""

    def __init__(self) -> None:
        self.saved: dict[UUID, OrderSnapshot] = {}

    async def save(
        self, update: OrderSnapshot, request: ValidatedOrder | None = None
    ) -> SaveOutcome:
        stored = self.saved.get(update.order_id)
        if stored is not None and stored.version >= update.version:
            # A replay only if this very transition (status and reason) holds that version.
            at = [(stored.status, stored.reason)] if stored.version == update.version else []
            at += [(h.status, h.reason) for h in stored.history if h.version == update.version]
            if at and at[0] == (update.status, update.reason):
                return SaveOutcome.ALREADY_THERE
            return SaveOutcome.CONFLICT
        self.saved[update.order_id] = update
        return SaveOutcome.WRITTEN

    async def load_snapshot(self, order_id: UUID | str) -> OrderSnapshot | None:
        return self.saved.get(UUID(str(order_id)))


class WatchedStore(FakeStore):
    """A FakeStore that can be waited on until an order has reached a version."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = asyncio.Condition()

    async def save(
        self, update: OrderSnapshot, request: ValidatedOrder | None = None
    ) -> SaveOutcome:
        outcome = await super().save(update, request)
        async with self.changed:
            self.changed.notify_all()
        return outcome

    async def reached(self, order_id: UUID, version: int) -> OrderSnapshot:
        def stored() -> OrderSnapshot | None:
            snapshot = self.saved.get(order_id)
            return snapshot if snapshot is not None and snapshot.version >= version else None

        async with self.changed:
            await self.changed.wait_for(lambda: stored() is not None)
        snapshot = stored()
        assert snapshot is not None
        return snapshot


class Recorder:
    def __init__(self) -> None:
        self.updates: list[OrderStatusUpdate] = []
        self.finals: list[OrderFinalEvent] = []

    async def __call__(self, update: OrderStatusUpdate, final: OrderFinalEvent | None) -> None:
        self.updates.append(update)
        if final is not None:
            self.finals.append(final)


class FakePayment:
    """Test cards decide, as in the simulated provider; 'hang' never answers, 'down' raises."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.captured = False

    async def authorise(self, request: AuthoriseRequest) -> PaymentResult:
        self.calls.append("authorise")
        if request.card_token == "hang":
            await asyncio.sleep(10)
        if request.card_token == "down":
            raise ServiceUnavailable("payment down")
        decision = decide_authorisation(request.card_token)
        payment = Payment.authorised(request, decision)
        if request.capture and payment.state is PaymentState.AUTHORISED:
            self.captured = True
            return payment.capture(None).result(PaymentOperation.CAPTURE)
        return payment.result(PaymentOperation.AUTHORISE)

    async def capture(self, request: PaymentRequest) -> PaymentResult:
        self.calls.append("capture")
        self.captured = True
        return self._result(PaymentOperation.CAPTURE, PaymentState.CAPTURED, request)

    async def void(self, request: PaymentRequest) -> PaymentResult:
        self.calls.append("void")
        if self.captured:
            raise RequestRefused("payment", 409, "captured; refund it")
        return self._result(PaymentOperation.VOID, PaymentState.VOIDED, request)

    async def refund(self, request: PaymentRequest) -> PaymentResult:
        self.calls.append("refund")
        return self._result(PaymentOperation.REFUND, PaymentState.REFUNDED, request)

    @staticmethod
    def _result(
        operation: PaymentOperation, state: PaymentState, request: PaymentRequest
    ) -> PaymentResult:
        return PaymentResult(
            order_id=request.order_id,
            operation=operation,
            approved=True,
            state=state,
            amount_cents=2246,
        )


def gates(grace: float) -> DependencyGates:
    """The saga's gates with quick trials, so short outages end within a test's time."""
    return DependencyGates(
        {
            name: DependencyGate(name, grace, open_after=2, probe_every=0.02, retry_delay=0.01)
            for name in SAGA_DEPENDENCIES
        }
    )


def saga(
    inventory: FakeInventory,
    pricing: FakePricing,
    payment: FakePayment | None = None,
    store: FakeStore | None = None,
    grace: float = 0.0,
) -> tuple[OrderSaga, Recorder, FakeStore]:
    """A saga over fakes, timing out after 0.5 s; with no grace (the default) the first
    unavailability fails its step, as it did before the gates."""
    recorder, store = Recorder(), store or FakeStore()
    return (
        OrderSaga(
            inventory=inventory,
            pricing=pricing,
            store=store,
            announce=recorder,
            payment=payment or FakePayment(),
            gates=gates(grace),
            order_timeout=0.5,
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
    assert len(recorder.finals) == 1 and recorder.finals[0].price is not None
    assert recorder.finals[0].price.total == Decimal("22.46")
    assert store.saved[order_id].status == "CONFIRMED"


@pytest.mark.parametrize(
    ("inventory", "pricing", "reason", "calls"),
    [
        ("unknown", "ok", "UNKNOWN_ITEM", ["reserve"]),
        ("short", "ok", "OUT_OF_STOCK", ["reserve"]),
        # Decided first, then undone (`_fail_then_undo`): the stock by cancel, and a void that
        # refuses a charge another saga of the order may still be making.
        ("down", "ok", "INVENTORY_UNAVAILABLE", ["reserve", "cancel"]),
        ("reserve", "down", "PRICING_UNAVAILABLE", ["reserve", "cancel"]),
        ("reserve", "refused", "INVALID_ORDER", ["reserve", "cancel"]),
    ],
)
async def test_failures_end_failed_with_reason_and_give_stock_back(
    inventory: str, pricing: str, reason: str, calls: list[str]
) -> None:
    fake_inventory, payment = FakeInventory(inventory), FakePayment()
    s, recorder, _ = saga(fake_inventory, FakePricing(pricing), payment)
    await s.run(uuid4(), ORDER)
    assert [u.status for u in recorder.updates] == ["RECEIVED", "FAILED"]
    assert recorder.updates[-1].reason == reason
    assert fake_inventory.calls == calls
    assert payment.calls == (["void"] if len(calls) > 1 else [])
    assert len(recorder.finals) == 1


@pytest.mark.parametrize(("inventory", "pricing"), [("down", "ok"), ("reserve", "down")])
async def test_a_failure_another_saga_beat_to_the_version_gives_nothing_back(
    inventory: str, pricing: str
) -> None:
    """A stale saga of the order fails to reserve or price after another stored PROCESSING:
    it loses the version, so it neither gives back the stock the other holds nor voids."""
    store, order_id = WatchedStore(), uuid4()

    class Overtaken(FakePricing):
        async def calculate_price(self, order_id: UUID, order: ValidatedOrder) -> PriceResponse:
            stored = await store.reached(order_id, 1)  # RECEIVED v1 stored
            store.saved[order_id] = stored.model_copy(
                update={"status": OrderStatus.PROCESSING, "version": 2}
            )
            return await super().calculate_price(order_id, order)

    fake_inventory, payment = FakeInventory(inventory), FakePayment()
    s, recorder, _ = saga(fake_inventory, Overtaken(pricing), payment, store=store)
    assert await s.run(order_id, ORDER) is None
    assert store.saved[order_id].status == "PROCESSING"
    assert fake_inventory.calls == ["reserve"]
    assert payment.calls == []
    assert [u.status for u in recorder.updates] == ["RECEIVED"]


async def test_a_redelivered_final_order_is_announced_again_not_driven_again() -> None:
    inventory = FakeInventory()
    s, recorder, _ = saga(inventory, FakePricing())
    order_id = uuid4()
    await s.run(order_id, ORDER)
    await s.run(order_id, ORDER)
    assert inventory.calls == ["reserve", "commit"]
    # The same final event twice (a crash may have come between Redis and Kafka): same version.
    assert [(f.status, f.version) for f in recorder.finals] == [("CONFIRMED", 3), ("CONFIRMED", 3)]
    assert recorder.finals[0] == recorder.finals[1]


async def test_an_interrupted_order_resumes_from_its_snapshot() -> None:
    store = FakeStore()
    order_id = uuid4()
    first, _, _ = saga(FakeInventory(), FakePricing(), store=store)
    order = await first.run(order_id, ORDER)
    assert order is not None
    # Roll the store back to the PROCESSING snapshot, as if the process died right after it.
    history = order.history[:2]
    store.saved[order_id] = order.full_snapshot().model_copy(
        update={"status": OrderStatus.PROCESSING, "version": 2, "history": history}
    )
    inventory = FakeInventory()
    second, recorder, _ = saga(inventory, FakePricing(), store=store)
    await second.run(order_id, ORDER)
    # PROCESSING announced again (same version), then only the remaining step runs.
    assert [(u.status, u.version) for u in recorder.updates] == [
        ("PROCESSING", 2),
        ("CONFIRMED", 3),
    ]
    assert inventory.calls == ["commit"]
    final = recorder.finals[-1]
    assert [h.version for h in final.history] == [1, 2, 3]
    assert final.items[0].unit_price == Decimal("9.00")


async def test_a_resumed_order_whose_reservation_expired_fails_cleanly() -> None:
    store = FakeStore()
    order_id = uuid4()
    first, _, _ = saga(FakeInventory(), FakePricing(), store=store)
    order = await first.run(order_id, ORDER)
    assert order is not None
    store.saved[order_id] = order.full_snapshot().model_copy(
        update={
            "status": OrderStatus.RECEIVED,
            "version": 1,
            "history": order.history[:1],
            "price": None,
        }
    )
    second, recorder, _ = saga(FakeInventory("released"), FakePricing(), store=store)
    await second.run(order_id, ORDER)
    assert [(u.status, u.version, u.reason) for u in recorder.updates] == [
        ("RECEIVED", 1, None),
        ("FAILED", 2, "TIMED_OUT"),
    ]


async def test_a_hanging_step_times_out_releases_stock_and_fails_the_order() -> None:
    inventory, payment = FakeInventory(), FakePayment()
    s, recorder, _ = saga(inventory, FakePricing(), payment)
    await s.run(uuid4(), ORDER.model_copy(update={"payment_token": "hang"}))
    assert [u.status for u in recorder.updates] == ["RECEIVED", "PROCESSING", "FAILED"]
    assert recorder.updates[-1].reason == "TIMED_OUT"
    # Cancel, not release: whatever the interrupted step left (held or committed) comes back.
    assert inventory.calls == ["reserve", "cancel"]
    assert payment.calls == ["authorise", "void"]  # a late authorisation is blocked


async def test_a_commit_whose_answer_comes_after_the_timeout_is_undone() -> None:
    """The 10,000-order chaos run's stock drift: the commit landed, the timeout fired before
    its answer; the order fails, is refunded, and its committed stock is given back."""
    inventory, payment = FakeInventory("commit_late"), FakePayment()
    s, recorder, store = saga(inventory, FakePricing(), payment)
    order_id = uuid4()
    await s.run(order_id, ORDER)
    assert [(u.status, u.reason) for u in recorder.updates][-1] == ("FAILED", "TIMED_OUT")
    assert store.saved[order_id].status == "FAILED"
    assert inventory.calls == ["reserve", "commit", "cancel"]
    assert payment.calls == ["authorise", "void", "refund"]


async def test_compensations_cut_short_by_the_timeout_are_done_again() -> None:
    """A lost commit's answer fails the order (decided first); the order's timeout then fires
    while the stock is being given back: the compensations are done again, not dropped."""
    inventory, payment = FakeInventory("commit_lost"), FakePayment()
    s, recorder, store = saga(inventory, FakePricing(), payment)
    order_id = uuid4()
    await s.run(order_id, ORDER)
    assert store.saved[order_id].reason == "INVENTORY_UNAVAILABLE"
    assert [f.reason for f in recorder.finals] == ["INVENTORY_UNAVAILABLE"] * 2  # announced again
    assert inventory.calls == ["reserve", "commit", "cancel", "cancel"]
    assert payment.calls == ["authorise", "void", "refund", "void", "refund"]


async def test_a_timeout_that_another_saga_beat_to_the_version_undoes_nothing() -> None:
    """Two sagas of one order (a sweep, a redelivery): the one that stored its end first wins;
    the other's timeout neither refunds nor gives back the winner's stock, nor announces."""
    store = FakeStore()
    order_id = uuid4()

    class Racing(FakeInventory):
        async def commit(self, order_id: UUID) -> ReservationState:
            # Meanwhile the other saga confirms the order at the version this one will take.
            stored = store.saved[order_id]
            store.saved[order_id] = stored.model_copy(
                update={"status": OrderStatus.CONFIRMED, "version": stored.version + 1}
            )
            return await super().commit(order_id)

    inventory, payment = Racing("commit_late"), FakePayment()
    s, recorder, _ = saga(inventory, FakePricing(), payment, store=store)
    assert await s.run(order_id, ORDER) is None
    assert store.saved[order_id].status == "CONFIRMED"
    assert "FAILED" not in [u.status for u in recorder.updates]
    assert inventory.calls == ["reserve", "commit"]
    assert payment.calls == ["authorise"]


async def test_waiting_on_kafka_to_take_a_transition_does_not_time_the_order_out() -> None:
    """The likeliest cause of a clean-clone CI run's cluster chaos failure (the run printed the
    failed order's id, not its reason): while a killed broker's partitions waited for new
    leaders, an order's announcement waited on Kafka and the order's time ran out (TIMED_OUT,
    payment voided). Kafka bounds that wait itself (the producer's delivery timeout), as a
    gate bounds a dependency's outage: neither uses the order's time."""

    class SlowKafka(Recorder):
        async def __call__(self, update: OrderStatusUpdate, final: OrderFinalEvent | None) -> None:
            if update.status == "PROCESSING":
                await asyncio.sleep(0.8)  # longer than the order's 0.5 s
            await super().__call__(update, final)

    inventory, payment = FakeInventory(), FakePayment()
    s, _, store = saga(inventory, FakePricing(), payment)
    recorder = s.announce = SlowKafka()
    order_id = uuid4()
    await s.run(order_id, ORDER)
    assert [u.status for u in recorder.updates] == ["RECEIVED", "PROCESSING", "CONFIRMED"]
    assert store.saved[order_id].status == "CONFIRMED"
    assert inventory.calls == ["reserve", "commit"]
    assert payment.calls == ["authorise"]


async def test_a_confirmation_another_saga_beat_is_not_announced_after_a_timeout() -> None:
    """Timed out while saving CONFIRMED, which another saga's FAILED beat: announcing it
    anyway gave the order two transitions under one version."""

    class SlowToConfirm(FakeStore):
        async def save(
            self, update: OrderSnapshot, request: ValidatedOrder | None = None
        ) -> SaveOutcome:
            if update.status == "CONFIRMED":
                other = update.model_copy(update={"status": OrderStatus.FAILED})
                self.saved[update.order_id] = other
                await asyncio.sleep(10)  # cut short by the timeout
            return await super().save(update, request)

    s, recorder, store = saga(FakeInventory(), FakePricing(), store=SlowToConfirm())
    order_id = uuid4()
    await s.run(order_id, ORDER)
    assert store.saved[order_id].status == "FAILED"
    versions = [(u.version, u.status) for u in recorder.updates]
    assert (3, "CONFIRMED") not in versions


async def test_a_redelivered_timed_out_order_has_its_compensations_done_again() -> None:
    """FAILED is recorded before the compensations: a crash in between is caught up when the
    order's message comes again."""
    store = FakeStore()
    order_id = uuid4()
    first, _, _ = saga(FakeInventory("commit_late"), FakePricing(), store=store)
    await first.run(order_id, ORDER)
    inventory, payment = FakeInventory(), FakePayment()
    second, recorder, _ = saga(inventory, FakePricing(), payment, store=store)
    assert await second.run(order_id, ORDER) is None
    assert [(u.status, u.reason) for u in recorder.updates] == [("FAILED", "TIMED_OUT")]
    assert inventory.calls == ["cancel"]
    assert payment.calls == ["void"]


@pytest.mark.parametrize(
    ("token", "reason", "payment_calls", "stock_back"),
    [
        # Decided first, then undone: the stock by cancel (the void of a declined payment
        # changes nothing; the charge that may have landed is refunded).
        ("tok_declined", "PAYMENT_DECLINED", ["authorise", "void"], "cancel"),
        ("tok_insufficient_funds", "PAYMENT_DECLINED", ["authorise", "void"], "cancel"),
        ("down", "PAYMENT_UNAVAILABLE", ["authorise", "void"], "cancel"),
    ],
)
async def test_a_payment_that_fails_fails_the_order_and_gives_stock_back(
    token: str, reason: str, payment_calls: list[str], stock_back: str
) -> None:
    inventory, payment = FakeInventory(), FakePayment()
    s, recorder, _ = saga(inventory, FakePricing(), payment)
    await s.run(uuid4(), ORDER.model_copy(update={"payment_token": token}))
    assert [u.status for u in recorder.updates] == ["RECEIVED", "PROCESSING", "FAILED"]
    assert recorder.updates[-1].reason == reason
    assert inventory.calls == ["reserve", stock_back]
    assert payment.calls == payment_calls


async def test_a_stale_saga_whose_payment_fails_does_not_refund_the_winner() -> None:
    """The chaos run's order whose void waited on the payment gate: a saga that fell behind
    (another saga of the order confirmed it meanwhile) must neither refund nor announce."""
    store = FakeStore()
    order_id = uuid4()

    class DownAfterTheOtherConfirmed(FakePayment):
        async def authorise(self, request: AuthoriseRequest) -> PaymentResult:
            await asyncio.sleep(0.05)  # PROCESSING v2 is stored meanwhile
            stored = store.saved[order_id]
            history = [*stored.history]
            history.append(history[-1].model_copy(update={"status": "CONFIRMED", "version": 3}))
            store.saved[order_id] = stored.model_copy(
                update={"status": OrderStatus.CONFIRMED, "version": 3, "history": history}
            )
            return await super().authorise(request)

    inventory, payment = FakeInventory(), DownAfterTheOtherConfirmed()
    s, recorder, _ = saga(inventory, FakePricing(), payment, store=store)
    await s.run(order_id, ORDER.model_copy(update={"payment_token": "down"}))
    assert store.saved[order_id].status == "CONFIRMED"
    assert [u.status for u in recorder.updates] == ["RECEIVED", "PROCESSING"]
    assert inventory.calls == ["reserve"]
    assert payment.calls == ["authorise"]


async def test_confirmed_orders_are_charged_before_stock_is_committed() -> None:
    inventory, payment = FakeInventory(), FakePayment()
    s, recorder, _ = saga(inventory, FakePricing(), payment)
    await s.run(uuid4(), ORDER)
    assert recorder.updates[-1].status == "CONFIRMED"
    assert payment.calls == ["authorise"]  # with capture=True: authorised and captured at once
    assert payment.captured
    assert inventory.calls == ["reserve", "commit"]


async def test_a_saga_stops_when_another_holds_the_order() -> None:
    store = FakeStore()
    order_id = uuid4()
    # Between this saga's read and its write, another one moved the order to PROCESSING v2;
    # this one then tries FAILED at v2 (say, out of stock) and must stand down.
    received = OrderSnapshot(
        order_id=order_id, user_id="u-1", status="RECEIVED", version=1,
        created_at="2026-01-01T00:00:00Z", items=[], history=[],
    )  # fmt: skip
    await store.save(received)

    class Racing(FakeInventory):
        async def reserve(self, order_id: UUID, order: ValidatedOrder) -> ReservationState:
            store.saved[order_id] = received.model_copy(
                update={"status": "PROCESSING", "version": 2}
            )
            return await super().reserve(order_id, order)

    s, recorder, _ = saga(Racing("short"), FakePricing(), store=store)
    assert await s.run(order_id, ORDER) is None
    assert [u.status for u in recorder.updates] == ["RECEIVED"]
    assert store.saved[order_id].status == "PROCESSING"


class SlowStore(FakeStore):
    """Each write takes a while and is logged, so overlapping steps show."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[str] = []

    async def save(
        self, update: OrderSnapshot, request: ValidatedOrder | None = None
    ) -> SaveOutcome:
        self.log.append(f"save {update.status} begins")
        await asyncio.sleep(0.02)
        self.log.append(f"save {update.status} ends")
        return await super().save(update, request)


class LoggingPayment(FakePayment):
    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log = log

    async def authorise(self, request: AuthoriseRequest) -> PaymentResult:
        self.log.append("authorise")
        return await super().authorise(request)


async def test_steps_overlap_the_recording_but_transitions_stay_in_order() -> None:
    store = SlowStore()
    payment = LoggingPayment(store.log)
    s, recorder, _ = saga(FakeInventory(), FakePricing(), payment, store)

    await s.run(uuid4(), ORDER)

    # The card is charged while PROCESSING is being written, not after.
    assert store.log.index("authorise") < store.log.index("save PROCESSING ends")
    # Every transition is written and announced in order, each after the one before.
    assert [u.status for u in recorder.updates] == ["RECEIVED", "PROCESSING", "CONFIRMED"]
    saves = [entry for entry in store.log if entry.startswith("save")]
    assert saves == [
        f"save {status} {edge}"
        for status in ("RECEIVED", "PROCESSING", "CONFIRMED")
        for edge in ("begins", "ends")
    ]


async def test_a_declined_card_fails_the_order_only_after_processing_is_recorded() -> None:
    store = SlowStore()
    payment = LoggingPayment(store.log)
    s, recorder, _ = saga(FakeInventory(), FakePricing(), payment, store)

    await s.run(uuid4(), ORDER.model_copy(update={"payment_token": "tok_declined"}))

    assert [u.status for u in recorder.updates] == ["RECEIVED", "PROCESSING", "FAILED"]
    assert store.log.index("save PROCESSING ends") < store.log.index("save FAILED begins")


class Outage:
    """A dependency down from now for `seconds` (forever with None): `check()` raises
    ServiceUnavailable meanwhile."""

    def __init__(self, what: str, seconds: float | None) -> None:
        self.what = what
        self.ends = None if seconds is None else time.monotonic() + seconds
        self.refused = 0

    def check(self) -> None:
        if self.ends is None or time.monotonic() < self.ends:
            self.refused += 1
            raise ServiceUnavailable(f"{self.what} down")


class InventoryWithOutage(FakeInventory):
    def __init__(self, outage: Outage) -> None:
        super().__init__()
        self.outage = outage

    async def reserve(self, order_id: UUID, order: ValidatedOrder) -> ReservationState:
        self.outage.check()
        return await super().reserve(order_id, order)

    async def release(self, order_id: UUID) -> ReservationState | None:
        self.outage.check()
        return await super().release(order_id)


async def test_an_inventory_outage_shorter_than_the_grace_ends_confirmed() -> None:
    # Down for longer than the order's own timeout (0.5 s): the waiting does not count.
    outage = Outage("inventory", 0.8)
    inventory = InventoryWithOutage(outage)
    s, recorder, _ = saga(inventory, FakePricing(), grace=10.0)
    await s.run(uuid4(), ORDER)
    assert [u.status for u in recorder.updates] == ["RECEIVED", "PROCESSING", "CONFIRMED"]
    assert outage.refused >= 2  # it was tried while down, and waited
    assert inventory.calls == ["reserve", "commit"]


async def test_an_inventory_outage_longer_than_the_grace_fails_with_its_reason() -> None:
    outage = Outage("inventory", None)
    inventory = InventoryWithOutage(outage)
    # The grace (1 s) outlasts the order timeout (0.5 s): the reason must still be the outage.
    s, recorder, _ = saga(inventory, FakePricing(), grace=1.0)
    started = time.monotonic()
    await s.run(uuid4(), ORDER)
    assert time.monotonic() - started >= 1.0
    assert [u.status for u in recorder.updates] == ["RECEIVED", "FAILED"]
    assert recorder.updates[-1].reason == "INVENTORY_UNAVAILABLE"
    assert "grace" in (recorder.updates[-1].detail or "")


class PaymentWithOutage(FakePayment):
    def __init__(self, outage: Outage) -> None:
        super().__init__()
        self.outage = outage

    async def authorise(self, request: AuthoriseRequest) -> PaymentResult:
        self.outage.check()
        return await super().authorise(request)


async def test_a_payment_outage_within_the_grace_charges_once_and_confirms() -> None:
    inventory, payment = FakeInventory(), PaymentWithOutage(Outage("payment", 0.8))
    s, recorder, _ = saga(inventory, FakePricing(), payment, grace=10.0)
    await s.run(uuid4(), ORDER)
    assert recorder.updates[-1].status == "CONFIRMED"
    assert payment.calls == ["authorise"] and payment.captured
    assert inventory.calls == ["reserve", "commit"]


class StoreWithOutage(FakeStore):
    def __init__(self, outage: Outage) -> None:
        super().__init__()
        self.outage = outage

    async def save(
        self, update: OrderSnapshot, request: ValidatedOrder | None = None
    ) -> SaveOutcome:
        self.outage.check()
        return await super().save(update, request)


async def test_a_postgres_outage_within_the_grace_loses_no_transition() -> None:
    store = StoreWithOutage(Outage("postgres", 0.8))
    s, recorder, _ = saga(FakeInventory(), FakePricing(), store=store, grace=10.0)
    order_id = uuid4()
    await s.run(order_id, ORDER)
    assert [u.status for u in recorder.updates] == ["RECEIVED", "PROCESSING", "CONFIRMED"]
    assert store.saved[order_id].status == "CONFIRMED"


async def test_compensations_wait_out_an_outage_within_the_grace() -> None:
    # Pricing is gone for good, inventory is down while the stock is being given back: the
    # order fails PRICING_UNAVAILABLE, and its stock is given back once inventory returns.
    class InventoryDownForRelease(FakeInventory):
        outage: Outage | None = None

        async def cancel(self, order_id: UUID) -> ReservationState | None:
            if self.outage is None:
                self.outage = Outage("inventory", 0.3)
            self.outage.check()
            return await super().cancel(order_id)

    inventory = InventoryDownForRelease()
    s, recorder, _ = saga(inventory, FakePricing("down"), grace=0.2)
    s.gates["inventory"].grace = 10.0
    await s.run(uuid4(), ORDER)
    assert (recorder.updates[-1].status, recorder.updates[-1].reason) == (
        "FAILED",
        "PRICING_UNAVAILABLE",
    )
    assert inventory.calls == ["reserve", "cancel"]
    assert inventory.outage is not None and inventory.outage.refused >= 1
