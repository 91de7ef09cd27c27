"""Use cases of the gateway: accounts, placing and following orders, the dashboard's views.

Each use case takes the ports it needs (Protocols below) and returns an API body or raises a
`GatewayError`; `gateway.app` maps those to status codes in one table. The adapters are
`repository.GatewayRepository` (users, customer_orders), `adapters` (order state in Redis and
PostgreSQL, the delivery and restaurant services, Kafka, the throttles in Redis),
`security.Passwords` and the inventory client.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

import orjson
from pydantic import ValidationError

from foodflow.contracts import topics
from foodflow.contracts.delivery import CourierAssignment, CourierView
from foodflow.contracts.inventory import MenuItem
from foodflow.contracts.orders import (
    NOT_YET_RECEIVED,
    FailureReason,
    OrderItemIn,
    OrderSnapshot,
    OrderStatus,
    OrderStatusUpdate,
    PricedItem,
    ValidatedOrder,
)
from foodflow.contracts.restaurant import (
    MenuEntry,
    OpeningChange,
    OrderCheckResult,
    RejectReason,
    RestaurantView,
    Tickets,
    TicketState,
    TicketView,
)
from foodflow.gateway.board import Board, merge_history
from foodflow.gateway.schemas import (
    CourierAccountCreate,
    CourierBoard,
    Menu,
    MenuRestaurant,
    OrderAccepted,
    OrderCreate,
    OrderPage,
    OrderPublic,
    OrderTimeline,
    RestaurantAccountCreate,
    SignUpAccepted,
    StockLevel,
    StockReport,
    StoredOrder,
    TestOrderAccepted,
    TestOrderRequest,
    Token,
    UserCreate,
    UserPublic,
    public_detail,
)
from foodflow.gateway.security import Principal, Role, issue_token
from foodflow.orders.records import OrderRecord
from foodflow.platform.config import Settings
from foodflow.platform.errors import FoodflowError

log = logging.getLogger(__name__)

DEMO_OPERATOR_EMAIL = "operator@foodflow.local"
# Places the dashboard's test orders; nobody logs in as it (its password is random, unknown).
DEMO_CUSTOMER_EMAIL = "demo-customer@foodflow.local"
CANCEL_WAIT_SECONDS = 5.0
CANCEL_POLL_SECONDS = 0.1
LOW_STOCK_THRESHOLD = 20


# --- errors -----------------------------------------------------------------------------------


class GatewayError(FoodflowError):
    """A refusal the client reads: `detail` becomes the body's `detail`."""

    def __init__(self, detail: Any, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail if isinstance(detail, str) else repr(detail))
        self.detail = detail
        self.headers = dict(headers or {})


class NotFound(GatewayError):
    pass


class Conflict(GatewayError):
    pass


class Invalid(GatewayError):
    pass


class Forbidden(GatewayError):
    pass


class WrongCredentials(GatewayError):
    pass


class TooManyAttempts(GatewayError):
    pass


class RestaurantClosed(Conflict):
    """The restaurant that would cook the order is not open now: refused before payment."""


class ItemUnavailable(Conflict):
    """The restaurant marked an item of the order unavailable: refused before payment."""


class DeliveryUnavailable(GatewayError):
    pass


class RestaurantUnavailable(GatewayError):
    pass


