"""The gateway's use cases over in-memory ports, and how their errors reach the client."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from uuid import UUID, uuid4

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from foodflow.contracts import topics
from foodflow.contracts.delivery import CourierAssignment, CourierView, GeoPoint
from foodflow.contracts.inventory import MenuItem
from foodflow.contracts.orders import (
    DeliveryAddress,
    OrderSnapshot,
    OrderStatus,
    OrderStatusUpdate,
    PricedItem,
    StatusChange,
    ValidatedOrder,
)
from foodflow.contracts.restaurant import (
    MenuEntry,
    OpeningChange,
    OrderCheckResult,
    RejectReason,
    RestaurantView,
    TicketLine,
    TicketState,
    TicketView,
)
from foodflow.gateway import schemas, services
from foodflow.gateway.app import install_gateway_errors
from foodflow.gateway.board import Board
from foodflow.gateway.schemas import (
    OrderAccepted,
    OrderCreate,
    OrderLineIn,
    Token,
    UserCreate,
)
from foodflow.gateway.security import (
    Principal,
    Role,
    password_weakness,
    read_token,
)
from foodflow.gateway.services import Account, PlacedOrder
from foodflow.orders.records import OrderRecord
from foodflow.platform.config import Settings
from foodflow.platform.errors import ServiceUnavailable

SETTINGS = Settings(
    JWT_SIGNING_KEYS={"k1": secrets.token_urlsafe(48)},
    JWT_ACTIVE_KEY_ID="k1",
    LOGIN_ATTEMPTS_PER_MINUTE=3,
)
T0 = datetime(2025, 3, 1, 18, 30, tzinfo=UTC)
ADDRESS = DeliveryAddress(address="Alexanderplatz 1, Berlin", lat=52.52, lon=13.41)


# --- fakes ------------------------------------------------------------------------------------


class FakeRepository:
    """Users and placed orders in dicts (`Accounts` and `PlacedOrders`)."""

    def __init__(self) -> None:
        self.users: dict[UUID, tuple[Account, str]] = {}
        self.placed: dict[UUID, tuple[PlacedOrder, str | None]] = {}

    async def add_user(self, account: Account, password_hash: str) -> bool:
        if any(a.email == account.email for a, _ in self.users.values()):
            return False
        self.users[account.user_id] = (account, password_hash)
        return True

    async def put_user(self, account: Account, password_hash: str) -> Account:
        found = await self.user_by_email(account.email)
        if found is not None:
            account = replace(account, user_id=found[0].user_id)
        self.users[account.user_id] = (account, password_hash)
        return account

    async def user(self, user_id: UUID) -> Account | None:
        found = self.users.get(user_id)
        return found[0] if found else None

    async def user_by_email(self, email: str) -> tuple[Account, str] | None:
        return next((found for found in self.users.values() if found[0].email == email), None)

    async def add_order(
        self, order: ValidatedOrder, user_id: UUID, idempotency_key: str | None, request_hash: str
    ) -> bool:
        if idempotency_key is not None and await self.order_by_key(user_id, idempotency_key):
            return False
        assert order.order_id is not None
        created = T0 + timedelta(seconds=len(self.placed))
        placed = PlacedOrder(order.order_id, user_id, request_hash, order, created)
        self.placed[order.order_id] = (placed, idempotency_key)
        return True

    async def order_by_key(self, user_id: UUID, idempotency_key: str | None) -> PlacedOrder | None:
        return next(
            (
                placed
                for placed, key in self.placed.values()
                if placed.user_id == user_id and key == idempotency_key
            ),
            None,
        )

    async def order(self, order_id: UUID) -> PlacedOrder | None:
        found = self.placed.get(order_id)
        return found[0] if found else None

    async def count_orders(self, user_id: UUID) -> int:
        return sum(1 for placed, _ in self.placed.values() if placed.user_id == user_id)

    async def orders(self, user_id: UUID, limit: int, offset: int) -> list[PlacedOrder]:
        mine = [placed for placed, _ in self.placed.values() if placed.user_id == user_id]
        mine.sort(key=lambda placed: placed.created_at, reverse=True)
        return mine[offset : offset + limit]


class FakeThrottle:
    """Attempts per (rule, key), never forgotten with time; `limit` for every rule."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.counts: dict[tuple[str, str], int] = {}

    def _hit(self, rule: str, key: str) -> int | None:
        if self.counts.get((rule, key), 0) >= self.limit:
            return 42
        self.counts[rule, key] = self.counts.get((rule, key), 0) + 1
        return None

    async def login(self, email: str, address: str) -> int | None:
        return self._hit("address", address) or self._hit("account", email)

    async def login_succeeded(self, email: str) -> None:
        self.counts.pop(("account", email), None)

    async def sign_up(self, address: str) -> int | None:
        return self._hit("sign-up", address)


class FakePasswords:
    """Hashes that are the password reversed; the policy is the real one (no I/O)."""

    def __init__(self) -> None:
        self.verified: list[str | None] = []

    async def hash(self, password: str) -> str:
        return password[::-1]

    async def verify(self, password_hash: str | None, password: str) -> bool:
        self.verified.append(password_hash)
        return password_hash == password[::-1]

    async def weakness(self, password: str, user_inputs: Sequence[str]) -> str | None:
        return password_weakness(password, user_inputs)


