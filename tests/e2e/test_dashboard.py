"""The gateway's dashboard end to end: SSE stream, /metrics everywhere, and a real browser.

The browser is Debian's Chromium (`make test` installs it first), driven by Playwright; a
screenshot of the board lands in test-artifacts/.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, Route, async_playwright, expect

from foodflow.contracts.orders import OrderItemIn, ValidatedOrder
from foodflow.gateway.services import DEMO_OPERATOR_EMAIL
from foodflow.platform.config import PORT_SETTING, PROJECT_ROOT, Settings
from foodflow.tools import processes, tracking
from foodflow.tools.infra import process
from foodflow.tools.infra.browser import CHROMIUM_ARGS, require_chromium

from .conftest import E2E_ENV

pytestmark = pytest.mark.e2e

ARTIFACTS = PROJECT_ROOT / "test-artifacts"
# Every status from the handover on: a confirmed order may move on quickly (a kitchen, a
# courier); any of these means it was confirmed.
AFTER_CONFIRMED = (
    "RESTAURANT_ACCEPTED",
    "RESTAURANT_REJECTED",
    "PREPARING",
    "READY_FOR_PICKUP",
    "COURIER_ASSIGNED",
    "PICKED_UP",
    "DELIVERED",
)
FINAL = ("CONFIRMED", "FAILED", "CANCELLED", *AFTER_CONFIRMED)
CONFIRMED_OR_LATER = re.compile("^(" + "|".join(("CONFIRMED", *AFTER_CONFIRMED)) + ")$")
ANY_FINAL = re.compile("^(" + "|".join(FINAL) + ")$")


@pytest.fixture
def gateway(system: Settings) -> str:
    return system.service_url(system.gateway_port)


@pytest.fixture
def operator_password(system: Settings) -> str:
    """The demo operator's password, from the settings the suite loads (the generated secrets,
    which the gateway started by the suite was given too)."""
    password = system.demo_operator_password
    if password is None:
        pytest.fail("DEMO_OPERATOR_PASSWORD is not set: the gateway made no demo operator")
    return password.get_secret_value()


@pytest.fixture
async def operator(gateway: str, operator_password: str) -> dict[str, str]:
    """A bearer header of the demo operator's."""
    async with httpx.AsyncClient(base_url=gateway, timeout=10) as client:
        answer = await client.post(
            "/auth/login", json={"email": DEMO_OPERATOR_EMAIL, "password": operator_password}
        )
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def send(settings: Settings, item_id: str, quantity: int = 1) -> uuid.UUID:
    order = ValidatedOrder(
        user_id="dashboard-e2e", items=[OrderItemIn(item_id=item_id, quantity=quantity)]
    )
    return tracking.send_order(settings, order)


async def test_sse_stream_shows_an_order_until_its_final_status(
    system: Settings, gateway: str, operator: dict[str, str], test_item: tuple[str, Decimal]
) -> None:
    seen: list[str] = []
    async with (
        httpx.AsyncClient(base_url=gateway, timeout=20) as client,
        client.stream("GET", "/dashboard/events", headers=operator) as stream,
    ):
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.aiter_lines()
        order_id: uuid.UUID | None = None
        event = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = await asyncio.wait_for(anext(lines), timeout=15)
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: ") and event == "snapshot":
                snapshot = json.loads(line.removeprefix("data: "))
                assert {"orders", "stats"} <= snapshot.keys()
                order_id = await asyncio.to_thread(send, system, test_item[0])
            elif line.startswith("data: ") and event == "order":
                card = json.loads(line.removeprefix("data: "))
                if card["order_id"] == str(order_id):
                    seen.append(card["status"])
                    if card["status"] in FINAL:
                        break
    assert seen and seen[0] == "RECEIVED" and CONFIRMED_OR_LATER.match(seen[-1]), seen


async def test_metrics_on_every_service(system: Settings) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        for name in processes.SERVICES:
            port = getattr(system, PORT_SETTING[name])
            response = await client.get(system.service_url(port) + "/metrics")
            assert response.status_code == 200, name
            assert f'service="{name}"' in response.text, name
            assert "foodflow_http_requests_total" in response.text, name
            if name == "inventory_service":
                assert 'foodflow_stock_level{item_id="sushi-set"}' in response.text
            if name in ("order_manager", "gateway"):
                assert "foodflow_consumer_lag{" in response.text, name


