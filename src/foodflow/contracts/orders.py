"""Order messages (what arrives on `validated_orders`, what the saga announces) and the order
lifecycle: `OrderStatus`, its `ALLOWED_TRANSITIONS` and the predicates derived from them."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, ClassVar
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from foodflow.contracts.inventory import ItemId
from foodflow.contracts.pricing import PriceBreakdown, PromoCode
from foodflow.contracts.text import Latitude, Longitude, Text

MAX_ITEMS_PER_ORDER = 50
MAX_QUANTITY = 100
UserId = Annotated[Text, Field(min_length=1, max_length=64)]


def utcnow() -> datetime:
    return datetime.now(UTC)


class OrderStatus(StrEnum):
    """Where an order stands. The statuses and the moves between them, `ALLOWED_TRANSITIONS`,
    are the whole lifecycle: the order manager's saga drives an order from RECEIVED until it
    hands it over at CONFIRMED (or fails it); from there the restaurant service moves the
    kitchen's steps (accepted or rejected, preparing, ready) and the delivery service the
    courier's (assigned, picked up, delivered) and every cancellation.

    Every question about a status is one of the predicates below, derived from the moves; each
    has its members as a class-level set too (`OrderStatus.TERMINAL` for `is_terminal`, …).
    """

    RECEIVED = "RECEIVED"
    PROCESSING = "PROCESSING"
    CONFIRMED = "CONFIRMED"
    # The restaurant's steps (restaurant_service): it accepts with a ready-by time, or rejects.
    RESTAURANT_ACCEPTED = "RESTAURANT_ACCEPTED"
    RESTAURANT_REJECTED = "RESTAURANT_REJECTED"
    PREPARING = "PREPARING"
    READY_FOR_PICKUP = "READY_FOR_PICKUP"
    COURIER_ASSIGNED = "COURIER_ASSIGNED"
    PICKED_UP = "PICKED_UP"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    # Filled in below, once ALLOWED_TRANSITIONS exists (annotated only, so not members).
    IN_SAGA: ClassVar[frozenset[OrderStatus]]
    LEFT_SAGA: ClassVar[frozenset[OrderStatus]]
    ENDS_SAGA: ClassVar[frozenset[OrderStatus]]
    TERMINAL: ClassVar[frozenset[OrderStatus]]
    ABORTED: ClassVar[frozenset[OrderStatus]]
    CANCELLABLE: ClassVar[frozenset[OrderStatus]]
    PERSISTED: ClassVar[frozenset[OrderStatus]]

    # The predicates read module globals, not the class-level sets: an attribute of an Enum
    # class is looked up through EnumType's slow path, and some of these run on every event.

    @property
    def in_saga(self) -> bool:
        """The order manager's saga drives it: RECEIVED, PROCESSING (the handover still ahead).
        A saga that died leaves it here for the sweeper to resume."""
        return self in _IN_SAGA

    @property
    def left_saga(self) -> bool:
        """The saga is done with it: every status but RECEIVED and PROCESSING. The saga stops
        and announces its final event; the order is no longer in flight for the sweeper."""
        return self in _LEFT_SAGA

    @property
    def ends_saga(self) -> bool:
        """A saga's last transition lands here: CONFIRMED, FAILED, CANCELLED."""
        return self in _ENDS_SAGA

    @property
    def is_terminal(self) -> bool:
        """Nothing can happen to it any more: DELIVERED, FAILED, CANCELLED."""
        return self in _TERMINAL

    @property
    def aborted(self) -> bool:
        """It ended without being delivered: FAILED, CANCELLED (where a saga ends and nothing
        follows)."""
        return self in _ABORTED

    @property
    def cancellable(self) -> bool:
        """It may still go to CANCELLED: RECEIVED, PROCESSING, CONFIRMED, COURIER_ASSIGNED."""
        return self in _CANCELLABLE

    @property
    def persisted(self) -> bool:
        """The order writer gets an `OrderFinalEvent` for it, to keep it in PostgreSQL: every
        status from the saga's end on (CONFIRMED, COURIER_ASSIGNED, PICKED_UP, DELIVERED,
        FAILED, CANCELLED), so that `orders` and `order_status_history` follow a delivery step
        by step. The saga's own steps (RECEIVED, PROCESSING) reach the history with the event
        that ends it, which carries the whole timeline."""
        return self in _PERSISTED


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
    # Reasons of RESTAURANT_REJECTED, and of the CANCELLED that follows it: the restaurant is
    # closed, out of an item, too busy, or did not answer within RESTAURANT_ACCEPT_TIMEOUT_SECONDS.
    RESTAURANT_CLOSED = "RESTAURANT_CLOSED"
    ITEM_UNAVAILABLE = "ITEM_UNAVAILABLE"
    KITCHEN_BUSY = "KITCHEN_BUSY"
    RESTAURANT_TIMEOUT = "RESTAURANT_TIMEOUT"


