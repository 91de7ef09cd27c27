"""Drives one order: reserve stock → price → PROCESSING → payment → CONFIRMED, or FAILED.

Payment is authorised and captured at confirmation: the kitchen starts on a CONFIRMED order,
so the customer is charged then, and a later cancellation is a refund.

Every call to a dependency goes through its gate (`foodflow.platform.gate`): an outage shorter
than the grace is waited out, steps and compensations alike, and the order's own timeout does
not run meanwhile; past the grace the step fails with the dependency's reason, as before.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Protocol, TypeVar
from uuid import UUID

from foodflow.contracts.inventory import ReservationState
from foodflow.contracts.money import to_cents
from foodflow.contracts.orders import (
    FailureReason,
    OrderFinalEvent,
    OrderSnapshot,
    OrderStatus,
    OrderStatusUpdate,
    ValidatedOrder,
)
from foodflow.contracts.payment import AuthoriseRequest, PaymentRequest, PaymentResult
from foodflow.contracts.pricing import PriceResponse
from foodflow.orders.lifecycle import Order
from foodflow.orders.status_store import SaveOutcome
from foodflow.platform.errors import ServiceUnavailable
from foodflow.platform.gate import (
    DependencyGates,
    PausableTimeout,
    not_counted,
    paused_while_waiting,
)
from foodflow.platform.http.client import RequestRefused
from foodflow.platform.logs import bind_order_id

log = logging.getLogger(__name__)
T = TypeVar("T")

# The gates the saga calls through. PostgreSQL is the order state's store (its adapter raises
# a ServiceUnavailable while PostgreSQL is unreachable); Redis, a cache, has no gate.
INVENTORY, PRICING, PAYMENT, POSTGRES = "inventory", "pricing", "payment", "postgres"
SAGA_DEPENDENCIES = [INVENTORY, PRICING, PAYMENT, POSTGRES]
# Failures recorded before their compensations (`OrderSaga._fail_then_undo`): a redelivered
# order stored FAILED for one of these has them done again (they are idempotent).
UNDONE_AFTER = frozenset(
    {
        FailureReason.TIMED_OUT,
        FailureReason.INVENTORY_UNAVAILABLE,
        FailureReason.PRICING_UNAVAILABLE,
        FailureReason.INVALID_ORDER,
        FailureReason.PAYMENT_DECLINED,
        FailureReason.PAYMENT_UNAVAILABLE,
    }
)


class Inventory(Protocol):
    async def reserve(self, order_id: UUID, order: ValidatedOrder) -> ReservationState: ...
    async def commit(self, order_id: UUID) -> ReservationState: ...
    async def release(self, order_id: UUID) -> ReservationState | None: ...
    async def cancel(self, order_id: UUID) -> ReservationState | None: ...


class Pricing(Protocol):
    async def calculate_price(self, order_id: UUID, order: ValidatedOrder) -> PriceResponse: ...


class PaymentProvider(Protocol):
    """What the order saga needs from a payment provider; every call idempotent by key.

    The payment service (over HTTP, `clients.payment.PaymentClient`) implements it;
    a real provider's adapter would implement the same four calls.
    """

    async def authorise(self, request: AuthoriseRequest) -> PaymentResult: ...
    async def capture(self, request: PaymentRequest) -> PaymentResult: ...
    async def void(self, request: PaymentRequest) -> PaymentResult: ...
    async def refund(self, request: PaymentRequest) -> PaymentResult: ...


class StatusStore(Protocol):
    async def save(
        self, update: OrderSnapshot, request: ValidatedOrder | None = None
    ) -> SaveOutcome: ...
    async def load_snapshot(self, order_id: UUID | str) -> OrderSnapshot | None: ...


class OrderTakenOver(Exception):
    """Another saga (a sweeper, another instance) stored a different status at this version."""


class Announcer(Protocol):
    """Makes a transition known: the status event, and for final states the enriched event."""

    async def __call__(self, update: OrderStatusUpdate, final: OrderFinalEvent | None) -> None: ...


class OrderSaga:
    def __init__(
        self,
        *,
        inventory: Inventory,
        pricing: Pricing,
        store: StatusStore,
        announce: Announcer,
        payment: PaymentProvider,
        gates: DependencyGates,
        order_timeout: float = 30.0,
    ) -> None:
        self.inventory = inventory
        self.pricing = pricing
        self.store = store
        self.announce = announce
        self.payment = payment
        self.gates = gates
        self.order_timeout = order_timeout

    def _through(self, dependency: str, step: Callable[[], Awaitable[T]]) -> Awaitable[T]:
        """`step()` through the dependency's gate: retried while it is down, within the grace."""
        return self.gates[dependency].call(step)

    async def _record(self, order: Order, update: OrderStatusUpdate) -> None:
        """Redis first, then Kafka. A crash in between is repaired when the order is resumed:
        the stored state is announced again (same version, so consumers see no new event)."""
        await self._write(order, update)()

    def _record_soon(self, order: Order, update: OrderStatusUpdate) -> asyncio.Future[None]:
        """`_record`, started now and awaited later: the caller goes on with the next step
        (every step is idempotent) and awaits this before it records anything else, so Redis
        and Kafka still see the order's transitions in order."""
        return asyncio.ensure_future(self._write(order, update)())

    def _write(self, order: Order, update: OrderStatusUpdate) -> Callable[[], Awaitable[None]]:
        # What is written is taken now: the order may move on while the write waits its turn.
        snapshot = order.full_snapshot()
        final = order.final_event() if order.left_saga else None
        request = order.request if update.version == 1 else None

        async def write() -> None:
            outcome = await self._through(POSTGRES, lambda: self.store.save(snapshot, request))
            if outcome is SaveOutcome.CONFLICT:
                raise OrderTakenOver(f"order {order.order_id} v{update.version} is held by another")
            # Kafka bounds its own waits (a partition whose leader died waits for a new one,
            # up to the producer's delivery timeout): not the order's time, as a gate's isn't.
            with not_counted():
                await self.announce(update, final)

        return write

    async def _fail(self, order: Order, reason: FailureReason, detail: str) -> Order:
        log.warning("Order %s FAILED reason=%s: %s", order.order_id, reason, detail)
        await self._record(order, order.fail(reason, detail))
        return order

    async def _release(self, order: Order) -> None:
        try:
            await self._through(INVENTORY, lambda: self.inventory.release(order.order_id))
        except (ServiceUnavailable, RequestRefused) as exc:
            # The reservation stays held; the inventory's sweeper gives it back after its TTL.
            log.error("Order %s: releasing stock failed: %s", order.order_id, exc)

    async def run(
        self, order_id: UUID, request: ValidatedOrder, published_at: datetime | None = None
    ) -> Order | None:
        """Take one order to a final state, within `order_timeout` seconds (not counting the
        time it waits on a dependency's gate, nor for Kafka to take its transitions).

        A redelivered or swept order resumes from the snapshot Redis holds: its last stored
        transition is announced again, and the saga carries on with the next step. Every step
        is idempotent (reserve, commit and release are keyed by the order id), so a step done
        before the crash is harmlessly done again. An order already final is only announced.
        `published_at` (the message's Kafka timestamp) goes on every status event of a new order;
        a resumed one keeps what its snapshot holds.
        """
        bind_order_id(order_id)
        stored = await self._through(POSTGRES, lambda: self.store.load_snapshot(order_id))
        if stored is not None:
            left_saga = stored.status.left_saga
            final = OrderFinalEvent.model_validate(stored.model_dump()) if left_saga else None
            await self.announce(stored.status_update(), final)
            if left_saga:
                log.info("Order %s is already %s; announced it again", order_id, stored.status)
                if stored.status is OrderStatus.FAILED and stored.reason in UNDONE_AFTER:
                    # FAILED was recorded before the compensations: a crash in between left
                    # them undone, and this redelivery is their chance.
                    await self._undo_all(order_id)
                return None
            log.warning("Resuming order %s from %s v%d", order_id, stored.status, stored.version)
            order = Order.resume(request, stored)
        else:
            order = Order(order_id=order_id, request=request, published_at=published_at)
        try:
            async with asyncio.timeout(self.order_timeout) as deadline:
                # Waiting out a dependency's outage (within the grace) does not use the time.
                with paused_while_waiting(PausableTimeout(deadline)):
                    return await self._drive(order)
        except OrderTakenOver as exc:
            log.warning("Order %s: %s; this saga stops", order_id, exc)
            return None
        except TimeoutError:
            if order.left_saga:  # timed out while announcing: the final state stands
                await self._record_again(order)
                if order.status is OrderStatus.FAILED and order.reason in UNDONE_AFTER:
                    # Or while undoing what `_fail_then_undo` decided: done again, whole.
                    await self._undo_all(order_id)
                return order
            detail = f"not final within {self.order_timeout:.0f}s"
            try:
                return await self._fail_then_undo(order, FailureReason.TIMED_OUT, detail)
            except OrderTakenOver:
                return None

    async def _fail_then_undo(self, order: Order, reason: FailureReason, detail: str) -> Order:
        """FAILED, decided first, then compensated: every failure once stock was asked for.

        Two things may be behind this saga's back. The step interrupted may still land: a
        commit sent before the deadline is written by the inventory service even though its
        answer is never read. And another saga of the same order (a redelivery after a
        rebalance, a sweep) may have moved on: it holds the same reservation (keyed by the
        order id) and may be charging or committing. Giving the stock back first would take it
        from under that saga, which then fails a paid order. So the order's end is decided
        first, by the version-guarded save: when another saga stored its own transition at
        this version, it wins and this one undoes nothing. Only the winner voids or refunds the
        payment (a void before any authorisation leaves the tombstone that refuses a late one)
        and gives the stock back, reserved or committed. A crash between the two is caught up
        when the order is resumed (`run`).
        """
        try:
            await self._fail(order, reason, detail)
        except OrderTakenOver:
            log.warning(
                "Order %s: another saga decided first; this failure undoes nothing", order.order_id
            )
            raise
        await self._undo_all(order.order_id)
        return order

    async def _undo_all(self, order_id: UUID) -> None:
        """The compensations of `_fail_then_undo`; idempotent, so a resume may repeat them."""
        await self._undo_payment(order_id)
        try:
            # Cancel, not release: a commit that landed as the timeout fired is undone too
            # (a release refuses a COMMITTED reservation, and the stock would never come back).
            await self._through(INVENTORY, lambda: self.inventory.cancel(order_id))
        except (ServiceUnavailable, RequestRefused) as exc:
            log.error("Order %s: giving stock back failed: %s", order_id, exc)

    async def _record_again(self, order: Order) -> None:
        snapshot = order.full_snapshot()
        outcome = await self._through(POSTGRES, lambda: self.store.save(snapshot))
        if outcome is SaveOutcome.CONFLICT:
            # Another saga stored its own transition at this version: announcing ours would
            # give the order two different transitions under one version.
            log.warning(
                "Order %s v%d is held by another; not announced", order.order_id, order.version
            )
            return
        await self.announce(order.snapshot(), order.final_event())

    async def _drive(self, order: Order) -> Order:
        """Run the steps that remain from the order's current status."""
        recording: asyncio.Future[None] | None = None
        if order.status is None:
            log.info("Received validated order %s from %s", order.order_id, order.request.user_id)
            # Stock and price are asked for while RECEIVED is being recorded: three waits in a
            # row become one. Nothing is recorded after RECEIVED before RECEIVED is.
            recording = self._record_soon(order, order.receive())
        if order.status is OrderStatus.RECEIVED:
            recording = await self._reserve_and_price(order, recording)
        if order.status is OrderStatus.PROCESSING:
            await self._pay_and_confirm(order, recording)
        return order

    async def _reserve_and_price(
        self, order: Order, recording: asyncio.Future[None] | None = None
    ) -> asyncio.Future[None] | None:
        """RECEIVED → PROCESSING (stock reserved, priced), or FAILED with stock given back.
        PROCESSING is recorded while the saga goes on to payment: its recording is returned.

        Stock and price are asked for at once (pricing does not depend on the reservation; a
        price for an order that then lacks stock is simply not used); their answers are then
        taken in the seed's order: stock first, then price.
        """
        order_id, request = order.order_id, order.request
        log.info("Checking inventory... order %s", order_id)
        log.info("Calculating price... order %s", order_id)
        asked = asyncio.gather(
            self._through(INVENTORY, lambda: self.inventory.reserve(order_id, request)),
            self._through(PRICING, lambda: self.pricing.calculate_price(order_id, request)),
            return_exceptions=True,
        )
        try:
            reservation, priced = await asked
        finally:
            if recording is not None:
                await recording  # raises OrderTakenOver if another saga holds the order
        if isinstance(reservation, BaseException):
            if isinstance(reservation, RequestRefused):
                await self._fail(order, FailureReason.INVALID_ORDER, reservation.message)
                return None
            if isinstance(reservation, ServiceUnavailable):
                # The reservation may have landed with its answer lost: decided, then undone.
                detail = str(reservation)
                await self._fail_then_undo(order, FailureReason.INVENTORY_UNAVAILABLE, detail)
                return None
            raise reservation
        log.info("Available=%s order %s", reservation.reserved, order_id)
        if not reservation.reserved:
            if reservation.unknown_items:
                detail = "unknown items: " + ", ".join(reservation.unknown_items)
                await self._fail(order, FailureReason.UNKNOWN_ITEM, detail)
            elif reservation.short_items:
                detail = "not enough stock: " + ", ".join(reservation.short_items)
                await self._fail(order, FailureReason.OUT_OF_STOCK, detail)
            else:  # resumed after its reservation was given back (timeout, sweep)
                detail = f"stock reservation is {reservation.state}"
                await self._fail(order, FailureReason.TIMED_OUT, detail)
            return None
        if isinstance(priced, BaseException):
            if isinstance(priced, RequestRefused):
                await self._fail_then_undo(order, FailureReason.INVALID_ORDER, priced.message)
                return None
            if isinstance(priced, ServiceUnavailable):
                await self._fail_then_undo(order, FailureReason.PRICING_UNAVAILABLE, str(priced))
                return None
            await self._release(order)
            raise priced
        total = priced.breakdown.total
        log.info("Final Price=%s %s order %s", total, priced.breakdown.currency, order_id)
        log.info("Processing order %s", order_id)
        return self._record_soon(order, order.start_processing(priced.lines, priced.breakdown))

    async def _undo_payment(self, order_id: UUID) -> None:
        """Void the authorisation (or block a late one); refund once captured. Idempotent."""
        void = PaymentRequest(order_id=order_id, idempotency_key=f"{order_id}:void")
        refund = PaymentRequest(order_id=order_id, idempotency_key=f"{order_id}:refund")
        try:
            await self._through(PAYMENT, lambda: self.payment.void(void))
        except RequestRefused as exc:
            if exc.status != 409:  # 409: captured already, so it is a refund
                log.error("Order %s: voiding the payment failed: %s", order_id, exc)
                return
            try:
                await self._through(PAYMENT, lambda: self.payment.refund(refund))
            except (ServiceUnavailable, RequestRefused) as refund_exc:
                log.error("Order %s: refunding the payment failed: %s", order_id, refund_exc)
        except ServiceUnavailable as exc:
            log.error("Order %s: voiding the payment failed: %s", order_id, exc)

    async def _charge(self, order: Order) -> str | None:
        """Authorise and capture the order's total in one call; None when charged, else why
        not."""
        order_id = order.order_id
        assert order.price is not None, "an order is priced before it is paid"
        log.info("Authorising payment... order %s", order_id)
        request = AuthoriseRequest(
            order_id=order_id,
            amount_cents=to_cents(order.price.total),
            currency=order.price.currency,
            card_token=order.request.payment_token,
            idempotency_key=f"{order_id}:authorise",
            capture=True,
        )
        authorisation = await self._through(PAYMENT, lambda: self.payment.authorise(request))
        if not authorisation.approved:
            return f"payment declined: {authorisation.decline_code}"
        return None

    async def _pay_and_confirm(
        self, order: Order, recording: asyncio.Future[None] | None = None
    ) -> None:
        """PROCESSING → CONFIRMED (charged, stock taken for good), or FAILED with the payment
        voided or refunded and the stock given back. The card is charged while PROCESSING is
        being recorded (`recording`); nothing else is recorded before it is."""
        order_id = order.order_id
        try:
            try:
                declined = await self._charge(order)
            finally:
                if recording is not None:
                    await recording  # raises OrderTakenOver if another saga holds the order
        except (ServiceUnavailable, RequestRefused) as exc:
            # The charge may have landed (its answer lost), and another saga of the order may
            # have confirmed it meanwhile: decide first, so that only the winner refunds.
            await self._fail_then_undo(order, FailureReason.PAYMENT_UNAVAILABLE, str(exc))
            return
        if declined is not None:
            await self._fail_then_undo(order, FailureReason.PAYMENT_DECLINED, declined)
            return
        log.info("Confirming order %s", order_id)
        try:
            await self._through(INVENTORY, lambda: self.inventory.commit(order_id))
        except (ServiceUnavailable, RequestRefused) as exc:
            # The commit may have landed with its answer lost: the stock is given back even so.
            await self._fail_then_undo(order, FailureReason.INVENTORY_UNAVAILABLE, str(exc))
            return
        await self._record(order, order.confirm())
        total = order.price.total if order.price else None
        log.info("Finished processing order %s: CONFIRMED, total %s", order_id, total)