async def test_timeline_endpoint_404_for_an_unknown_order(
    gateway: str, operator: dict[str, str]
) -> None:
    async with httpx.AsyncClient(base_url=gateway, timeout=10) as client:
        response = await client.get(f"/dashboard/orders/{uuid.uuid4()}", headers=operator)
        assert response.status_code == 404
        bad = await client.post("/dashboard/test-order", json={"items": []}, headers=operator)
        assert bad.status_code == 422
        for path in ("/dashboard/orders", "/dashboard/events"):
            assert (await client.get(path)).status_code == 401, path


# --- in the browser ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def browser(infra: Settings) -> AsyncIterator[Browser]:
    executable = require_chromium()  # installed by `make test` before the suite
    with tempfile.TemporaryDirectory(prefix="foodflow-chromium-") as profile:
        async with async_playwright() as pw:
            context = await pw.chromium.launch_persistent_context(
                profile,
                executable_path=executable,
                headless=True,
                args=list(CHROMIUM_ARGS),
                viewport={"width": 1400, "height": 1000},
            )
            yield context  # type: ignore[misc]
            await context.close()


@pytest.fixture
async def page(
    browser: Browser, gateway: str, operator_password: str, test_item: tuple[str, Decimal]
) -> AsyncIterator[Page]:
    # test_item first: the page reads the menu once, when it loads.
    page = await browser.new_page()
    await page.goto(gateway + "/")
    await expect(page.locator("#connection")).to_have_attribute("data-state", "logged-out")
    await page.get_by_label("Email").fill(DEMO_OPERATOR_EMAIL)
    await page.get_by_label("Password").fill(operator_password)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    yield page
    await page.close()


async def test_board_shows_an_order_sent_through_kafka(
    page: Page, system: Settings, test_item: tuple[str, Decimal]
) -> None:
    seen = page.locator("#orders-seen")
    before = int(await seen.inner_text())
    order_id = await asyncio.to_thread(send, system, test_item[0])

    row = page.locator(f'tr[data-order-id="{order_id}"]')
    await expect(row).to_have_attribute("data-status", CONFIRMED_OR_LATER, timeout=15_000)
    await expect(row.locator("td.total")).to_contain_text("EUR")
    # the counters move (stats arrive every 2 s)
    await expect(seen).not_to_have_text(str(before), timeout=5_000)
    assert int(await page.locator("#count-CONFIRMED .n").inner_text()) >= 1
    # stock shows the test item, the couriers panel says what it can
    await expect(page.locator(f'#stock-list li[data-item-id="{test_item[0]}"]')).to_be_visible()
    await expect(page.locator("#couriers")).not_to_have_text("Loading…")

    await row.get_by_role("button").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_be_visible()
    await expect(dialog.locator("ol.timeline")).to_contain_text("v1 RECEIVED")
    # the publish time is on the order's events: each step shows its time since then
    await expect(dialog.locator("ol.timeline li.published")).to_be_visible()
    await expect(dialog.locator("ol.timeline .since").first).to_contain_text("+")
    await expect(dialog.locator("ol.timeline")).to_contain_text("v3 CONFIRMED")

    ARTIFACTS.mkdir(exist_ok=True)
    await page.keyboard.press("Escape")
    await page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000


async def test_placing_an_order_from_the_form(page: Page, test_item: tuple[str, Decimal]) -> None:
    item_id = test_item[0]
    await page.locator(f"#qty-{item_id}").fill("2")
    await page.get_by_role("button", name="Place order").click()
    result = page.locator("#order-result")
    await expect(result).to_have_attribute("data-ok", "true")
    order_id = await result.get_attribute("data-order-id")
    demo_customer = await result.get_attribute("data-user-id")
    assert order_id is not None and demo_customer is not None
    row = page.locator(f'tr[data-order-id="{order_id}"]')
    await expect(row).to_have_attribute("data-status", CONFIRMED_OR_LATER, timeout=15_000)
    # customers are shown by name and email, the id kept for whoever needs it
    user = row.locator("td.user")
    await expect(user).to_have_attribute("data-user-id", demo_customer)
    await expect(user).to_contain_text("demo-customer@foodflow.local")