class Relayed(GatewayError):
    """A service behind the gateway refused (4xx) what the caller asked: its status and
    detail are relayed as they are."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


class DeliveryRefused(Relayed):
    """The delivery service refused a step."""


class RestaurantRefused(Relayed):
    """The restaurant service refused a staff step (no such ticket of this restaurant: 404; a
    step out of turn: 409)."""


# --- ports ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    user_id: UUID
    email: str
    name: str
    role: Role
    # A courier account's courier (the delivery service's id); None for every other role.
    courier_id: str | None = None
    # A restaurant staff account's restaurant (the restaurant service's id); None otherwise.
    restaurant_id: str | None = None


@dataclass(frozen=True)
class PlacedOrder:
    """An order as the gateway took it: who placed it, with which request."""

    order_id: UUID
    user_id: UUID
    request_hash: str
    request: ValidatedOrder
    created_at: datetime


class Accounts(Protocol):
    async def add_user(self, account: Account, password_hash: str) -> bool: ...
    async def put_user(self, account: Account, password_hash: str) -> Account:
        """Create, or reset the account with this email to this one (keeping its user id)."""
        ...

    async def user(self, user_id: UUID) -> Account | None: ...
    async def user_by_email(self, email: str) -> tuple[Account, str] | None: ...


class PlacedOrders(Protocol):
    async def add_order(
        self, order: ValidatedOrder, user_id: UUID, idempotency_key: str | None, request_hash: str
    ) -> bool: ...
    async def order_by_key(
        self, user_id: UUID, idempotency_key: str | None
    ) -> PlacedOrder | None: ...
    async def order(self, order_id: UUID) -> PlacedOrder | None: ...
    async def count_orders(self, user_id: UUID) -> int: ...
    async def orders(self, user_id: UUID, limit: int, offset: int) -> list[PlacedOrder]: ...


class Throttle(Protocol):
    """Attempts counted per account and per client address; each answer is None (go on) or
    the seconds to wait before trying again."""

    async def login(self, email: str, address: str) -> int | None: ...
    async def login_succeeded(self, email: str) -> None: ...
    async def sign_up(self, address: str) -> int | None: ...


class PasswordHashing(Protocol):
    async def hash(self, password: str) -> str: ...
    async def verify(self, password_hash: str | None, password: str) -> bool:
        """False for a wrong password, and for no hash at all, as slowly as for a right one."""
        ...

    async def weakness(self, password: str, user_inputs: Sequence[str]) -> str | None:
        """Why the password is too easy to guess; None when it is not."""
        ...


class OrderViews(Protocol):
    """An order's state: live (Redis) while in flight, stored (PostgreSQL) once written."""

    async def snapshot(self, order_id: UUID) -> OrderSnapshot | None: ...
    async def status(self, order_id: UUID) -> OrderStatusUpdate | None: ...
    async def is_live(self, order_id: UUID) -> bool: ...
    async def record(self, order_id: UUID) -> OrderRecord | None: ...


class Catalogue(Protocol):
    async def menu(self) -> list[MenuItem]: ...


class Deliveries(Protocol):
    async def cancel(self, order_id: UUID) -> None: ...
    async def arrive(self, order_id: UUID, courier_id: str | None) -> None:
        """Report the courier at the restaurant, as `courier_id` (or as staff, as for pick_up)."""
        ...

    async def pick_up(self, order_id: UUID, courier_id: str | None) -> None:
        """Report the pickup as `courier_id` (refused unless it carries the order), or as staff
        when None."""
        ...

    async def deliver(self, order_id: UUID, courier_id: str | None) -> None: ...
    async def couriers(self) -> list[CourierView]:
        """`DeliveryUnavailable` when the delivery service does not answer well."""
        ...

    async def assignment(self, courier_id: str) -> CourierAssignment:
        """The courier and the delivery they carry; `DeliveryUnavailable` as for `couriers`."""
        ...


class Kitchens(Protocol):
    """The restaurant service. What the caller should hear of a refusal (404: no such ticket of
    this restaurant, 409: a step out of turn, 422) is `RestaurantRefused`; no answer, or one
    that is ours to mend, is `RestaurantUnavailable`."""

    async def restaurants(self) -> list[RestaurantView]: ...
    async def restaurant(self, restaurant_id: str) -> RestaurantView: ...
    async def check_order(self, item_ids: list[str]) -> OrderCheckResult:
        """Which restaurant would cook these items, whether it is open, what it lacks."""
        ...

    async def tickets(self, restaurant_id: str, state: TicketState | None) -> list[TicketView]: ...
    async def ticket(self, restaurant_id: str, order_id: UUID) -> TicketView: ...
    async def accept(self, restaurant_id: str, order_id: UUID, minutes: float) -> TicketView: ...
    async def prepare(self, restaurant_id: str, order_id: UUID) -> TicketView: ...
    async def delay(self, restaurant_id: str, order_id: UUID, minutes: float) -> TicketView: ...
    async def ready(self, restaurant_id: str, order_id: UUID) -> TicketView: ...
    async def reject(
        self, restaurant_id: str, order_id: UUID, reason: RejectReason, detail: str | None
    ) -> TicketView: ...
    async def set_availability(
        self, restaurant_id: str, item_id: str, available: bool
    ) -> MenuEntry: ...
    async def set_opening(self, restaurant_id: str, change: OpeningChange) -> RestaurantView: ...


