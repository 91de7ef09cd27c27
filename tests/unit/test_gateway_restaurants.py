"""The gateway's restaurant side over in-memory ports: staff accounts bound to a restaurant, the
staff's routes acting on their own restaurant only, the menu by restaurant, the check before an
order is placed (closed, unavailable items), and the courier's arrival."""

from __future__ import annotations

from uuid import uuid4

import httpx
import pytest
from fastapi import FastAPI

from foodflow.contracts.orders import OrderStatus
from foodflow.contracts.restaurant import OpeningChange, TicketState
from foodflow.gateway import schemas, services
from foodflow.gateway.app import install_gateway_errors
from foodflow.gateway.schemas import RestaurantAccountCreate
from foodflow.gateway.security import Principal, Role
from foodflow.gateway.services import Account

from .test_gateway_services import (
    FakeDeliveries,
    World,
    customer,
    order_body,
    restaurant_view,
    snapshot_of,
)


@pytest.fixture
def world() -> World:
    return World()


async def staff_of(world: World, restaurant_id: str | None) -> Principal:
    """A restaurant staff account bound to `restaurant_id` (None: bound to none)."""
    account = Account(
        user_id=uuid4(),
        email=f"staff-{restaurant_id}@example.org",
        name="Staff",
        role=Role.RESTAURANT,
        restaurant_id=restaurant_id,
    )
    await world.repository.add_user(account, "x")
    return Principal(account.user_id, Role.RESTAURANT)


# --- accounts ---------------------------------------------------------------------------------


def account_body(restaurant_id: str, email: str = "tokyo@example.org") -> RestaurantAccountCreate:
    return RestaurantAccountCreate(
        email=email, name="Tokyo staff", password="violet staple orbit", restaurant_id=restaurant_id
    )


async def test_a_staff_account_is_bound_to_a_known_restaurant(world: World) -> None:
    made = await services.create_restaurant_account(
        world.repository, world.passwords, world.kitchens, account_body("tokyo-kitchen")
    )
    assert (made.role, made.restaurant_id, made.courier_id) == (
        Role.RESTAURANT,
        "tokyo-kitchen",
        None,
    )
    stored = await world.repository.user(made.user_id)
    assert stored is not None and stored.restaurant_id == "tokyo-kitchen"

    with pytest.raises(services.Invalid, match="no restaurant nowhere"):
        await services.create_restaurant_account(
            world.repository,
            world.passwords,
            world.kitchens,
            account_body("nowhere", "x@example.org"),
        )
    with pytest.raises(services.Conflict, match="exists already"):
        await services.create_restaurant_account(
            world.repository, world.passwords, world.kitchens, account_body("tokyo-kitchen")
        )
    world.kitchens.down = True
    with pytest.raises(services.RestaurantUnavailable):
        await services.create_restaurant_account(
            world.repository,
            world.passwords,
            world.kitchens,
            account_body("tokyo-kitchen", "y@example.org"),
        )


# --- staff routes -----------------------------------------------------------------------------


async def test_staff_act_on_their_own_restaurant_only(world: World) -> None:
    kitchens = world.kitchens
    mine = kitchens.add_ticket("tokyo-kitchen")
    theirs = kitchens.add_ticket("saigon-street")
    staff = await staff_of(world, "tokyo-kitchen")

    listed = await services.restaurant_orders(world.repository, kitchens, staff, None)
    assert [t.order_id for t in listed.tickets] == [mine]
    accepted = await services.accept_order(world.repository, kitchens, staff, mine, 12.5)
    assert accepted.state is TicketState.ACCEPTED and accepted.ready_by is not None
    await services.prepare_order(world.repository, kitchens, staff, mine)
    await services.delay_order(world.repository, kitchens, staff, mine, 5)
    ready = await services.ready_order(world.repository, kitchens, staff, mine)
    assert ready.state is TicketState.READY
    pending = await services.restaurant_orders(
        world.repository, kitchens, staff, TicketState.PENDING
    )
    assert pending.tickets == []

    # Another restaurant's order is not found at mine: the gateway never names another.
    for step in (
        services.prepare_order,
        services.ready_order,
        services.restaurant_order,
    ):
        with pytest.raises(services.RestaurantRefused) as refused:
            await step(world.repository, kitchens, staff, theirs)
        assert refused.value.status == 404
    with pytest.raises(services.RestaurantRefused):
        await services.reject_order(world.repository, kitchens, staff, theirs, "KITCHEN_BUSY", None)
    assert {r for _, r, _ in kitchens.calls} == {"tokyo-kitchen"}
    assert kitchens.tickets_of["saigon-street"][theirs].state is TicketState.PENDING

    entry = await services.set_item_availability(world.repository, kitchens, staff, "ramen", False)
    assert not entry.available
    paused = await services.set_opening(
        world.repository, kitchens, staff, OpeningChange(accepting=False)
    )
    assert paused.restaurant_id == "tokyo-kitchen" and not paused.open_now
    assert kitchens.calls[-2:] == [
        ("availability", "tokyo-kitchen", "ramen"),
        ("opening", "tokyo-kitchen", None),
    ]


