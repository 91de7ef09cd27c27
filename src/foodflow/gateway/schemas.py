"""Bodies of the gateway's public API, one family per resource (users, orders, menu,
dashboard)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from foodflow.contracts.delivery import CourierView
from foodflow.contracts.inventory import ItemId, MenuItem
from foodflow.contracts.orders import (
    MAX_ITEMS_PER_ORDER,
    MAX_QUANTITY,
    DeliveryAddress,
    FailureReason,
    KitchenPlan,
    OrderStatus,
    OrderStatusUpdate,
    PricedItem,
    StatusChange,
)
from foodflow.contracts.pricing import PriceBreakdown, PromoCode
from foodflow.contracts.restaurant import LocalTime, RestaurantId
from foodflow.contracts.text import Text
from foodflow.gateway.board import BoardStats, OrderCard
from foodflow.gateway.ops import OpsReport
from foodflow.gateway.security import MIN_PASSWORD_LENGTH, Role

# --- users ------------------------------------------------------------------------------------

# A new account's address, checked by `email-validator` through pydantic (syntax and a
# deliverable domain, no DNS lookup), normalised (the domain lower-cased); RFC 5321 caps an
# address at 254 characters. A refusal says what is wrong with the address, never a pattern.
Email = Annotated[EmailStr, Field(max_length=254)]
# At log-in only looked up: whatever was typed is compared with the accounts' addresses (the
# demo accounts' `.local` domain is one `email-validator` refuses for new addresses).
LoginEmail = Annotated[Text, Field(min_length=1, max_length=254)]


class UserCreate(BaseModel):
    """A customer's sign-up: no role, no courier (a body naming either is refused)."""

    model_config = ConfigDict(extra="forbid")

    email: Email
    name: Text = Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f]+$")
    # Length alone; common and guessable passwords are refused by the sign-up (`security`).
    password: Text = Field(min_length=MIN_PASSWORD_LENGTH, max_length=200)


class CourierAccountCreate(UserCreate):
    """A courier's account, bound to a courier of the delivery service (`GET /couriers`)."""

    courier_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")


class RestaurantAccountCreate(UserCreate):
    """A restaurant staff account, bound to a restaurant of the restaurant service."""

    restaurant_id: RestaurantId


class UserPublic(BaseModel):
    user_id: uuid.UUID
    email: str
    name: str
    role: Role
    courier_id: str | None = None
    restaurant_id: str | None = None


class SignUpAccepted(BaseModel):
    """The same answer whether the email was free or not (no account enumeration)."""

    detail: str


class Login(BaseModel):
    email: LoginEmail
    password: Text = Field(min_length=1, max_length=200)


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    user: UserPublic


# --- orders -----------------------------------------------------------------------------------


class OrderLineIn(BaseModel):
    item_id: ItemId
    quantity: int = Field(ge=1, le=MAX_QUANTITY)
    price: Any = Field(default=None, description="Ignored: prices come from the catalogue.")


class OrderCreate(BaseModel):
    items: list[OrderLineIn] = Field(min_length=1, max_length=MAX_ITEMS_PER_ORDER)
    delivery_address: DeliveryAddress
    promo_code: PromoCode | None = None
    payment_token: str | None = Field(
        default=None,
        max_length=64,
        pattern=r"^[A-Za-z0-9_]+$",
        description="Test card: tok_visa, tok_declined, tok_insufficient_funds, tok_timeout",
    )


class OrderAccepted(BaseModel):
    order_id: uuid.UUID
    status: str
    status_url: str


class OrderPublic(BaseModel):
    """An order as its customer sees it: `detail` is written for them (`public_detail`)."""

    order_id: uuid.UUID
    user_id: str
    status: str
    reason: str | None = None
    detail: str | None = None
    price: PriceBreakdown | None = None
    items: list[PricedItem] = Field(default_factory=list)
    timeline: list[StatusChange] = Field(default_factory=list)
    delivery_address: DeliveryAddress | None = None
    # The restaurant cooking it, where, and when it says the food is ready (once accepted).
    kitchen: KitchenPlan | None = None
    created_at: datetime
    updated_at: datetime | None = None