class OrderPublisher(Protocol):
    async def publish(self, topic: str, order: ValidatedOrder) -> None: ...


# --- accounts ---------------------------------------------------------------------------------


def _public(account: Account) -> UserPublic:
    return UserPublic(
        user_id=account.user_id,
        email=account.email,
        name=account.name,
        role=account.role,
        courier_id=account.courier_id,
        restaurant_id=account.restaurant_id,
    )


SIGNED_UP = "if this email was not registered yet, its account is created: log in with it"


async def sign_up(
    accounts: Accounts,
    passwords: PasswordHashing,
    throttle: Throttle,
    body: UserCreate,
    role: Role,
    address: str,
) -> SignUpAccepted:
    """Store a new user unless the email (case-insensitive) is taken; the answer and its time
    are the same either way, so that sign-up does not tell which emails have accounts."""
    wait = await throttle.sign_up(address)
    if wait is not None:
        raise TooManyAttempts(
            "too many sign-ups from this address; try again later",
            headers={"Retry-After": str(wait)},
        )
    email = body.email.lower()
    own_words = (email, email.partition("@")[0], body.name)
    weakness = await passwords.weakness(body.password, own_words)
    if weakness is not None:
        raise Invalid(weakness)
    account = Account(user_id=uuid.uuid4(), email=email, name=body.name, role=role)
    if not await accounts.add_user(account, await passwords.hash(body.password)):
        log.info("Sign-up for a registered email refused silently")
    return SignUpAccepted(detail=SIGNED_UP)


async def me(accounts: Accounts, user: Principal) -> UserPublic:
    account = await accounts.user(user.user_id)
    if account is None:
        raise NotFound("this user no longer exists")
    return _public(account)


async def log_in(
    accounts: Accounts,
    passwords: PasswordHashing,
    throttle: Throttle,
    settings: Settings,
    email: str,
    password: str,
    address: str,
) -> Token:
    """A bearer token for a right email and password; a few attempts per minute per account
    and per address at most. An unknown email takes as long as a wrong password."""
    email = email.lower()
    wait = await throttle.login(email, address)
    if wait is not None:
        raise TooManyAttempts(
            "too many login attempts; try again later", headers={"Retry-After": str(wait)}
        )
    found = await accounts.user_by_email(email)
    account, password_hash = found if found is not None else (None, None)
    if not await passwords.verify(password_hash, password) or account is None:
        raise WrongCredentials("wrong email or password")
    await throttle.login_succeeded(email)
    token = issue_token(Principal(account.user_id, account.role), settings)
    return Token(
        access_token=token, expires_in=settings.access_token_ttl_seconds, user=_public(account)
    )


async def create_courier_account(
    accounts: Accounts,
    passwords: PasswordHashing,
    deliveries: Deliveries,
    body: CourierAccountCreate,
) -> UserPublic:
    """A courier account bound to one of the delivery service's couriers (Invalid if unknown).

    Operators create these, so a taken email is a plain Conflict: no account is probed here,
    and it is said before any password is hashed (seeding the demo couriers at every start asks
    for accounts that mostly exist).
    """
    if body.courier_id not in {c.courier_id for c in await deliveries.couriers()}:
        raise Invalid(f"no courier {body.courier_id}")
    email = body.email.lower()
    if await accounts.user_by_email(email) is not None:
        raise Conflict(EMAIL_TAKEN)
    weakness = await passwords.weakness(body.password, (email, email.partition("@")[0], body.name))
    if weakness is not None:
        raise Invalid(weakness)
    account = Account(uuid.uuid4(), email, body.name, Role.COURIER, body.courier_id)
    if not await accounts.add_user(account, await passwords.hash(body.password)):
        raise Conflict(EMAIL_TAKEN)  # taken meanwhile
    return _public(account)