class FakeViews:
    """Live snapshots and stored records by order id; each read of a status is counted."""

    def __init__(self) -> None:
        self.snapshots: dict[UUID, OrderSnapshot] = {}
        self.records: dict[UUID, OrderRecord] = {}

    async def snapshot(self, order_id: UUID) -> OrderSnapshot | None:
        return self.snapshots.get(order_id)

    async def status(self, order_id: UUID) -> OrderStatusUpdate | None:
        snapshot = self.snapshots.get(order_id)
        return snapshot.status_update() if snapshot else None

    async def is_live(self, order_id: UUID) -> bool:
        return order_id in self.snapshots

    async def record(self, order_id: UUID) -> OrderRecord | None:
        return self.records.get(order_id)


class FakeCatalogue:
    def __init__(self, stock: dict[str, int]) -> None:
        self.stock = stock

    async def menu(self) -> list[MenuItem]:
        return [
            MenuItem(item_id=i, name=i.title(), price=Decimal("9.00"), stock=s)
            for i, s in sorted(self.stock.items())
        ]


class FakeDeliveries:
    def __init__(self, couriers: list[CourierView] | None = None) -> None:
        self.steps: list[tuple[str, UUID, str | None]] = []
        self._couriers = couriers

    async def cancel(self, order_id: UUID) -> None:
        self.steps.append(("cancel", order_id, None))

    async def arrive(self, order_id: UUID, courier_id: str | None) -> None:
        self.steps.append(("arrive", order_id, courier_id))

    async def pick_up(self, order_id: UUID, courier_id: str | None) -> None:
        self.steps.append(("pickup", order_id, courier_id))

    async def deliver(self, order_id: UUID, courier_id: str | None) -> None:
        self.steps.append(("deliver", order_id, courier_id))

    async def couriers(self) -> list[CourierView]:
        if self._couriers is None:
            raise services.DeliveryUnavailable("ClientConnectorError: refused")
        return self._couriers

    async def assignment(self, courier_id: str) -> CourierAssignment:
        for c in await self.couriers():
            if c.courier_id == courier_id:
                return CourierAssignment(
                    courier_id=courier_id,
                    name=c.name,
                    position=GeoPoint(lat=c.lat, lon=c.lon),
                    available=c.available,
                )
        raise services.DeliveryRefused(404, f"no courier {courier_id}")


def restaurant_view(
    restaurant_id: str, *item_ids: str, open_now: bool = True, unavailable: Sequence[str] = ()
) -> RestaurantView:
    return RestaurantView(
        restaurant_id=restaurant_id,
        name=restaurant_id.replace("-", " ").title(),
        lat=52.52,
        lon=13.40,
        timezone="Europe/Berlin",
        opens_at=time(0, 0),
        closes_at=time(0, 0),
        accepting=open_now,
        open_now=open_now,
        capacity=20,
        active_tickets=0,
        items=[
            MenuEntry(item_id=i, prep_minutes=10, available=i not in unavailable) for i in item_ids
        ],
    )