async def test_logging_out_stops_the_board(page: Page) -> None:
    await page.get_by_role("button", name="Log out").click()
    await expect(page.locator("#connection")).to_have_attribute("data-state", "logged-out")
    await expect(page.locator("#app")).to_be_hidden()
    await expect(page.get_by_label("Email")).to_be_visible()


async def test_ops_figures_cover_every_service_and_consumer_group(
    gateway: str, operator: dict[str, str]
) -> None:
    async with httpx.AsyncClient(base_url=gateway, timeout=10) as client:
        deadline = time.monotonic() + 30
        while True:
            ops = (await client.get("/dashboard/ops", headers=operator)).json()
            if ops["measured_at"] and len(ops["services"]) == len(processes.SERVICES):
                break
            assert time.monotonic() < deadline, ops
            await asyncio.sleep(1)
    assert ops["kafka_reachable"] is True, ops["problems"]
    health = {h["service"]: h for h in ops["services"]}
    assert set(health) == set(processes.SERVICES)
    for name, h in health.items():
        assert h["ready"], (name, h)
        assert h["event_loop_lag_seconds"] is not None, name  # every service measures its loop
        assert h["restarts"] is not None, name  # the supervisor's record, read by the gateway
    groups = {g["group_id"] for g in ops["groups"]}
    assert {"order_manager", "delivery_service"} <= groups, groups
    assert isinstance(ops["dead_letters"], int)


async def test_a_restarted_gateway_shows_the_same_figures_and_counts_its_restart(
    system: Settings, gateway: str, operator: dict[str, str], test_item: tuple[str, Decimal]
) -> None:
    """The figures used to start from zero after a gateway restart. Now the counts come from
    PostgreSQL and the charts are refilled from the orders of the last 15 minutes; the restart
    itself shows in the gateway's health row (the supervisor's record)."""
    order_id = await asyncio.to_thread(send, system, test_item[0])
    async with httpx.AsyncClient(base_url=gateway, timeout=10) as client:
        await wait_on_board(client, operator, order_id)
        gateway_process = processes.ServiceProcess("gateway", system, E2E_ENV)
        restarts = gateway_process.restart_record().restarts
        pid = process.read_pid(gateway_process.pidfile)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        await asyncio.to_thread(gateway_process.await_restart, pid, 60.0)

        # the token outlives the process: signed with the same keys
        stats = (await client.get("/dashboard/stats", headers=operator)).json()
        deadline = time.monotonic() + 30
        while stats["orders_seen"] == 0 or stats["counts_source"] != "postgres":
            assert time.monotonic() < deadline, stats
            await asyncio.sleep(1)
            stats = (await client.get("/dashboard/stats", headers=operator)).json()
        assert sum(p["received"] for p in stats["series"]) >= 1
        assert sum(p["finished"] for p in stats["series"]) >= 1
        assert stats["latency_p50_seconds"] is not None
        assert stats["counts"]["CONFIRMED"] + stats["counts"]["FAILED"] >= 1
        board = (await client.get("/dashboard/orders", headers=operator)).json()
        assert str(order_id) in {card["order_id"] for card in board["orders"]}

        while True:
            ops = (await client.get("/dashboard/ops", headers=operator)).json()
            health = {h["service"]: h for h in ops["services"]}
            if "gateway" in health:
                break
            assert time.monotonic() < deadline, ops
            await asyncio.sleep(1)
        assert health["gateway"]["restarts"] == restarts + 1, health["gateway"]


async def wait_on_board(
    client: httpx.AsyncClient, operator: dict[str, str], order_id: uuid.UUID
) -> None:
    deadline = time.monotonic() + 30
    while True:
        answer = await client.get(f"/dashboard/orders/{order_id}", headers=operator)
        if answer.status_code == 200 and answer.json()["stored"] is not None:
            return
        assert time.monotonic() < deadline, answer.text
        await asyncio.sleep(0.5)


# --- what a person sees, at a desktop's width and a phone's ------------------------------------

PANELS = ("#lag-panel", "#dlq-panel", "#health-panel", "#figure-latency", "#figure-throughput")


def send_unreadable(settings: Settings) -> None:
    """A message the order manager cannot read: one more dead letter."""
    tracking.publish_raw(settings, b"{not an order")