EMAIL_TAKEN = "a user with this email exists already"


async def my_delivery(
    accounts: Accounts, deliveries: Deliveries, user: Principal
) -> CourierAssignment:
    """Courier: where I am and the delivery I carry now, with its pickup and drop-off points."""
    if user.role is not Role.COURIER:
        raise Forbidden("only couriers carry deliveries")
    account = await accounts.user(user.user_id)
    if account is None or account.courier_id is None:
        raise Forbidden("this courier account is not bound to a courier")
    return await deliveries.assignment(account.courier_id)


async def create_restaurant_account(
    accounts: Accounts,
    passwords: PasswordHashing,
    kitchens: Kitchens,
    body: RestaurantAccountCreate,
) -> UserPublic:
    """A restaurant staff account bound to one of the restaurant service's restaurants
    (Invalid if unknown); a taken email is a Conflict, said before any hashing, as for
    couriers' accounts."""
    if body.restaurant_id not in {r.restaurant_id for r in await kitchens.restaurants()}:
        raise Invalid(f"no restaurant {body.restaurant_id}")
    email = body.email.lower()
    if await accounts.user_by_email(email) is not None:
        raise Conflict(EMAIL_TAKEN)
    weakness = await passwords.weakness(body.password, (email, email.partition("@")[0], body.name))
    if weakness is not None:
        raise Invalid(weakness)
    account = Account(
        uuid.uuid4(), email, body.name, Role.RESTAURANT, restaurant_id=body.restaurant_id
    )
    if not await accounts.add_user(account, await passwords.hash(body.password)):
        raise Conflict(EMAIL_TAKEN)  # taken meanwhile
    return _public(account)


# --- restaurant staff -------------------------------------------------------------------------


async def staff_restaurant(accounts: Accounts, user: Principal) -> str:
    """The restaurant a staff account works for: every staff route acts on it alone (the
    restaurant service answers 404 for another restaurant's order). Operators and admins are
    no restaurant's staff."""
    if user.role is not Role.RESTAURANT:
        raise Forbidden("only restaurant staff answer and cook orders")
    account = await accounts.user(user.user_id)
    if account is None or account.restaurant_id is None:
        raise Forbidden("this restaurant account is not bound to a restaurant")
    return account.restaurant_id


async def my_restaurant(accounts: Accounts, kitchens: Kitchens, user: Principal) -> RestaurantView:
    return await kitchens.restaurant(await staff_restaurant(accounts, user))


async def restaurant_orders(
    accounts: Accounts, kitchens: Kitchens, user: Principal, state: TicketState | None
) -> Tickets:
    """My restaurant's orders (their tickets) in `state`; without, the open ones (pending,
    accepted, preparing, ready: not yet picked up, rejected or cancelled)."""
    restaurant_id = await staff_restaurant(accounts, user)
    return Tickets(tickets=await kitchens.tickets(restaurant_id, state))


async def restaurant_order(
    accounts: Accounts, kitchens: Kitchens, user: Principal, order_id: UUID
) -> TicketView:
    return await kitchens.ticket(await staff_restaurant(accounts, user), order_id)


async def accept_order(
    accounts: Accounts, kitchens: Kitchens, user: Principal, order_id: UUID, minutes: float
) -> TicketView:
    """Accept the order, to be ready in `minutes`: the order goes RESTAURANT_ACCEPTED."""
    return await kitchens.accept(await staff_restaurant(accounts, user), order_id, minutes)


async def prepare_order(
    accounts: Accounts, kitchens: Kitchens, user: Principal, order_id: UUID
) -> TicketView:
    return await kitchens.prepare(await staff_restaurant(accounts, user), order_id)


async def delay_order(
    accounts: Accounts, kitchens: Kitchens, user: Principal, order_id: UUID, minutes: float
) -> TicketView:
    return await kitchens.delay(await staff_restaurant(accounts, user), order_id, minutes)