class FakeKitchens:
    """The restaurant service: restaurants and their menus (an item on none is cooked by the
    last restaurant, the default), and tickets by restaurant. `down` answers nothing; every
    call is recorded with the restaurant it was made for."""

    def __init__(self, *restaurants: RestaurantView) -> None:
        self.by_id = {r.restaurant_id: r for r in restaurants}
        self.tickets_of: dict[str, dict[UUID, TicketView]] = {r: {} for r in self.by_id}
        self.calls: list[tuple[str, str, UUID | str | None]] = []
        self.down = False

    def _answering(self) -> None:
        if self.down:
            raise services.RestaurantUnavailable("the restaurant service is unavailable")

    async def restaurants(self) -> list[RestaurantView]:
        self._answering()
        return list(self.by_id.values())

    async def restaurant(self, restaurant_id: str) -> RestaurantView:
        self._answering()
        if restaurant_id not in self.by_id:
            raise services.RestaurantRefused(404, f"no restaurant {restaurant_id}")
        return self.by_id[restaurant_id]

    async def check_order(self, item_ids: list[str]) -> OrderCheckResult:
        self._answering()
        cooks = list(self.by_id.values())[-1]
        for item_id in sorted(item_ids):
            found = next(
                (r for r in self.by_id.values() if item_id in {e.item_id for e in r.items}), None
            )
            if found is not None:
                cooks = found
                break
        unavailable = sorted(
            e.item_id for e in cooks.items if e.item_id in item_ids and not e.available
        )
        refusal = None if cooks.open_now else "RESTAURANT_CLOSED"
        refusal = refusal or ("ITEM_UNAVAILABLE" if unavailable else None)
        return OrderCheckResult(
            restaurant_id=cooks.restaurant_id,
            restaurant_name=cooks.name,
            open_now=cooks.open_now,
            unavailable=unavailable,
            refusal=refusal,
        )

    def add_ticket(self, restaurant_id: str, state: TicketState = TicketState.PENDING) -> UUID:
        order_id = uuid4()
        self.tickets_of[restaurant_id][order_id] = TicketView(
            order_id=order_id,
            restaurant_id=restaurant_id,
            state=state,
            lines=[TicketLine(item_id="pho-bo", quantity=1)],
            suggested_ready_in_minutes=12.0,
            received_at=T0,
            updated_at=T0,
        )
        return order_id

    async def tickets(self, restaurant_id: str, state: TicketState | None) -> list[TicketView]:
        self._answering()
        self.calls.append(("tickets", restaurant_id, state))
        return [
            t for t in self.tickets_of[restaurant_id].values() if state is None or t.state == state
        ]

    async def ticket(self, restaurant_id: str, order_id: UUID) -> TicketView:
        self._answering()
        self.calls.append(("ticket", restaurant_id, order_id))
        found = self.tickets_of.get(restaurant_id, {}).get(order_id)
        if found is None:
            raise services.RestaurantRefused(404, f"no order {order_id} at {restaurant_id}")
        return found

    async def _move(
        self, step: str, restaurant_id: str, order_id: UUID, state: TicketState
    ) -> TicketView:
        ticket = await self.ticket(restaurant_id, order_id)
        self.calls.append((step, restaurant_id, order_id))
        moved = ticket.model_copy(update={"state": state})
        self.tickets_of[restaurant_id][order_id] = moved
        return moved

    async def accept(self, restaurant_id: str, order_id: UUID, minutes: float) -> TicketView:
        moved = await self._move("accept", restaurant_id, order_id, TicketState.ACCEPTED)
        return moved.model_copy(update={"ready_by": T0 + timedelta(minutes=minutes)})

    async def prepare(self, restaurant_id: str, order_id: UUID) -> TicketView:
        return await self._move("prepare", restaurant_id, order_id, TicketState.PREPARING)

    async def delay(self, restaurant_id: str, order_id: UUID, minutes: float) -> TicketView:
        return await self._move("delay", restaurant_id, order_id, TicketState.PREPARING)

    async def ready(self, restaurant_id: str, order_id: UUID) -> TicketView:
        return await self._move("ready", restaurant_id, order_id, TicketState.READY)

    async def reject(
        self, restaurant_id: str, order_id: UUID, reason: RejectReason, detail: str | None
    ) -> TicketView:
        return await self._move("reject", restaurant_id, order_id, TicketState.REJECTED)

    async def set_availability(
        self, restaurant_id: str, item_id: str, available: bool
    ) -> MenuEntry:
        self._answering()
        self.calls.append(("availability", restaurant_id, item_id))
        return MenuEntry(item_id=item_id, prep_minutes=10, available=available)

    async def set_opening(self, restaurant_id: str, change: OpeningChange) -> RestaurantView:
        self._answering()
        self.calls.append(("opening", restaurant_id, None))
        accepting = change.accepting if change.accepting is not None else True
        return restaurant_view(restaurant_id, open_now=accepting)


class FakePublisher:
    def __init__(self) -> None:
        self.published: list[tuple[str, ValidatedOrder]] = []

    async def publish(self, topic: str, order: ValidatedOrder) -> None:
        self.published.append((topic, order))


def customer() -> Principal:
    return Principal(uuid4(), Role.CUSTOMER)


def order_body(*items: str, promo: str | None = None) -> OrderCreate:
    return OrderCreate(
        items=[OrderLineIn(item_id=i, quantity=1) for i in items],
        delivery_address=ADDRESS,
        promo_code=promo,
    )


def snapshot_of(order: ValidatedOrder, status: OrderStatus, version: int = 2) -> OrderSnapshot:
    assert order.order_id is not None
    return OrderSnapshot(
        order_id=order.order_id,
        user_id=order.user_id,
        status=status,
        version=version,
        created_at=T0,
        updated_at=T0 + timedelta(seconds=version),
        items=[PricedItem(item_id=i.item_id, quantity=i.quantity) for i in order.items],
        history=[
            StatusChange(status=OrderStatus.RECEIVED, version=1, at=T0),
            StatusChange(status=status, version=version, at=T0 + timedelta(seconds=version)),
        ],
    )


def record_of(order_id: UUID, status: str = "CONFIRMED") -> OrderRecord:
    return OrderRecord(
        order_id=order_id,
        user_id="u",
        status=status,
        reason=None,
        detail=None,
        version=3,
        subtotal=Decimal("9.00"),
        discount=Decimal("0.00"),
        delivery_fee=Decimal("2.99"),
        small_order_fee=Decimal("0.00"),
        tax=Decimal("0.00"),
        total=Decimal("11.99"),
        currency="EUR",
        promo_code=None,
        price=None,
        created_at=T0,
        updated_at=T0 + timedelta(seconds=3),
        items=[PricedItem(item_id="pho-bo", quantity=1, unit_price=Decimal("9.00"))],
        history=[StatusChange(status=OrderStatus.CONFIRMED, version=3, at=T0)],
    )


class World:
    def __init__(self) -> None:
        self.repository = FakeRepository()
        self.views = FakeViews()
        self.catalogue = FakeCatalogue({"pho-bo": 50, "ramen": 5})
        self.kitchens = FakeKitchens(
            restaurant_view("saigon-street", "pho-bo"),
            restaurant_view("tokyo-kitchen", "ramen"),
            restaurant_view("central-kitchen"),
        )
        self.deliveries = FakeDeliveries()
        self.publisher = FakePublisher()
        self.passwords = FakePasswords()
        self.throttle = FakeThrottle(SETTINGS.login_attempts_per_minute)

    async def sign_up(self, body: UserCreate, address: str = "10.0.0.1") -> schemas.SignUpAccepted:
        return await services.sign_up(
            self.repository, self.passwords, self.throttle, body, Role.CUSTOMER, address
        )

    async def log_in(self, email: str, password: str, address: str = "10.0.0.1") -> Token:
        return await services.log_in(
            self.repository, self.passwords, self.throttle, SETTINGS, email, password, address
        )

    async def place(
        self, user: Principal, body: OrderCreate, key: str | None = None
    ) -> OrderAccepted:
        return await services.place_order(
            self.repository,
            self.catalogue,
            self.kitchens,
            self.views,
            self.publisher,
            user,
            body,
            key,
        )


