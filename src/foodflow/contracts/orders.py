"""Order messages: what arrives on `validated_orders` and what the saga announces."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

from foodflow.contracts.inventory import ItemId
from foodflow.contracts.pricing import PriceBreakdown

MAX_ITEMS_PER_ORDER = 50
MAX_QUANTITY = 100
UserId = Annotated[str, Field(min_length=1, max_length=64)]


def utcnow() -> datetime:
    return datetime.now(UTC)


class OrderStatus(StrEnum):
    RECEIVED = "RECEIVED"
    PROCESSING = "PROCESSING"
    CONFIRMED = "CONFIRMED"
    COURIER_ASSIGNED = "COURIER_ASSIGNED"
    PICKED_UP = "PICKED_UP"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class FailureReason(StrEnum):
    INVALID_ORDER = "INVALID_ORDER"
    UNKNOWN_ITEM = "UNKNOWN_ITEM"
    OUT_OF_STOCK = "OUT_OF_STOCK"
    INVENTORY_UNAVAILABLE = "INVENTORY_UNAVAILABLE"
    PRICING_UNAVAILABLE = "PRICING_UNAVAILABLE"
    PAYMENT_DECLINED = "PAYMENT_DECLINED"
    PAYMENT_UNAVAILABLE = "PAYMENT_UNAVAILABLE"
    TIMED_OUT = "TIMED_OUT"
    # Reasons of CANCELLED: the customer asked, or no courier became free in time.
    CUSTOMER_CANCELLED = "CUSTOMER_CANCELLED"
    NO_COURIER = "NO_COURIER"


class OrderItemIn(BaseModel):
    """One line of an incoming order. `price` is what the client believes; the catalogue decides."""

    model_config = ConfigDict(extra="ignore")

    item_id: ItemId
    quantity: int = Field(ge=1, le=MAX_QUANTITY, strict=True)
    price: Decimal | None = Field(default=None, ge=0, le=Decimal("100000"), allow_inf_nan=False)


class DeliveryAddress(BaseModel):
    """Where the order goes: a postal address and its point on the map (degrees)."""

    address: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]+$")
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class ValidatedOrder(BaseModel):
    """A message on `validated_orders`. `order_id` is optional: the order manager assigns one."""

    model_config = ConfigDict(extra="ignore")

    order_id: UUID | None = None
    user_id: UserId
    items: list[OrderItemIn] = Field(min_length=1, max_length=MAX_ITEMS_PER_ORDER)
    promo_code: str | None = Field(default=None, max_length=32)
    # Test card token for the payment provider; None pays with the default (approving) card.
    payment_token: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9_]+$")
    # Orders with an address are delivered by a courier; the seed's orders (none) end CONFIRMED.
    delivery_address: DeliveryAddress | None = None

    @field_validator("items")
    @classmethod
    def _distinct_items(cls, items: list[OrderItemIn]) -> list[OrderItemIn]:
        ids = [item.item_id for item in items]
        if len(ids) != len(set(ids)):
            raise ValueError("each item_id may appear only once per order")
        return items


class PricedItem(BaseModel):
    """An order line as charged; prices are None when the order failed before it was priced."""

    item_id: str
    quantity: int
    unit_price: Decimal | None = None
    line_total: Decimal | None = None


class StatusChange(BaseModel):
    status: OrderStatus
    version: int
    at: datetime
    reason: FailureReason | None = None


class OrderStatusUpdate(BaseModel):
    """One transition of one order: a message on `order_status_updates`, keyed by order id.

    The same JSON is the order's current state in Redis under `order_status:<order_id>`.
    """

    order_id: UUID
    user_id: str
    status: OrderStatus
    version: int = Field(ge=1)
    reason: FailureReason | None = None
    detail: str | None = None
    price: PriceBreakdown | None = None
    created_at: datetime
    updated_at: datetime = Field(default_factory=utcnow)
    delivery_address: DeliveryAddress | None = None

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class OrderSnapshot(OrderStatusUpdate):
    """An order's status with its lines and timeline so far: what Redis keeps, so a saga that
    died can be resumed from where it was (and a final state announced again). A bare status
    (as stored before snapshots existed) reads as a snapshot with no lines and no timeline."""

    items: list[PricedItem] = Field(default_factory=list)
    history: list[StatusChange] = Field(default_factory=list)

    def status_update(self) -> OrderStatusUpdate:
        """The plain status event of this state."""
        return OrderStatusUpdate.model_validate(self.model_dump(exclude={"items", "history"}))


class OrderFinalEvent(OrderSnapshot):
    """The enriched event on `db_write_order_status` once an order reaches a final state."""


class DeadLetter(BaseModel):
    """A message that could not be handled, with why, where it came from and when."""

    source_topic: str
    source_partition: int
    source_offset: int
    error: str
    payload: str
    payload_base64: str | None = None
    order_id: UUID | None = None
    failed_at: datetime = Field(default_factory=utcnow)


# Final for the order saga: the order left it (CONFIRMED onwards, or FAILED/CANCELLED). The
# saga's final states go to `db_write_order_status`; delivery then moves CONFIRMED orders on.
FINAL_STATUSES = frozenset(
    {
        OrderStatus.CONFIRMED,
        OrderStatus.COURIER_ASSIGNED,
        OrderStatus.PICKED_UP,
        OrderStatus.DELIVERED,
        OrderStatus.FAILED,
        OrderStatus.CANCELLED,
    }
)
# Nothing follows these; they are persisted by the writer, like CONFIRMED.
TERMINAL_STATUSES = frozenset({OrderStatus.DELIVERED, OrderStatus.FAILED, OrderStatus.CANCELLED})
PERSISTED_STATUSES = TERMINAL_STATUSES | {OrderStatus.CONFIRMED}


def order_status_key(order_id: UUID | str) -> str:
    return f"order_status:{order_id}"