async def ready_order(
    accounts: Accounts, kitchens: Kitchens, user: Principal, order_id: UUID
) -> TicketView:
    return await kitchens.ready(await staff_restaurant(accounts, user), order_id)


async def reject_order(
    accounts: Accounts,
    kitchens: Kitchens,
    user: Principal,
    order_id: UUID,
    reason: RejectReason,
    detail: str | None,
) -> TicketView:
    restaurant_id = await staff_restaurant(accounts, user)
    return await kitchens.reject(restaurant_id, order_id, reason, detail)


async def set_item_availability(
    accounts: Accounts, kitchens: Kitchens, user: Principal, item_id: str, available: bool
) -> MenuEntry:
    restaurant_id = await staff_restaurant(accounts, user)
    return await kitchens.set_availability(restaurant_id, item_id, available)


async def set_opening(
    accounts: Accounts, kitchens: Kitchens, user: Principal, change: OpeningChange
) -> RestaurantView:
    return await kitchens.set_opening(await staff_restaurant(accounts, user), change)


async def ensure_demo_accounts(
    accounts: Accounts, passwords: PasswordHashing, operator_password: str | None
) -> UUID:
    """Create (or reset) the demo customer, and the demo operator when it has a password; the
    demo customer's user id. Safe at every start, from several gateways at once."""
    # Reset at every start: whoever signed up with these emails first neither keeps the
    # account nor learns its password. Both hashes at once: each takes about half a second.
    chosen = [secrets.token_urlsafe(32)] + ([operator_password] if operator_password else [])
    hashes = await asyncio.gather(*(passwords.hash(p) for p in chosen))
    customer = Account(uuid.uuid4(), DEMO_CUSTOMER_EMAIL, "Dashboard test orders", Role.CUSTOMER)
    stored = await accounts.put_user(customer, hashes[0])
    if operator_password is None:
        log.info("DEMO_OPERATOR_PASSWORD is not set: no demo operator")
    else:
        operator = Account(uuid.uuid4(), DEMO_OPERATOR_EMAIL, "Demo operator", Role.OPERATOR)
        await accounts.put_user(operator, hashes[1])
        log.info("Demo operator %s ready", DEMO_OPERATOR_EMAIL)
    return stored.user_id


# --- orders -----------------------------------------------------------------------------------


def request_hash(body: OrderCreate) -> str:
    """What makes two requests under one Idempotency-Key the same order (prices sent ignored)."""
    canonical = body.model_dump(mode="json", exclude={"items": {"__all__": {"price"}}})
    return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()


NOTHING_CHARGED = "nothing was ordered or charged"


def kitchen_refusal(check: OrderCheckResult) -> Conflict | None:
    """Why the restaurant cannot take the order now, as the customer reads it; None if it can."""
    closed = check.refusal == FailureReason.RESTAURANT_CLOSED or not check.open_now
    if closed:
        return RestaurantClosed(
            f"the restaurant {check.restaurant_name} is closed now; {NOTHING_CHARGED}"
        )
    if check.refusal == FailureReason.ITEM_UNAVAILABLE or check.unavailable:
        missing = ", ".join(check.unavailable) or "an item of the order"
        return ItemUnavailable(
            f"not available at {check.restaurant_name} right now: {missing}; {NOTHING_CHARGED}"
        )
    return None


def _accepted(order_id: UUID, state: str) -> OrderAccepted:
    return OrderAccepted(order_id=order_id, status=state, status_url=f"/orders/{order_id}")