# What a customer reads about an order that did not go through: its reason in words written
# for them. The saga's own detail is for operators (the dashboard): it may name a service, a
# host and a port ("payment /authorise_batch: ClientConnectorError Cannot connect to host…").
PUBLIC_REASONS: dict[str, str] = {
    FailureReason.INVALID_ORDER: "the order is not valid",
    FailureReason.UNKNOWN_ITEM: "an item of the order is not on the menu",
    FailureReason.OUT_OF_STOCK: "an item of the order is out of stock",
    FailureReason.INVENTORY_UNAVAILABLE: (
        "the order could not be completed just now; please try again in a moment"
    ),
    FailureReason.PRICING_UNAVAILABLE: (
        "the order could not be priced just now; please try again in a moment"
    ),
    FailureReason.PAYMENT_DECLINED: "the payment was declined",
    FailureReason.PAYMENT_UNAVAILABLE: (
        "the payment could not be processed just now; please try again in a moment"
    ),
    FailureReason.TIMED_OUT: "the order took too long to process; please try again",
    FailureReason.CUSTOMER_CANCELLED: "cancelled at your request; the payment is refunded",
    FailureReason.NO_COURIER: "no courier was free to deliver the order; the payment is refunded",
    FailureReason.RESTAURANT_CLOSED: "the restaurant is closed; the payment is refunded",
    FailureReason.ITEM_UNAVAILABLE: (
        "an item of the order is not available at the restaurant; the payment is refunded"
    ),
    FailureReason.KITCHEN_BUSY: (
        "the restaurant is too busy to take the order; the payment is refunded"
    ),
    FailureReason.RESTAURANT_TIMEOUT: (
        "the restaurant did not answer in time; the payment is refunded"
    ),
}
NOT_COMPLETED = "the order could not be completed"
# Reasons whose saga detail lists item ids ("not enough stock: pho-bo, sushi-set"): those of
# the customer's own order are named back to them.
_NAMES_ITEMS: frozenset[str] = frozenset({FailureReason.UNKNOWN_ITEM, FailureReason.OUT_OF_STOCK})
# Statuses whose detail the delivery service writes for the customer (courier, ETA).
_CUSTOMER_NOTES: frozenset[str] = frozenset(
    {OrderStatus.COURIER_ASSIGNED, OrderStatus.PICKED_UP, OrderStatus.DELIVERED}
)


def public_detail(
    status: str, reason: str | None, detail: str | None, item_ids: Iterable[str]
) -> str | None:
    """The `detail` a customer sees: derived from the reason, never the saga's text."""
    if reason is not None:
        words = PUBLIC_REASONS.get(reason, NOT_COMPLETED)
        if reason in _NAMES_ITEMS and detail and ": " in detail:
            ordered = set(item_ids)
            named = [i for i in detail.split(": ", 1)[1].split(", ") if i in ordered]
            if named:
                words += ": " + ", ".join(named)
        return words
    if status == OrderStatus.FAILED:
        return NOT_COMPLETED
    return detail if status in _CUSTOMER_NOTES else None


class OrderPage(BaseModel):
    items: list[OrderPublic]
    total: int
    limit: int
    offset: int


# --- menu -------------------------------------------------------------------------------------


class MenuRestaurant(BaseModel):
    """A restaurant with its opening and the listed items it cooks. `open_now` is its hours
    and its staff's switch together: an order for a restaurant that is not open is refused."""

    restaurant_id: str
    name: str
    open_now: bool
    accepting: bool
    opens_at: LocalTime
    closes_at: LocalTime  # equal to opens_at: open all day; earlier: open past midnight
    timezone: str
    items: list[MenuItem]


class Menu(BaseModel):
    """`items`: every listed item; `restaurants`: the same items by the restaurant that cooks
    them, with its opening (empty while the restaurant service does not answer)."""

    items: list[MenuItem]
    restaurants: list[MenuRestaurant]


# --- dashboard --------------------------------------------------------------------------------


class StockLevel(BaseModel):
    item_id: str
    name: str
    stock: int
    low: bool


class StockReport(BaseModel):
    threshold: int
    items: list[StockLevel]


class CourierBoard(BaseModel):
    """Couriers and their assignments, as the delivery service reports them."""

    delivery_service: bool
    message: str
    couriers: list[CourierView] = Field(default_factory=list)


class BoardSnapshot(BaseModel):
    orders: list[OrderCard]
    stats: BoardStats
    # The operations figures (lag, dead letters, health) as last measured.
    ops: OpsReport | None = None


class StoredOrder(BaseModel):
    status: str
    reason: str | None
    detail: str | None
    version: int
    total: Decimal | None
    currency: str | None
    created_at: datetime
    updated_at: datetime


class OrderTimeline(BaseModel):
    """One order: its live status (Redis), its final row (PostgreSQL) and every transition."""

    order_id: uuid.UUID
    current: OrderStatusUpdate | None
    stored: StoredOrder | None
    items: list[PricedItem]
    history: list[StatusChange]
    # "Name <email>" of the customer, when the order's user is a registered one.
    customer: str | None = None


class TestOrderLine(BaseModel):
    item_id: ItemId
    quantity: int = Field(ge=1, le=MAX_QUANTITY)


class TestOrderRequest(BaseModel):
    """Placed by the demo customer, always: there is no user to choose."""

    model_config = ConfigDict(extra="forbid")

    items: list[TestOrderLine] = Field(min_length=1)
    promo_code: str | None = Field(default=None, max_length=32)


class TestOrderAccepted(BaseModel):
    order_id: uuid.UUID
    topic: str
    user_id: str = Field(description="The demo customer, who placed it.")