@pytest.fixture
def world() -> World:
    return World()


# --- accounts ---------------------------------------------------------------------------------


async def test_sign_up_then_log_in_gives_a_token_for_that_user(world: World) -> None:
    body = UserCreate(email="Ada@Example.org", name="Ada", password="correct horse")
    accepted = await world.sign_up(body)
    assert accepted.detail == services.SIGNED_UP

    token = await world.log_in("ADA@example.org", "correct horse")
    assert token.user.email == "ada@example.org" and token.user.role is Role.CUSTOMER
    user_id = token.user.user_id
    assert read_token(token.access_token, SETTINGS) == Principal(user_id, Role.CUSTOMER)
    assert ("account", "ada@example.org") not in world.throttle.counts  # success forgets
    assert await services.me(world.repository, Principal(user_id, Role.CUSTOMER)) == token.user
    with pytest.raises(services.NotFound):
        await services.me(world.repository, customer())


async def test_a_taken_email_is_answered_like_a_free_one(world: World) -> None:
    body = UserCreate(email="ada@example.org", name="Ada", password="correct horse")
    first = await world.sign_up(body)
    again = await world.sign_up(body.model_copy(update={"password": "another horse"}))
    assert again == first
    assert "ada@example.org" not in again.detail
    # The account keeps its first password.
    await world.log_in("ada@example.org", "correct horse")
    with pytest.raises(services.WrongCredentials):
        await world.log_in("ada@example.org", "another horse")


async def test_an_unknown_email_is_checked_against_a_password_all_the_same(world: World) -> None:
    with pytest.raises(services.WrongCredentials, match="wrong email or password"):
        await world.log_in("nobody@example.org", "correct horse")
    assert world.passwords.verified == [None]  # Passwords.verify(None, ...) hashes a dummy


@pytest.mark.parametrize("password", ["password", "12345678", "password12", "aaaaaaaaaaaa"])
async def test_weak_passwords_are_refused(world: World, password: str) -> None:
    body = UserCreate.model_construct(email="eve@example.org", name="Eve", password=password)
    with pytest.raises(services.Invalid, match="password"):
        await world.sign_up(body)
    assert world.repository.users == {}


async def test_the_own_email_is_no_password(world: World) -> None:
    body = UserCreate(email="carol.kowalski@example.org", name="C", password="carol.kowalski")
    with pytest.raises(services.Invalid, match="too weak"):
        await world.sign_up(body)


async def test_wrong_passwords_are_limited_per_account(world: World) -> None:
    await world.sign_up(UserCreate(email="bob@example.org", name="Bob", password="correct horse"))
    for attempt in range(SETTINGS.login_attempts_per_minute):
        with pytest.raises(services.WrongCredentials, match="wrong email or password"):
            await world.log_in("bob@example.org", "nope", address=f"10.0.0.{attempt}")
    with pytest.raises(services.TooManyAttempts) as refused:
        await world.log_in("bob@example.org", "correct horse", address="10.0.1.1")
    assert refused.value.headers == {"Retry-After": "42"}


async def test_spraying_accounts_from_one_address_is_limited(world: World) -> None:
    for n in range(SETTINGS.login_attempts_per_minute):
        with pytest.raises(services.WrongCredentials):
            await world.log_in(f"user{n}@example.org", "Spring2026!")
    with pytest.raises(services.TooManyAttempts):
        await world.log_in("another@example.org", "Spring2026!")


async def test_sign_ups_are_limited_per_address(world: World) -> None:
    def body(email: str) -> UserCreate:
        return UserCreate(email=email, name="U", password="horse staple")

    for n in range(SETTINGS.login_attempts_per_minute):
        await world.sign_up(body(f"u{n}@example.org"))
    with pytest.raises(services.TooManyAttempts):
        await world.sign_up(body("late@example.org"))
    await world.sign_up(body("late@example.org"), "10.9.9.9")


# --- placing ----------------------------------------------------------------------------------


async def test_an_order_is_published_at_catalogue_prices_under_a_new_id(world: World) -> None:
    user = customer()
    body = OrderCreate(
        items=[OrderLineIn(item_id="pho-bo", quantity=2, price="0.01")], delivery_address=ADDRESS
    )
    accepted = await world.place(user, body)
    assert accepted.status == "ACCEPTED"
    assert accepted.status_url == f"/orders/{accepted.order_id}"
    [(topic, order)] = world.publisher.published
    assert topic == topics.VALIDATED_ORDERS
    assert order.order_id == accepted.order_id and order.user_id == str(user.user_id)
    assert [(i.item_id, i.quantity, i.price) for i in order.items] == [("pho-bo", 2, None)]
    assert order.delivery_address == ADDRESS