async def place_order(
    placed: PlacedOrders,
    catalogue: Catalogue,
    kitchens: Kitchens,
    views: OrderViews,
    publisher: OrderPublisher,
    user: Principal,
    body: OrderCreate,
    idempotency_key: str | None,
) -> OrderAccepted:
    """Publish an order at catalogue prices; the same key and body give the same order. An
    order the restaurant cannot take now (closed, an item it marked unavailable) is refused
    here, before anything is published or charged."""
    ids = [line.item_id for line in body.items]
    if len(ids) != len(set(ids)):
        raise Invalid("each item_id may appear only once per order")
    # A retry of an order placed already is answered as the first try was, not refused
    # because the restaurant closed since: the order stands, and is charged.
    replay = idempotency_key is not None and (
        await placed.order_by_key(user.user_id, idempotency_key) is not None
    )
    if not replay:
        refusal = kitchen_refusal(await kitchens.check_order(ids))
        if refusal is not None:
            raise refusal
    known = {item.item_id for item in await catalogue.menu()}
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise Invalid(f"not on the menu: {', '.join(unknown)}")
    digest = request_hash(body)
    order = ValidatedOrder(
        order_id=uuid.uuid4(),
        user_id=str(user.user_id),
        items=[OrderItemIn(item_id=line.item_id, quantity=line.quantity) for line in body.items],
        promo_code=body.promo_code,
        payment_token=body.payment_token,
        delivery_address=body.delivery_address,
    )
    if not await placed.add_order(order, user.user_id, idempotency_key, digest):
        previous = await placed.order_by_key(user.user_id, idempotency_key)
        assert previous is not None  # the insert conflicted on this very key
        if previous.request_hash != digest:
            raise Invalid("this Idempotency-Key was used for a different order; use a new key")
        order = previous.request
        if await views.is_live(previous.order_id):
            return _accepted(previous.order_id, "ALREADY_PLACED")
        # Placed but perhaps never published (a crash in between): publishing again is safe,
        # the order manager drives one order id once.
    assert order.order_id is not None
    await publisher.publish(topics.VALIDATED_ORDERS, order)
    log.info("Order %s placed by %s", order.order_id, user.user_id)
    return _accepted(order.order_id, NOT_YET_RECEIVED)


async def owned_order(placed: PlacedOrders, order_id: UUID, user: Principal) -> PlacedOrder:
    """The order, if this user may see it; NotFound otherwise (ids do not leak)."""
    order = await placed.order(order_id)
    if order is None or (order.user_id != user.user_id and not user.is_admin):
        raise NotFound(f"no order {order_id}")
    return order


async def current_order(views: OrderViews, order: PlacedOrder) -> OrderPublic:
    """The order's state as its customer sees it (`public_detail`)."""
    current = await _current_state(views, order)
    detail = public_detail(
        current.status,
        current.reason,
        current.detail,
        (line.item_id for line in order.request.items),
    )
    return current.model_copy(update={"detail": detail})