# The reasons a restaurant may give for saying no (RESTAURANT_TIMEOUT is the service's own).
REJECTION_REASONS = frozenset(
    {FailureReason.RESTAURANT_CLOSED, FailureReason.ITEM_UNAVAILABLE, FailureReason.KITCHEN_BUSY}
)


class OrderItemIn(BaseModel):
    """One line of an incoming order. `price` is what the client believes; the catalogue decides."""

    model_config = ConfigDict(extra="ignore")

    item_id: ItemId
    quantity: int = Field(ge=1, le=MAX_QUANTITY, strict=True)
    price: Decimal | None = Field(default=None, ge=0, le=Decimal("100000"), allow_inf_nan=False)


class DeliveryAddress(BaseModel):
    """Where the order goes: a postal address and its point on the map (degrees)."""

    address: Text = Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]+$")
    lat: Latitude
    lon: Longitude


class ValidatedOrder(BaseModel):
    """A message on `validated_orders`. `order_id` is optional: the order manager assigns one."""

    model_config = ConfigDict(extra="ignore")

    order_id: UUID | None = None
    user_id: UserId
    items: list[OrderItemIn] = Field(min_length=1, max_length=MAX_ITEMS_PER_ORDER)
    promo_code: PromoCode | None = None
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

    item_id: Text
    quantity: int
    unit_price: Decimal | None = None
    line_total: Decimal | None = None


class StatusChange(BaseModel):
    status: OrderStatus
    version: int
    at: datetime
    reason: FailureReason | None = None


class KitchenPlan(BaseModel):
    """Which restaurant cooks the order, where the courier collects it, and when the kitchen
    says it will be ready. Set by the restaurant service when it accepts the order; carried on
    every event after that, with `ready_by` moved when the kitchen reports a delay."""

    restaurant_id: Text = Field(min_length=1, max_length=64)
    restaurant_name: Text = Field(min_length=1, max_length=120)
    lat: Latitude
    lon: Longitude
    ready_by: AwareDatetime  # compared with the clock: a time without its zone is refused


class OrderStatusUpdate(BaseModel):
    """One transition of one order: a message on `order_status_updates`, keyed by order id.

    The same JSON is the order's current state in Redis under `order_status:<order_id>`.
    """

    order_id: UUID
    user_id: Text
    status: OrderStatus
    version: int = Field(ge=1)
    reason: FailureReason | None = None
    detail: Text | None = None
    price: PriceBreakdown | None = None
    created_at: datetime
    updated_at: datetime = Field(default_factory=utcnow)
    delivery_address: DeliveryAddress | None = None
    # When the order was published on `validated_orders` (the Kafka message's timestamp), so
    # that a latency counts the time the order queued in Kafka before the saga read it.
    # Optional: events written before it existed, and orders whose message had no timestamp.
    published_at: datetime | None = None
    # The restaurant's plan, from RESTAURANT_ACCEPTED on (None before, and for the seed's
    # orders, which no kitchen sees).
    kitchen: KitchenPlan | None = None


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
    """A message that could not be handled, with why, where it came from and when.

    Plain `str` on purpose: a dead letter carries the hostile text it was refused for."""

    source_topic: str
    source_partition: int
    source_offset: int
    error: str
    payload: str
    payload_base64: str | None = None
    order_id: UUID | None = None
    failed_at: datetime = Field(default_factory=utcnow)
    # A payload too large to park whole keeps its first bytes only (so that the letter always
    # fits in a Kafka message); its size and SHA-256 name the original.
    payload_truncated: bool = False
    payload_bytes: int | None = None
    payload_sha256: str | None = None