async def test_items_twice_or_off_the_menu_are_refused(world: World) -> None:
    with pytest.raises(services.Invalid, match="only once"):
        await world.place(customer(), order_body("pho-bo", "pho-bo"))
    with pytest.raises(services.Invalid, match="not on the menu: no-such-dish, pizza"):
        await world.place(customer(), order_body("pho-bo", "no-such-dish", "pizza"))
    assert world.publisher.published == []


async def test_the_same_key_and_body_place_one_order(world: World) -> None:
    user = customer()
    first = await world.place(user, order_body("pho-bo"), key="k1")
    # Not yet taken in by the order manager: published again, under the same id.
    again = await world.place(user, order_body("pho-bo"), key="k1")
    assert again.order_id == first.order_id and again.status == "ACCEPTED"
    assert [o.order_id for _, o in world.publisher.published] == [first.order_id] * 2

    world.views.snapshots[first.order_id] = snapshot_of(
        world.publisher.published[0][1], OrderStatus.PROCESSING
    )
    live = await world.place(user, order_body("pho-bo"), key="k1")
    assert (live.order_id, live.status) == (first.order_id, "ALREADY_PLACED")
    assert len(world.publisher.published) == 2

    with pytest.raises(services.Invalid, match="Idempotency-Key"):
        await world.place(user, order_body("ramen"), key="k1")
    other_user = await world.place(customer(), order_body("pho-bo"), key="k1")
    assert other_user.order_id != first.order_id


# --- reading ----------------------------------------------------------------------------------


async def test_an_order_reads_live_then_stored_then_as_accepted(world: World) -> None:
    user = customer()
    accepted = await world.place(user, order_body("pho-bo"))
    order_id = accepted.order_id

    view = await services.read_order(world.repository, world.views, order_id, user)
    assert (view.status, view.delivery_address, view.timeline) == ("ACCEPTED", ADDRESS, [])
    assert view.created_at == T0 and [i.item_id for i in view.items] == ["pho-bo"]

    world.views.records[order_id] = record_of(order_id)
    stored = await services.read_order(world.repository, world.views, order_id, user)
    assert (stored.status, stored.user_id, stored.delivery_address) == ("CONFIRMED", "u", ADDRESS)
    assert stored.items[0].unit_price == Decimal("9.00") and len(stored.timeline) == 1
    assert stored.updated_at == T0 + timedelta(seconds=3)

    world.views.snapshots[order_id] = snapshot_of(
        world.publisher.published[0][1], OrderStatus.COURIER_ASSIGNED
    )
    live = await services.read_order(world.repository, world.views, order_id, user)
    assert live.status == "COURIER_ASSIGNED"
    assert [c.version for c in live.timeline] == [1, 2]


async def test_other_peoples_orders_are_not_found_except_for_admins(world: World) -> None:
    accepted = await world.place(customer(), order_body("pho-bo"))
    with pytest.raises(services.NotFound, match=f"no order {accepted.order_id}"):
        await services.read_order(world.repository, world.views, accepted.order_id, customer())
    admin = Principal(uuid4(), Role.ADMIN)
    view = await services.read_order(world.repository, world.views, accepted.order_id, admin)
    assert view.order_id == accepted.order_id


async def test_my_orders_newest_first_a_page_at_a_time(world: World) -> None:
    user = customer()
    ids = [(await world.place(user, order_body("pho-bo"))).order_id for _ in range(3)]
    await world.place(customer(), order_body("pho-bo"))
    page = await services.list_orders(world.repository, world.views, user, limit=2, offset=0)
    assert (page.total, page.limit, page.offset) == (3, 2, 0)
    assert [o.order_id for o in page.items] == [ids[2], ids[1]]


# --- cancelling and delivery steps ------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (OrderStatus.FAILED, "the order is failed already"),
        (OrderStatus.CANCELLED, "the order is cancelled already"),
        (OrderStatus.PICKED_UP, "the order is picked up; it can no longer be cancelled"),
        (OrderStatus.DELIVERED, "the order is delivered; it can no longer be cancelled"),
        (OrderStatus.PROCESSING, "still being processed"),
    ],
)
async def test_a_cancel_too_late_or_too_early_is_a_conflict(
    world: World, status: OrderStatus, message: str
) -> None:
    user = customer()
    accepted = await world.place(user, order_body("pho-bo"))
    world.views.snapshots[accepted.order_id] = snapshot_of(world.publisher.published[0][1], status)
    with pytest.raises(services.Conflict, match=message):
        await services.cancel_order(
            world.repository,
            world.views,
            world.deliveries,
            accepted.order_id,
            user,
            wait_seconds=0.0,
        )
    assert world.deliveries.steps == []


async def test_a_confirmed_order_is_cancelled_through_the_delivery_service(world: World) -> None:
    user = customer()
    accepted = await world.place(user, order_body("pho-bo"))
    world.views.snapshots[accepted.order_id] = snapshot_of(
        world.publisher.published[0][1], OrderStatus.CONFIRMED
    )
    view = await services.cancel_order(
        world.repository, world.views, world.deliveries, accepted.order_id, user
    )
    assert world.deliveries.steps == [("cancel", accepted.order_id, None)]
    assert view.order_id == accepted.order_id


