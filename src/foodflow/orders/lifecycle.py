"""The order state machine. Pure: standard library and contracts only, no I/O."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from foodflow.contracts.orders import (
    ALLOWED_TRANSITIONS,
    FailureReason,
    KitchenPlan,
    OrderFinalEvent,
    OrderSnapshot,
    OrderStatus,
    OrderStatusUpdate,
    PricedItem,
    StatusChange,
    ValidatedOrder,
    utcnow,
)
from foodflow.contracts.pricing import PriceBreakdown, PriceLine


class IllegalTransition(ValueError):
    def __init__(self, current: OrderStatus | None, target: OrderStatus) -> None:
        super().__init__(f"an order cannot go from {current} to {target}")
        self.current = current
        self.target = target


@dataclass
class Order:
    """One order as the saga sees it. Every transition bumps `version` and is recorded."""

    order_id: uuid.UUID
    request: ValidatedOrder
    created_at: datetime = field(default_factory=utcnow)
    # The Kafka timestamp of the order's message on `validated_orders`, when it had one.
    published_at: datetime | None = None
    status: OrderStatus | None = None
    version: int = 0
    reason: FailureReason | None = None
    detail: str | None = None
    price: PriceBreakdown | None = None
    lines: list[PriceLine] = field(default_factory=list)
    history: list[StatusChange] = field(default_factory=list)

    @property
    def left_saga(self) -> bool:
        """The saga is done with it (see `OrderStatus.left_saga`); False before it is received."""
        return self.status is not None and self.status.left_saga

    def transition(
        self,
        target: OrderStatus,
        *,
        reason: FailureReason | None = None,
        detail: str | None = None,
        at: datetime | None = None,
    ) -> OrderStatusUpdate:
        if target not in ALLOWED_TRANSITIONS[self.status]:
            raise IllegalTransition(self.status, target)
        self.status = target
        self.version += 1
        self.reason = reason
        self.detail = detail
        change = StatusChange(status=target, version=self.version, at=at or utcnow(), reason=reason)
        self.history.append(change)
        return self.snapshot()

    def receive(self) -> OrderStatusUpdate:
        return self.transition(OrderStatus.RECEIVED)

    def start_processing(self, lines: list[PriceLine], price: PriceBreakdown) -> OrderStatusUpdate:
        self.lines = lines
        self.price = price
        return self.transition(OrderStatus.PROCESSING)

    def confirm(self) -> OrderStatusUpdate:
        return self.transition(OrderStatus.CONFIRMED)

    def fail(self, reason: FailureReason, detail: str | None = None) -> OrderStatusUpdate:
        return self.transition(OrderStatus.FAILED, reason=reason, detail=detail)

    @staticmethod
    def reject(
        order_id: uuid.UUID,
        user_id: str,
        detail: str,
        at: datetime | None = None,
        published_at: datetime | None = None,
    ) -> OrderFinalEvent:
        """The one and only event of an order whose message could not be read: FAILED with
        INVALID_ORDER at version 1, straight from no status (the edge None → FAILED of
        ALLOWED_TRANSITIONS), with no lines, no price and that single step as its timeline."""
        if OrderStatus.FAILED not in ALLOWED_TRANSITIONS[None]:
            raise IllegalTransition(None, OrderStatus.FAILED)
        when = at or utcnow()
        reason = FailureReason.INVALID_ORDER
        return OrderFinalEvent(
            order_id=order_id,
            user_id=user_id,
            status=OrderStatus.FAILED,
            version=1,
            reason=reason,
            detail=detail,
            created_at=when,
            updated_at=when,
            published_at=published_at,
            items=[],
            history=[StatusChange(status=OrderStatus.FAILED, version=1, at=when, reason=reason)],
        )

    def _fields(self) -> dict[str, Any]:
        assert self.status is not None, "an order has no state before it is received"
        return {
            "order_id": self.order_id,
            "user_id": self.request.user_id,
            "status": self.status,
            "version": self.version,
            "reason": self.reason,
            "detail": self.detail,
            "price": self.price,
            "created_at": self.created_at,
            "updated_at": self.history[-1].at,
            "delivery_address": self.request.delivery_address,
            "published_at": self.published_at,
        }

    # The events below are built with `model_construct`: every part is a validated model or a
    # value this class controls, and validating it all again on each of the ~6 events of an
    # order was a tenth of the order manager's CPU.

    def snapshot(self) -> OrderStatusUpdate:
        return OrderStatusUpdate.model_construct(**self._fields())

    @classmethod
    def resume(cls, request: ValidatedOrder, snapshot: OrderSnapshot) -> Order:
        """The order as a stored snapshot left it, to carry on from there."""
        lines = [
            PriceLine(
                item_id=i.item_id,
                quantity=i.quantity,
                unit_price=i.unit_price,
                line_total=i.line_total,
            )
            for i in snapshot.items
            if i.unit_price is not None and i.line_total is not None
        ]
        return cls(
            order_id=snapshot.order_id,
            request=request,
            created_at=snapshot.created_at,
            published_at=snapshot.published_at,
            status=snapshot.status,
            version=snapshot.version,
            reason=snapshot.reason,
            detail=snapshot.detail,
            price=snapshot.price,
            lines=lines,
            history=list(snapshot.history),
        )

    def full_snapshot(self) -> OrderSnapshot:
        """Status, items with their prices (once priced) and the timeline so far."""
        return OrderSnapshot.model_construct(
            **self._fields(), items=self._priced_items(), history=list(self.history)
        )

    def _priced_items(self) -> list[PricedItem]:
        priced = {line.item_id: line for line in self.lines}
        return [
            PricedItem.model_construct(
                item_id=item.item_id,
                quantity=item.quantity,
                unit_price=priced[item.item_id].unit_price if item.item_id in priced else None,
                line_total=priced[item.item_id].line_total if item.item_id in priced else None,
            )
            for item in self.request.items
        ]

    def final_event(self) -> OrderFinalEvent:
        """The enriched event for `db_write_order_status`: items, unit prices, timeline."""
        if not self.left_saga:
            raise IllegalTransition(self.status, OrderStatus.CONFIRMED)
        return OrderFinalEvent.model_construct(
            **self._fields(), items=self._priced_items(), history=list(self.history)
        )


def advance(
    snapshot: OrderSnapshot,
    target: OrderStatus,
    *,
    reason: FailureReason | None = None,
    detail: str | None = None,
    at: datetime | None = None,
    kitchen: KitchenPlan | None = None,
) -> OrderSnapshot:
    """The next state of an order that left the saga: version + 1, one more timeline entry.

    Used by whoever owns the order after CONFIRMED (the restaurant and delivery services); the
    snapshot read from PostgreSQL is the starting point, and the version-guarded save decides
    who wins a race. `kitchen`, when given, replaces the order's kitchen plan (the restaurant
    accepting it, or moving its ready-by time); otherwise the plan is kept.
    """
    if target not in ALLOWED_TRANSITIONS[snapshot.status]:
        raise IllegalTransition(snapshot.status, target)
    when = at or utcnow()
    version = snapshot.version + 1
    change = StatusChange(status=target, version=version, at=when, reason=reason)
    return snapshot.model_copy(
        update={
            "status": target,
            "version": version,
            "reason": reason,
            "detail": detail,
            "updated_at": when,
            "history": [*snapshot.history, change],
            "kitchen": kitchen if kitchen is not None else snapshot.kitchen,
        }
    )