@pytest.mark.parametrize("role", [Role.CUSTOMER, Role.COURIER, Role.OPERATOR, Role.ADMIN])
async def test_only_restaurant_staff_use_the_staff_routes(world: World, role: Role) -> None:
    order_id = world.kitchens.add_ticket("tokyo-kitchen")
    someone = Principal(customer().user_id, role)
    with pytest.raises(services.Forbidden, match="only restaurant staff"):
        await services.accept_order(world.repository, world.kitchens, someone, order_id, 5)
    with pytest.raises(services.Forbidden):
        await services.restaurant_orders(world.repository, world.kitchens, someone, None)
    assert world.kitchens.calls == []


async def test_an_unbound_staff_account_is_refused(world: World) -> None:
    unbound = await staff_of(world, None)
    with pytest.raises(services.Forbidden, match="not bound to a restaurant"):
        await services.my_restaurant(world.repository, world.kitchens, unbound)
    bound = await staff_of(world, "tokyo-kitchen")
    mine = await services.my_restaurant(world.repository, world.kitchens, bound)
    assert mine.restaurant_id == "tokyo-kitchen"


# --- the menu ---------------------------------------------------------------------------------


async def test_the_menu_groups_listed_items_by_restaurant_with_its_opening(world: World) -> None:
    world.catalogue.stock["sushi-set"] = 3  # listed, on no restaurant's menu
    world.kitchens.by_id["tokyo-kitchen"] = restaurant_view(
        "tokyo-kitchen", "ramen", "gyoza", open_now=False
    )
    menu = await services.menu(world.catalogue, world.kitchens)
    assert [i.item_id for i in menu.items] == ["pho-bo", "ramen", "sushi-set"]
    groups = {r.restaurant_id: r for r in menu.restaurants}
    assert [i.item_id for i in groups["saigon-street"].items] == ["pho-bo"]
    # gyoza is not listed (out of the inventory's listing): not shown under its restaurant.
    assert [i.item_id for i in groups["tokyo-kitchen"].items] == ["ramen"]
    assert groups["saigon-street"].open_now and not groups["tokyo-kitchen"].open_now
    assert groups["central-kitchen"].items == []
    assert groups["tokyo-kitchen"].items[0] == menu.items[1]  # the same item, price and stock


async def test_the_menu_lists_its_items_while_the_restaurants_cannot_say(world: World) -> None:
    world.kitchens.down = True
    menu = await services.menu(world.catalogue, world.kitchens)
    assert [i.item_id for i in menu.items] == ["pho-bo", "ramen"] and menu.restaurants == []


# --- placing: the restaurant's check ----------------------------------------------------------


async def test_an_order_for_a_closed_restaurant_is_refused_before_anything_happens(
    world: World,
) -> None:
    world.kitchens.by_id["saigon-street"] = restaurant_view(
        "saigon-street", "pho-bo", open_now=False
    )
    with pytest.raises(services.RestaurantClosed) as refused:
        await world.place(customer(), order_body("pho-bo"), key="k1")
    assert "Saigon Street is closed" in refused.value.detail
    assert "nothing was ordered or charged" in refused.value.detail
    assert world.publisher.published == [] and world.repository.placed == {}
    # Another restaurant's dish goes through.
    await world.place(customer(), order_body("ramen"))
    assert len(world.publisher.published) == 1


async def test_a_retry_of_a_placed_order_is_not_refused_once_the_restaurant_closed(
    world: World,
) -> None:
    user = customer()
    first = await world.place(user, order_body("pho-bo"), key="k1")
    world.kitchens.by_id["saigon-street"] = restaurant_view(
        "saigon-street", "pho-bo", open_now=False
    )
    again = await world.place(user, order_body("pho-bo"), key="k1")
    assert again.order_id == first.order_id
    with pytest.raises(services.RestaurantClosed):  # a new order is refused
        await world.place(user, order_body("pho-bo"), key="k2")