async def courier_account(world: World, courier_id: str | None) -> Principal:
    account = Account(uuid4(), f"{uuid4().hex}@example.org", "Rider", Role.COURIER, courier_id)
    assert await world.repository.add_user(account, "hash")
    return Principal(account.user_id, Role.COURIER)


async def test_couriers_report_steps_as_their_own_courier_and_staff_as_nobody(
    world: World,
) -> None:
    accepted = await world.place(customer(), order_body("pho-bo"))
    order_id = accepted.order_id
    args = (world.repository, world.repository, world.views, world.deliveries, order_id)
    courier = await courier_account(world, "courier-03")
    picked = await services.pick_up(*args, courier)
    delivered = await services.deliver(*args, courier)
    await services.pick_up(*args, Principal(uuid4(), Role.OPERATOR))
    await services.deliver(*args, Principal(uuid4(), Role.ADMIN))
    assert picked.order_id == delivered.order_id == order_id
    assert world.deliveries.steps == [
        ("pickup", order_id, "courier-03"),
        ("deliver", order_id, "courier-03"),
        ("pickup", order_id, None),
        ("deliver", order_id, None),
    ]


async def test_customers_and_unbound_couriers_report_no_steps(world: World) -> None:
    accepted = await world.place(customer(), order_body("pho-bo"))
    args = (world.repository, world.repository, world.views, world.deliveries)
    with pytest.raises(services.Forbidden, match="only couriers"):
        await services.pick_up(*args, accepted.order_id, customer())
    unbound = await courier_account(world, None)
    with pytest.raises(services.Forbidden, match="not bound to a courier"):
        await services.deliver(*args, accepted.order_id, unbound)
    gone = Principal(uuid4(), Role.COURIER)  # a token whose account no longer exists
    with pytest.raises(services.Forbidden, match="not bound to a courier"):
        await services.pick_up(*args, accepted.order_id, gone)
    assert world.deliveries.steps == []


async def test_a_courier_account_is_bound_to_a_known_courier(world: World) -> None:
    known = CourierView(courier_id="courier-01", name="Anna", lat=52.5, lon=13.4, available=True)
    deliveries = FakeDeliveries([known])

    def body(courier_id: str) -> schemas.CourierAccountCreate:
        email = f"{uuid4().hex}@example.org"
        return schemas.CourierAccountCreate(
            email=email, name="Anna", password="correct horse", courier_id=courier_id
        )

    created = await services.create_courier_account(
        world.repository, world.passwords, deliveries, body(known.courier_id)
    )
    assert (created.role, created.courier_id) == (Role.COURIER, "courier-01")
    assert (await world.repository.user(created.user_id)) == Account(
        created.user_id, created.email, "Anna", Role.COURIER, "courier-01"
    )
    with pytest.raises(services.Invalid, match="no courier courier-99"):
        await services.create_courier_account(
            world.repository, world.passwords, deliveries, body("courier-99")
        )
    with pytest.raises(services.DeliveryUnavailable):
        await services.create_courier_account(
            world.repository, world.passwords, FakeDeliveries(), body("c")
        )