ALLOWED_TRANSITIONS: dict[OrderStatus | None, frozenset[OrderStatus]] = {
    # An order is received first. One whose message cannot be read is never received: it fails
    # at its first version (`Order.reject`).
    None: frozenset({OrderStatus.RECEIVED, OrderStatus.FAILED}),
    OrderStatus.RECEIVED: frozenset(
        {OrderStatus.PROCESSING, OrderStatus.FAILED, OrderStatus.CANCELLED}
    ),
    OrderStatus.PROCESSING: frozenset(
        {OrderStatus.CONFIRMED, OrderStatus.FAILED, OrderStatus.CANCELLED}
    ),
    # From CONFIRMED on the restaurant service moves the kitchen's steps, the delivery service
    # the courier's. The courier is sent so as to reach the restaurant when the food is ready,
    # so COURIER_ASSIGNED comes before, between or after the kitchen's steps; PREPARING may be
    # entered again (the kitchen reports a delay: a new ready-by time). A rejected order is
    # refunded and its stock returned, then CANCELLED (by the delivery service, which does
    # every cancellation).
    OrderStatus.CONFIRMED: frozenset(
        {OrderStatus.RESTAURANT_ACCEPTED, OrderStatus.RESTAURANT_REJECTED, OrderStatus.CANCELLED}
    ),
    OrderStatus.RESTAURANT_REJECTED: frozenset({OrderStatus.CANCELLED}),
    OrderStatus.RESTAURANT_ACCEPTED: frozenset(
        {OrderStatus.PREPARING, OrderStatus.COURIER_ASSIGNED, OrderStatus.CANCELLED}
    ),
    OrderStatus.PREPARING: frozenset(
        {
            OrderStatus.PREPARING,
            OrderStatus.READY_FOR_PICKUP,
            OrderStatus.COURIER_ASSIGNED,
            OrderStatus.CANCELLED,
        }
    ),
    OrderStatus.COURIER_ASSIGNED: frozenset(
        {
            OrderStatus.PREPARING,
            OrderStatus.READY_FOR_PICKUP,
            OrderStatus.PICKED_UP,
            OrderStatus.CANCELLED,
        }
    ),
    OrderStatus.READY_FOR_PICKUP: frozenset(
        {OrderStatus.COURIER_ASSIGNED, OrderStatus.PICKED_UP, OrderStatus.CANCELLED}
    ),
    OrderStatus.PICKED_UP: frozenset({OrderStatus.DELIVERED}),
    OrderStatus.DELIVERED: frozenset(),
    OrderStatus.FAILED: frozenset(),
    OrderStatus.CANCELLED: frozenset(),
}
# Where the saga hands a paid order over to the delivery service.
HANDOVER = OrderStatus.CONFIRMED
# The customer API's status of an order the gateway has published and the order manager has
# not received yet. It comes before the lifecycle (no event carries it): not an OrderStatus.
NOT_YET_RECEIVED = "ACCEPTED"


def _leading_to(target: OrderStatus) -> frozenset[OrderStatus]:
    """The statuses from which `target` can be reached in one or more transitions."""
    found: set[OrderStatus] = set()
    frontier = {target}
    while frontier:
        frontier = {s for s in OrderStatus if ALLOWED_TRANSITIONS[s] & frontier} - found
        found |= frontier
    return frozenset(found)


_IN_SAGA = _leading_to(HANDOVER)
_LEFT_SAGA = frozenset(OrderStatus) - _IN_SAGA
_ENDS_SAGA = frozenset().union(*(ALLOWED_TRANSITIONS[s] for s in _IN_SAGA)) - _IN_SAGA
_TERMINAL = frozenset(s for s in OrderStatus if not ALLOWED_TRANSITIONS[s])
_ABORTED = _ENDS_SAGA & _TERMINAL
_CANCELLABLE = frozenset(s for s in OrderStatus if OrderStatus.CANCELLED in ALLOWED_TRANSITIONS[s])
# Every transition lands in `order_status_history`: each status after the saga is written as
# it happens (one more write per delivery step, version-guarded), the saga's with its end.
_PERSISTED = _LEFT_SAGA
OrderStatus.IN_SAGA = _IN_SAGA
OrderStatus.LEFT_SAGA = _LEFT_SAGA
OrderStatus.ENDS_SAGA = _ENDS_SAGA
OrderStatus.TERMINAL = _TERMINAL
OrderStatus.ABORTED = _ABORTED
OrderStatus.CANCELLABLE = _CANCELLABLE
OrderStatus.PERSISTED = _PERSISTED


def order_status_key(order_id: UUID | str) -> str:
    return f"order_status:{order_id}"