async def _current_state(views: OrderViews, order: PlacedOrder) -> OrderPublic:
    """The order's state: live from Redis, else as stored, else as accepted (not yet taken in)."""
    order_id = order.order_id
    snapshot = await views.snapshot(order_id)
    if snapshot is not None:
        return OrderPublic(
            **snapshot.model_dump(exclude={"history", "version"}), timeline=snapshot.history
        )
    record = await views.record(order_id)
    request = order.request
    if record is None:
        return OrderPublic(
            order_id=order_id,
            user_id=request.user_id,
            status=NOT_YET_RECEIVED,
            items=[PricedItem(item_id=i.item_id, quantity=i.quantity) for i in request.items],
            delivery_address=request.delivery_address,
            created_at=order.created_at,
        )
    return OrderPublic(
        order_id=order_id,
        user_id=record.user_id,
        status=record.status,
        reason=record.reason,
        detail=record.detail,
        price=record.price,
        items=record.items,
        timeline=record.history,
        delivery_address=request.delivery_address,
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


async def read_order(
    placed: PlacedOrders, views: OrderViews, order_id: UUID, user: Principal
) -> OrderPublic:
    return await current_order(views, await owned_order(placed, order_id, user))


async def list_orders(
    placed: PlacedOrders, views: OrderViews, user: Principal, limit: int, offset: int
) -> OrderPage:
    total = await placed.count_orders(user.user_id)
    page = await placed.orders(user.user_id, limit, offset)
    items = [await current_order(views, order) for order in page]
    return OrderPage(items=items, total=total, limit=limit, offset=offset)


async def cancel_order(
    placed: PlacedOrders,
    views: OrderViews,
    deliveries: Deliveries,
    order_id: UUID,
    user: Principal,
    *,
    wait_seconds: float = CANCEL_WAIT_SECONDS,
) -> OrderPublic:
    """Cancel before pickup (the delivery service refunds and releases); Conflict afterwards."""
    order = await owned_order(placed, order_id, user)
    deadline = time.monotonic() + wait_seconds
    current = await current_order(views, order)
    # Payment takes a moment: wait for the order to leave the saga, then cancel.
    while _still_processing(current.status) and time.monotonic() < deadline:
        await asyncio.sleep(CANCEL_POLL_SECONDS)
        current = await current_order(views, order)
    if _still_processing(current.status):
        raise Conflict("the order is still being processed; try again in a moment")
    state = OrderStatus(current.status)
    if state.aborted:
        raise Conflict(f"the order is {state.lower()} already")
    if state is OrderStatus.RESTAURANT_REJECTED:
        raise Conflict("the restaurant rejected the order; it is being cancelled and refunded")
    if not state.cancellable:
        raise Conflict(
            f"the order is {state.replace('_', ' ').lower()}; it can no longer be cancelled"
        )
    await deliveries.cancel(order_id)
    return await current_order(views, order)


def _still_processing(status: str) -> bool:
    """Published but not yet received, or still in the saga: too early to cancel."""
    return status == NOT_YET_RECEIVED or OrderStatus(status).in_saga


async def _reporting_courier(accounts: Accounts, user: Principal) -> str | None:
    """Whom a delivery step is reported as: a courier account's own courier (the delivery
    service refuses it for another courier's delivery); None for staff, who may report any."""
    if user.is_staff:
        return None
    if user.role is not Role.COURIER:
        raise Forbidden("only couriers report delivery steps")
    account = await accounts.user(user.user_id)
    if account is None or account.courier_id is None:
        raise Forbidden("this courier account is not bound to a courier")
    return account.courier_id


async def _after_step(
    placed: PlacedOrders, views: OrderViews, order_id: UUID, user: Principal
) -> OrderPublic:
    # A courier sees the order they carry, whoever placed it.
    courier = Principal(user.user_id, Role.ADMIN)
    return await current_order(views, await owned_order(placed, order_id, courier))


async def arrive(
    accounts: Accounts,
    placed: PlacedOrders,
    views: OrderViews,
    deliveries: Deliveries,
    order_id: UUID,
    user: Principal,
) -> OrderPublic:
    """Courier: I am at the restaurant (the order's status does not change)."""
    await deliveries.arrive(order_id, await _reporting_courier(accounts, user))
    return await _after_step(placed, views, order_id, user)


async def pick_up(
    accounts: Accounts,
    placed: PlacedOrders,
    views: OrderViews,
    deliveries: Deliveries,
    order_id: UUID,
    user: Principal,
) -> OrderPublic:
    """Courier: the food is picked up at the restaurant."""
    await deliveries.pick_up(order_id, await _reporting_courier(accounts, user))
    return await _after_step(placed, views, order_id, user)


async def deliver(
    accounts: Accounts,
    placed: PlacedOrders,
    views: OrderViews,
    deliveries: Deliveries,
    order_id: UUID,
    user: Principal,
) -> OrderPublic:
    """Courier: the food is handed to the customer."""
    await deliveries.deliver(order_id, await _reporting_courier(accounts, user))
    return await _after_step(placed, views, order_id, user)


# --- dashboard and menu -----------------------------------------------------------------------


async def order_timeline(views: OrderViews, board: Board, order_id: UUID) -> OrderTimeline:
    """Live status, stored row and history of one order; the board's history if not stored."""
    current = await views.status(order_id)
    record = await views.record(order_id)
    card = board.get(order_id)
    if current is None and record is None and card is None:
        raise NotFound(f"no order {order_id}")
    # Every transition either side knows: PostgreSQL keeps the persisted ones, the board
    # those it saw go by (the delivery steps that are status events only, say).
    history = merge_history(
        record.history if record is not None else [],
        card.history if card is not None else [],
        current.history if isinstance(current, OrderSnapshot) else [],
    )
    stored = (
        StoredOrder(
            status=record.status,
            reason=record.reason,
            detail=record.detail,
            version=record.version,
            total=record.total,
            currency=record.currency,
            created_at=record.created_at,
            updated_at=record.updated_at,
        )
        if record is not None
        else None
    )
    return OrderTimeline(
        order_id=order_id,
        current=current,
        stored=stored,
        items=record.items if record is not None else [],
        history=history,
        customer=card.customer if card is not None else None,
    )


async def menu(catalogue: Catalogue, kitchens: Kitchens) -> Menu:
    """Every listed item, and the same items by restaurant with its opening. Without the
    restaurant service the items are still listed (ordering then waits for it)."""
    items = await catalogue.menu()
    try:
        restaurants = await kitchens.restaurants()
    except RestaurantUnavailable as exc:
        log.warning("Restaurants unavailable for the menu: %s", exc)
        restaurants = []
    listed = {item.item_id: item for item in items}
    return Menu(
        items=items,
        restaurants=[
            MenuRestaurant(
                restaurant_id=r.restaurant_id,
                name=r.name,
                open_now=r.open_now,
                accepting=r.accepting,
                opens_at=r.opens_at,
                closes_at=r.closes_at,
                timezone=r.timezone,
                items=[
                    listed[entry.item_id]
                    for entry in r.items
                    if entry.available and entry.item_id in listed
                ],
            )
            for r in restaurants
        ],
    )


async def stock_report(catalogue: Catalogue) -> StockReport:
    """Stock per menu item, each flagged `low` below the threshold."""
    return StockReport(
        threshold=LOW_STOCK_THRESHOLD,
        items=[
            StockLevel(
                item_id=item.item_id,
                name=item.name,
                stock=item.stock,
                low=item.stock < LOW_STOCK_THRESHOLD,
            )
            for item in await catalogue.menu()
        ],
    )


async def courier_board(deliveries: Deliveries) -> CourierBoard:
    """Couriers, free or carrying an order; says so when the delivery service is unreachable."""
    try:
        couriers = await deliveries.couriers()
    except DeliveryUnavailable as exc:
        log.warning("Couriers unavailable: %s", exc)
        return CourierBoard(delivery_service=False, message="delivery service not reachable")
    busy = sum(1 for c in couriers if c.current_order is not None)
    return CourierBoard(
        delivery_service=True,
        message=f"{len(couriers)} couriers, {busy} on a delivery",
        couriers=couriers,
    )


async def place_test_order(
    placed: PlacedOrders,
    kitchens: Kitchens,
    publisher: OrderPublisher,
    demo_customer: UUID,
    body: TestOrderRequest,
) -> TestOrderAccepted:
    """Publish a test order under a new order id, placed by the demo customer (never anyone
    else: the order is charged and stock taken in its owner's name). A closed restaurant or an
    unavailable item is refused as for a customer; without the restaurant service the order
    goes ahead (it has no address: no kitchen cooks it)."""
    try:
        order = ValidatedOrder(
            order_id=uuid.uuid4(),
            user_id=str(demo_customer),
            items=[
                OrderItemIn(item_id=line.item_id, quantity=line.quantity) for line in body.items
            ],
            promo_code=body.promo_code or None,
        )
    except ValidationError as exc:
        raise Invalid([{"msg": e["msg"], "loc": e["loc"]} for e in exc.errors()]) from None
    assert order.order_id is not None
    try:
        refusal = kitchen_refusal(await kitchens.check_order([i.item_id for i in order.items]))
    except RestaurantUnavailable as exc:
        log.warning("Test order %s placed unchecked: %s", order.order_id, exc)
        refusal = None
    if refusal is not None:
        raise refusal
    digest = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
    await placed.add_order(order, demo_customer, None, digest)
    await publisher.publish(topics.VALIDATED_ORDERS, order)
    log.info("Dashboard test order %s published for the demo customer", order.order_id)
    return TestOrderAccepted(
        order_id=order.order_id, topic=topics.VALIDATED_ORDERS, user_id=order.user_id
    )