async def test_a_taken_courier_email_is_a_conflict_without_hashing_a_password(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    known = CourierView(courier_id="courier-01", name="Anna", lat=52.5, lon=13.4, available=True)
    body = schemas.CourierAccountCreate(
        email="courier-01@foodflow.example",
        name="Anna",
        password="correct horse",
        courier_id="courier-01",
    )
    await services.create_courier_account(
        world.repository, world.passwords, FakeDeliveries([known]), body
    )

    async def no_hash(password: str) -> str:
        raise AssertionError("hashed a password for an account that exists")

    monkeypatch.setattr(world.passwords, "hash", no_hash)
    upper = body.model_copy(update={"email": "Courier-01@FOODFLOW.example"})
    with pytest.raises(services.Conflict, match="exists already"):
        await services.create_courier_account(
            world.repository, world.passwords, FakeDeliveries([known]), upper
        )


async def test_a_courier_reads_their_own_delivery_and_nobody_else_can(world: World) -> None:
    known = CourierView(courier_id="courier-01", name="Anna", lat=52.5, lon=13.4, available=True)
    deliveries = FakeDeliveries([known])
    body = schemas.CourierAccountCreate(
        email=f"{uuid4().hex}@example.org",
        name="Anna",
        password="correct horse",
        courier_id="courier-01",
    )
    courier = await services.create_courier_account(
        world.repository, world.passwords, deliveries, body
    )
    mine = await services.my_delivery(
        world.repository, deliveries, Principal(courier.user_id, Role.COURIER)
    )
    assert (mine.courier_id, mine.position.lat, mine.delivery) == ("courier-01", 52.5, None)

    unbound = Account(uuid4(), f"{uuid4().hex}@example.org", "Rider", Role.COURIER)
    await world.repository.add_user(unbound, "x")
    for who in (Principal(unbound.user_id, Role.COURIER), Principal(uuid4(), Role.CUSTOMER)):
        with pytest.raises(services.Forbidden):
            await services.my_delivery(world.repository, deliveries, who)


async def test_demo_accounts_are_created_once_and_reset_at_every_start(world: World) -> None:
    # The public sign-up refuses a `.local` address (`test_a_reserved_domain_cannot_sign_up`);
    # an account squatting the demo address (an older release's) is reset all the same.
    squatter = UserCreate.model_construct(
        email=services.DEMO_OPERATOR_EMAIL, name="Mallory", password="mallory's own long passphrase"
    )
    await world.sign_up(squatter)

    demo = await services.ensure_demo_accounts(
        world.repository, world.passwords, "operator password"
    )
    again = await services.ensure_demo_accounts(
        world.repository, world.passwords, "operator password"
    )

    assert demo == again
    by_email = {a.email: (a, h) for a, h in world.repository.users.values()}
    assert len(by_email) == len(world.repository.users) == 2
    customer_account, customer_hash = by_email[services.DEMO_CUSTOMER_EMAIL]
    assert (customer_account.user_id, customer_account.role) == (demo, Role.CUSTOMER)
    operator, operator_hash = by_email[services.DEMO_OPERATOR_EMAIL]
    assert operator.role is Role.OPERATOR and operator.courier_id is None
    assert await world.passwords.verify(operator_hash, "operator password")
    assert not await world.passwords.verify(operator_hash, "mallory's own long passphrase")
    assert not await world.passwords.verify(customer_hash, "")


async def test_without_a_password_there_is_no_demo_operator(world: World) -> None:
    await services.ensure_demo_accounts(world.repository, world.passwords, None)
    assert [a.email for a, _ in world.repository.users.values()] == [services.DEMO_CUSTOMER_EMAIL]


# --- dashboard --------------------------------------------------------------------------------


async def test_a_timeline_comes_from_redis_postgres_or_the_board(world: World) -> None:
    board = Board()
    with pytest.raises(services.NotFound):
        await services.order_timeline(world.views, board, uuid4())

    order_id = uuid4()
    world.views.records[order_id] = record_of(order_id)
    timeline = await services.order_timeline(world.views, board, order_id)
    assert timeline.current is None
    assert timeline.stored is not None and timeline.stored.total == Decimal("11.99")
    assert [h.status for h in timeline.history] == [OrderStatus.CONFIRMED]

    only_on_board = uuid4()
    board.apply(
        OrderStatusUpdate(
            order_id=only_on_board,
            user_id="u",
            status=OrderStatus.RECEIVED,
            version=1,
            created_at=T0,
            updated_at=T0,
        )
    )
    from_board = await services.order_timeline(world.views, board, only_on_board)
    assert from_board.stored is None and from_board.items == []
    assert [h.version for h in from_board.history] == [1]


async def test_a_timeline_holds_every_transition_postgres_and_the_board_know(
    world: World,
) -> None:
    """The detail used to stop at PostgreSQL's last row while the badge said COURIER_ASSIGNED:
    the board's later steps are merged in, by version, each once."""
    board = Board()
    order_id = uuid4()
    world.views.records[order_id] = record_of(order_id)  # v3 CONFIRMED stored
    for version, status in ((3, OrderStatus.CONFIRMED), (4, OrderStatus.COURIER_ASSIGNED)):
        board.apply(
            OrderStatusUpdate(
                order_id=order_id,
                user_id="u",
                status=status,
                version=version,
                created_at=T0,
                updated_at=T0 + timedelta(seconds=version),
            ),
            customer="Ann <ann@example.com>",
        )
    timeline = await services.order_timeline(world.views, board, order_id)
    assert [(h.version, h.status) for h in timeline.history] == [
        (3, OrderStatus.CONFIRMED),
        (4, OrderStatus.COURIER_ASSIGNED),
    ]
    assert timeline.customer == "Ann <ann@example.com>"


async def test_stock_flags_low_items_and_couriers_say_when_unreachable(world: World) -> None:
    report = await services.stock_report(world.catalogue)
    assert [(i.item_id, i.stock, i.low) for i in report.items] == [
        ("pho-bo", 50, False),
        ("ramen", 5, True),
    ]
    board = await services.courier_board(FakeDeliveries())
    assert not board.delivery_service and board.message == "delivery service not reachable"
    courier = CourierView(courier_id="c1", name="Anna", lat=52.5, lon=13.4, available=False)
    courier.current_order = uuid4()
    free = CourierView(courier_id="c2", name="Ben", lat=52.5, lon=13.4, available=True)
    board = await services.courier_board(FakeDeliveries([courier, free]))
    assert board.delivery_service and board.message == "2 couriers, 1 on a delivery"


async def test_a_test_order_is_published_or_refused_with_the_validation_errors(
    world: World,
) -> None:
    demo = uuid4()
    body = schemas.TestOrderRequest(items=[schemas.TestOrderLine(item_id="pho-bo", quantity=2)])
    accepted = await services.place_test_order(
        world.repository, world.kitchens, world.publisher, demo, body
    )
    [(topic, order)] = world.publisher.published
    assert accepted.topic == topic == topics.VALIDATED_ORDERS
    assert order.order_id == accepted.order_id
    assert order.user_id == accepted.user_id == str(demo)
    placed = await world.repository.order(accepted.order_id)
    assert placed is not None and placed.user_id == demo

    line = schemas.TestOrderLine(item_id="pho-bo", quantity=1)
    twice = schemas.TestOrderRequest(items=[line, line])
    with pytest.raises(services.Invalid) as refused:
        await services.place_test_order(
            world.repository, world.kitchens, world.publisher, demo, twice
        )
    assert isinstance(refused.value.detail, list) and "msg" in refused.value.detail[0]
    assert len(world.publisher.published) == 1


def test_no_one_chooses_the_user_of_a_test_order_or_a_role_at_sign_up() -> None:
    with pytest.raises(ValidationError, match="user_id"):
        schemas.TestOrderRequest.model_validate(
            {"user_id": "someone-else", "items": [{"item_id": "pho-bo", "quantity": 1}]}
        )
    with pytest.raises(ValidationError, match="role"):
        UserCreate.model_validate(
            {"email": "a@example.org", "name": "A", "password": "correct horse", "role": "admin"}
        )


# --- errors to HTTP ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "status", "detail", "headers"),
    [
        (services.NotFound("no order x"), 404, "no order x", {}),
        (services.Conflict("too late"), 409, "too late", {}),
        (
            services.Invalid([{"msg": "m", "loc": ["items"]}]),
            422,
            "the request is not valid: items: m",
            {},
        ),
        (services.Forbidden("couriers only"), 403, "couriers only", {}),
        (services.WrongCredentials("wrong"), 401, "wrong", {}),
        (
            services.TooManyAttempts("wait", headers={"Retry-After": "60"}),
            429,
            "wait",
            {"retry-after": "60"},
        ),
        (services.DeliveryRefused(409, "not assigned"), 409, "not assigned", {}),
        (services.DeliveryUnavailable("down"), 503, "down", {}),
        (services.RestaurantRefused(404, "no order x here"), 404, "no order x here", {}),
        (services.RestaurantClosed("closed now"), 409, "closed now", {}),
        (services.RestaurantUnavailable("down"), 503, "down", {}),
        # Which service failed and where it runs stays in the logs.
        (ServiceUnavailable("inventory http://10.0.0.5:8001/menu: HTTP 500"), 503, None, {}),
    ],
)
async def test_errors_answer_with_their_status_and_a_problem(
    error: Exception, status: int, detail: str | None, headers: dict[str, str]
) -> None:
    app = FastAPI()
    install_gateway_errors(app)

    @app.get("/fail")
    async def fail() -> None:
        raise error

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        response = await client.get("/fail")
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert {"type", "title", "status", "detail", "request_id"} <= set(body)
    assert body["status"] == status
    if detail is not None:
        assert body["detail"] == detail
    if status == 422:
        assert body["errors"] == [{"field": "items", "message": "m"}]
    assert "10.0.0.5" not in response.text
    for name, value in headers.items():
        assert response.headers[name] == value