@pytest.mark.parametrize("width", [1400, 420])
async def test_the_panels_show_and_update_while_orders_flow(
    page: Page, system: Settings, test_item: tuple[str, Decimal], width: int
) -> None:
    await page.set_viewport_size({"width": width, "height": 1000})
    for panel in PANELS:
        await expect(page.locator(panel)).to_be_visible()
    # the operations figures arrive (measured every DASHBOARD_REFRESH_SECONDS)
    await expect(page.locator("#health-table tbody tr")).to_have_count(
        len(processes.SERVICES), timeout=20_000
    )
    await expect(page.locator('#health-table tr[data-ready="false"]')).to_have_count(0)
    await expect(page.locator("#lag-table tr[data-group='order_manager']")).to_be_visible()
    letters_before = await page.locator("#dead-letter-count").inner_text()
    seen_before = await page.locator("#orders-seen").inner_text()
    ops_before = await page.locator("#app").get_attribute("data-ops-at")

    # a short load: orders and one unreadable message, while the page is watched
    sent = [await asyncio.to_thread(send, system, test_item[0]) for _ in range(20)]
    await asyncio.to_thread(send_unreadable, system)
    last = page.locator(f'tr[data-order-id="{sent[-1]}"]')
    # the test item's stock may run out: any final status will do, the figures count it all
    await expect(last).to_have_attribute("data-status", ANY_FINAL, timeout=30_000)

    await expect(page.locator("#orders-seen")).not_to_have_text(seen_before, timeout=10_000)
    await expect(page.locator("#latency-p99")).not_to_have_text("\u2013")  # the "no value" dash
    await expect(page.locator("#dead-letter-count")).not_to_have_text(
        letters_before, timeout=20_000
    )
    await expect(page.locator("#dead-letter-list li code.replay").first).to_contain_text(
        "foodflow dlq replay "
    )
    assert await page.locator("#app").get_attribute("data-ops-at") != ops_before
    # the latency chart is uPlot's, with a time axis whose ticks read as times of day
    latency = page.locator("#chart-latency")
    await expect(latency.locator("canvas")).to_be_visible()
    ticks = await latency.locator(".uplot").get_attribute("data-time-ticks")
    assert ticks and re.search(r"\d{2}:\d{2}", ticks), ticks
    await expect(page.locator("#chart-throughput canvas")).to_be_visible()
    await expect(page.locator("#app")).not_to_have_attribute("data-chart-points", "0")
    await expect(page.locator("#status-latency tbody tr[data-status='RECEIVED']")).to_be_visible()
    # no panel wider than the page (nothing cut off at a phone's width)
    overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, overflow

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / f"dashboard-{width}.png"
    await page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000


async def test_the_page_needs_nothing_from_the_internet(
    browser: Browser, gateway: str, operator_password: str
) -> None:
    """Every request to anywhere but the gateway is refused; the page and its charts work."""
    page = await browser.new_page()
    outside: list[str] = []

    async def only_the_gateway(route: Route) -> None:
        if route.request.url.startswith(gateway):
            await route.continue_()
        else:
            outside.append(route.request.url)
            await route.abort()

    await page.route("**/*", only_the_gateway)
    await page.goto(gateway + "/")
    await page.get_by_label("Email").fill(DEMO_OPERATOR_EMAIL)
    await page.get_by_label("Password").fill(operator_password)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    await expect(page.locator("#chart-latency canvas")).to_be_visible()
    assert await page.evaluate("typeof uPlot") == "function"
    await page.close()
    assert outside == []


def test_no_static_file_points_outside() -> None:
    """No URL in the served files but in a vendored file's licence comment."""
    static = PROJECT_ROOT / "src" / "foodflow" / "gateway" / "static"
    for path in static.rglob("*"):
        if path.suffix not in (".html", ".js", ".css"):
            continue
        text = re.sub(r"/\*!.*?\*/", "", path.read_text(encoding="utf-8"), flags=re.S)
        found = re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}[/\w.-]*", text, flags=re.I)
        assert [u for u in found if "w3.org/2000/svg" not in u] == [], path


def test_screenshot_folder_is_ignored_by_git() -> None:
    assert "test-artifacts" in Path(PROJECT_ROOT / ".gitignore").read_text()