async def test_an_item_the_restaurant_marked_unavailable_is_refused_by_name(world: World) -> None:
    world.kitchens.by_id["tokyo-kitchen"] = restaurant_view(
        "tokyo-kitchen", "ramen", unavailable=["ramen"]
    )
    with pytest.raises(services.ItemUnavailable, match="Tokyo Kitchen right now: ramen"):
        await world.place(customer(), order_body("ramen"))
    assert world.publisher.published == []


async def test_without_the_restaurant_service_nothing_is_placed(world: World) -> None:
    world.kitchens.down = True
    with pytest.raises(services.RestaurantUnavailable):
        await world.place(customer(), order_body("pho-bo"))
    assert world.publisher.published == [] and world.repository.placed == {}


async def test_a_test_order_is_checked_but_not_held_up_by_the_restaurant_service(
    world: World,
) -> None:
    demo = customer().user_id
    body = schemas.TestOrderRequest(items=[schemas.TestOrderLine(item_id="pho-bo", quantity=1)])
    world.kitchens.by_id["saigon-street"] = restaurant_view(
        "saigon-street", "pho-bo", open_now=False
    )
    with pytest.raises(services.RestaurantClosed):
        await services.place_test_order(
            world.repository, world.kitchens, world.publisher, demo, body
        )
    assert world.publisher.published == []
    world.kitchens.down = True  # it has no address: no kitchen would see it anyway
    await services.place_test_order(world.repository, world.kitchens, world.publisher, demo, body)
    assert len(world.publisher.published) == 1


def test_the_check_says_closed_before_unavailable() -> None:
    from foodflow.contracts.restaurant import OrderCheckResult

    both = OrderCheckResult(
        restaurant_id="r", restaurant_name="R", open_now=False, unavailable=["a"], refusal=None
    )
    assert isinstance(services.kitchen_refusal(both), services.RestaurantClosed)
    fine = OrderCheckResult(restaurant_id="r", restaurant_name="R", open_now=True)
    assert services.kitchen_refusal(fine) is None


async def test_a_closed_restaurant_is_a_409_problem_of_its_own_type() -> None:
    app = FastAPI()
    install_gateway_errors(app)

    @app.get("/fail")
    async def fail() -> None:
        raise services.RestaurantClosed("the restaurant Tokyo Kitchen is closed now")

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        response = await client.get("/fail")
    body = response.json()
    assert response.status_code == 409
    assert body["type"] == "urn:foodflow:problem:restaurant-closed"
    assert body["title"] == "Restaurant closed" and "closed now" in body["detail"]


# --- cancelling and the courier's arrival -----------------------------------------------------


async def test_a_rejected_order_is_not_cancelled_again(world: World) -> None:
    user = customer()
    accepted = await world.place(user, order_body("pho-bo"))
    order = world.publisher.published[0][1]
    world.views.snapshots[accepted.order_id] = snapshot_of(
        order, OrderStatus.RESTAURANT_REJECTED, version=4
    )
    with pytest.raises(services.Conflict, match="restaurant rejected"):
        await services.cancel_order(
            world.repository, world.views, world.deliveries, accepted.order_id, user
        )
    assert world.deliveries.steps == []
    world.views.snapshots[accepted.order_id] = snapshot_of(order, OrderStatus.PREPARING, version=5)
    cancelled = await services.cancel_order(
        world.repository, world.views, world.deliveries, accepted.order_id, user, wait_seconds=0
    )
    assert cancelled.status == "PREPARING"  # the fake delivery service changes nothing
    assert world.deliveries.steps == [("cancel", accepted.order_id, None)]


async def test_a_courier_reports_arriving_as_their_own_courier(world: World) -> None:
    accepted = await world.place(customer(), order_body("pho-bo"))
    account = Account(uuid4(), "rider@example.org", "Rider", Role.COURIER, "c-7")
    await world.repository.add_user(account, "x")
    rider = Principal(account.user_id, Role.COURIER)
    await services.arrive(
        world.repository,
        world.repository,
        world.views,
        world.deliveries,
        accepted.order_id,
        rider,
    )
    assert world.deliveries.steps == [("arrive", accepted.order_id, "c-7")]
    staff = await staff_of(world, "saigon-street")  # a kitchen does not report a courier's step
    with pytest.raises(services.Forbidden):
        await services.arrive(
            world.repository,
            world.repository,
            world.views,
            FakeDeliveries(),
            accepted.order_id,
            staff,
        )