@pytest.mark.parametrize(
    ("status", "reason", "saga_detail", "shown"),
    [
        (
            "FAILED",
            "PAYMENT_UNAVAILABLE",
            "payment /authorise_batch: ClientConnectorError Cannot connect to host 127.0.0.1:8003",
            "the payment could not be processed just now; please try again in a moment",
        ),
        (
            "FAILED",
            "OUT_OF_STOCK",
            "not enough stock: pho-bo, 127.0.0.1",
            "an item of the order is out of stock: pho-bo",
        ),
        (
            "FAILED",
            "UNKNOWN_ITEM",
            "unknown items: ghost",
            "an item of the order is not on the menu: ghost",
        ),
        ("FAILED", None, "Traceback (most recent call last)", "the order could not be completed"),
        (
            "CANCELLED",
            "NO_COURIER",
            "no courier within 600s",
            "no courier was free to deliver the order; the payment is refunded",
        ),
        (
            "COURIER_ASSIGNED",
            None,
            "courier c-1 (Ada), ETA 12 min",
            "courier c-1 (Ada), ETA 12 min",
        ),
        ("PROCESSING", None, "inventory at 10.0.0.1 slow", None),
        (
            "RESTAURANT_REJECTED",
            "KITCHEN_BUSY",
            "rejected by tokyo-kitchen staff",
            "the restaurant is too busy to take the order; the payment is refunded",
        ),
        (
            "CANCELLED",
            "RESTAURANT_TIMEOUT",
            "no answer within 180s",
            "the restaurant did not answer in time; the payment is refunded",
        ),
    ],
)
def test_a_customer_reads_a_detail_derived_from_the_reason(
    status: str, reason: str | None, saga_detail: str, shown: str | None
) -> None:
    assert schemas.public_detail(status, reason, saga_detail, ["pho-bo", "ghost"]) == shown


def test_a_reserved_domain_cannot_sign_up() -> None:
    """The demo accounts' `.local` domain cannot be taken through the public sign-up."""
    with pytest.raises(ValidationError, match="special-use or reserved name"):
        UserCreate(email=services.DEMO_OPERATOR_EMAIL, name="M", password="a long passphrase")


def test_only_the_callers_refusals_of_the_delivery_service_reach_them() -> None:
    """A courier hears "not yours", "no such delivery", "out of turn"; a refusal of the gateway's
    own service token (401) is the operator's to mend, a 503 without its text."""
    from foodflow.gateway.adapters import _refusal
    from foodflow.platform.http.client import RequestRefused

    for status in (403, 404, 409, 422):
        passed = _refusal(RequestRefused("delivery", status, "not yours"), "/couriers/c1")
        assert isinstance(passed, services.DeliveryRefused)
    hidden = _refusal(RequestRefused("delivery", 401, "the token is not valid"), "/couriers/c1")
    assert isinstance(hidden, services.DeliveryUnavailable)
    assert "token" not in str(hidden)
