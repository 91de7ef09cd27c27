"""Runs chaos against the running system: steady orders, random faults, recovery, verdict."""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

import asyncpg
import orjson
import redis.asyncio as aioredis
from confluent_kafka import KafkaError, Message

from foodflow.contracts import topics
from foodflow.contracts.ids import derive_order_id
from foodflow.contracts.orders import DeadLetter, OrderStatus
from foodflow.inventory_service.repository import CatalogueItem, InventoryRepository
from foodflow.orders import records, status_store
from foodflow.platform.config import Settings
from foodflow.platform.periodic import periodic_task
from foodflow.platform.retry import retry_async
from foodflow.tools import processes
from foodflow.tools.chaos import checks
from foodflow.tools.chaos.faults import Fault, apply
from foodflow.tools.kafka_io import read_since, tool_producer

ITEMS_PER_RUN = 8
# librdkafka reports every refused reconnect while a broker restarts; chaos causes those on
# purpose and reports delivery failures itself, so its clients' own logs stay quiet.
QUIET_KAFKA_LOG = logging.getLogger("foodflow.tools.chaos.librdkafka")
QUIET_KAFKA_LOG.setLevel(logging.CRITICAL)
INFRA = ("kafka", "redis", "postgres")
RECOVERY_CHECK_SECONDS = 1.0


@dataclass
class ChaosConfig:
    orders: int = 10_000
    rate: float = 100.0  # orders per second
    kills_per_service: int = 1
    restart_infra: bool = True
    invalid_ratio: float = 0.01
    without_id_ratio: float = 0.2
    recover_timeout: float = 600.0
    seed: int | None = None
    service_env: dict[str, str] | None = None
    keep_items: bool = False  # leave the run's menu items in place, to inspect their stock


@dataclass
class ChaosReport:
    sent: int
    invalid_sent: int
    outcomes: dict[str, int]
    lost: list[str]
    duplicated: list[str]
    stuck: list[str]
    inconsistent: list[str]
    invalid_not_failed: list[str]
    stock_drift: dict[str, int]
    dead_letters: int
    faults: list[str]
    recover_seconds: float | None
    duration_seconds: float
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not (
            self.lost
            or self.duplicated
            or self.stuck
            or self.inconsistent
            or self.invalid_not_failed
            or self.stock_drift
            or self.recover_seconds is None
            or self.dead_letters < self.invalid_sent
        )


Progress = Callable[[str, int, int], None]


def dead_letter_source(msg: Message) -> tuple[str, int, int]:
    """The source a dead letter names (itself, for a message that is no letter)."""
    try:
        letter = DeadLetter.model_validate_json(msg.value() or b"")
    except ValueError:
        return msg.topic() or "", msg.partition() or 0, msg.offset() or 0
    return letter.source_topic, letter.source_partition, letter.source_offset


def plan_faults(cfg: ChaosConfig, window: float, rng: random.Random) -> list[Fault]:
    """Faults at random moments within the sending window, infrastructure restarts spread out."""
    faults = [
        Fault(rng.uniform(0.1, 0.9) * window, "kill", name)
        for name in processes.SERVICES
        for _ in range(cfg.kills_per_service)
    ]
    if cfg.restart_infra:
        for n, name in enumerate(INFRA):
            faults.append(Fault(window * (0.2 + 0.25 * n), "restart", name))
    return sorted(faults, key=lambda f: f.at)


class ChaosRun:
    def __init__(self, settings: Settings, cfg: ChaosConfig, progress: Progress) -> None:
        self.settings = settings
        self.cfg = cfg
        self.progress = progress
        self.rng = random.Random(cfg.seed)
        self.tag = uuid.uuid4().hex[:8]
        self.items = [f"chaos-{self.tag}-{n}" for n in range(ITEMS_PER_RUN)]
        self.expected: dict[str, dict[str, int]] = {}
        self.expected_invalid: set[str] = set()
        self.invalid_sent = 0
        self.delivered = 0
        self.delivery_errors: list[str] = []
        self.faults_done: list[str] = []

    # --- set-up -------------------------------------------------------------------------------
    async def create_items(self, conn: asyncpg.Connection) -> dict[str, int]:
        # Enough stock for about 70 % of the demand, so OUT_OF_STOCK happens too.
        per_item = max(1, int(self.cfg.orders * 2 * 2 * 0.7 / ITEMS_PER_RUN))
        await InventoryRepository(conn).put_items(
            CatalogueItem(i, f"chaos item {i}", Decimal("5.00"), per_item) for i in self.items
        )
        return dict.fromkeys(self.items, per_item)

    async def remove_items(self) -> None:
        """Take the run's items off the menu once audited (orders keep their lines)."""
        conn = await connect_retrying(self.settings.postgres_dsn)
        try:
            await InventoryRepository(conn).remove_items(self.items)
        finally:
            await conn.close()

    # --- sending ------------------------------------------------------------------------------
    def _order_payload(self, n: int) -> tuple[bytes, str | None, dict[str, int] | None]:
        roll = self.rng.random()
        if roll < self.cfg.invalid_ratio:
            self.invalid_sent += 1
            if self.rng.random() < 0.5:
                return b"{not json at all " + str(n).encode(), f"chaos-bad-{self.tag}-{n}", None
            order_id = str(uuid.uuid4())
            self.expected_invalid.add(order_id)
            malformed = {
                "order_id": order_id,
                "user_id": "chaos",
                "items": [{"item_id": "x", "quantity": 0}],
            }
            return orjson.dumps(malformed), order_id, None
        chosen = self.rng.sample(self.items, self.rng.randint(1, 2))
        items = {item: self.rng.randint(1, 3) for item in chosen}
        body: dict[str, object] = {
            "user_id": f"chaos-user-{n % 50}",
            "items": [{"item_id": i, "quantity": q} for i, q in items.items()],
        }
        if self.rng.random() < self.cfg.without_id_ratio:
            return orjson.dumps(body), None, items  # the seed's way: no key, no id
        order_id = str(uuid.uuid4())
        body["order_id"] = order_id
        self.expected[order_id] = items
        return orjson.dumps(body), order_id, items

    async def send_orders(self, started: float) -> None:
        producer = tool_producer(
            self.settings,
            {
                "linger.ms": 5,
                # Outlive a broker restart: keep retrying rather than dropping an order.
                "message.timeout.ms": 600_000,
                "logger": QUIET_KAFKA_LOG,
            },
        )

        def delivered(
            err: KafkaError | None, msg: Message, *, items: dict[str, int] | None
        ) -> None:
            if err is not None:
                self.delivery_errors.append(str(err))
                return
            self.delivered += 1
            if items is not None and msg.key() is None:
                order_id = derive_order_id(
                    msg.topic() or "", msg.partition() or 0, msg.offset() or 0
                )
                self.expected[str(order_id)] = items

        for n in range(self.cfg.orders):
            due = started + n / self.cfg.rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            value, key, items = self._order_payload(n)
            producer.produce(
                topics.VALIDATED_ORDERS,
                value=value,
                key=key,
                on_delivery=functools.partial(delivered, items=items),
            )
            producer.poll(0)
            if n % 50 == 0:
                self.progress("sending", n, self.cfg.orders)
        self.progress("sending", self.cfg.orders, self.cfg.orders)
        while await asyncio.to_thread(producer.flush, 1.0) > 0:
            self.progress("flushing", self.delivered, self.cfg.orders)

    async def inject_faults(self, faults: list[Fault], started: float) -> None:
        for fault in faults:
            delay = started + fault.at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            t0 = time.monotonic()
            await asyncio.to_thread(apply, self.settings, fault, self.cfg.service_env)
            self.faults_done.append(
                f"{fault.describe()} at {fault.at:.1f}s ({time.monotonic() - t0:.1f}s)"
            )
            self.progress("faults", len(self.faults_done), len(faults))

    # --- observing ----------------------------------------------------------------------------
    async def read_stores(
        self, conn: asyncpg.Connection, rds: aioredis.Redis, o: checks.Observed
    ) -> None:
        ids = list(checks.all_orders(o))
        o.postgres = await records.stored_statuses(conn, ids)
        # The current state's truth (order_state); Redis is only its cache and may be flushed.
        o.redis = await status_store.stored_status_values(conn, ids)
        inventory = InventoryRepository(conn)
        o.current_stock = await inventory.stock_levels(self.items)
        o.held_reservations = await inventory.held_reservations(ids)

    def read_topics(self, since_ms: int, o: checks.Observed) -> int:
        """Status events per order from both output topics; returns how many messages were
        dead-lettered (letters collapsed by source: a crash can repeat one)."""
        wanted = {oid.encode() for oid in checks.all_orders(o)}
        dead: set[tuple[str, int, int]] = set()
        for topic in (
            topics.ORDER_STATUS_UPDATES,
            topics.DB_WRITE_ORDER_STATUS,
            topics.DEAD_LETTER,
        ):
            for msg in read_since(
                self.settings,
                topic,
                since_ms,
                group="chaos-audit",
                timeout=30,
                logger=QUIET_KAFKA_LOG,
            ):
                if topic == topics.DEAD_LETTER:
                    dead.add(dead_letter_source(msg))
                    continue
                key, value = msg.key(), msg.value()
                if key not in wanted or key is None or value is None:
                    continue
                event = orjson.loads(value)
                oid = key.decode()
                if topic == topics.ORDER_STATUS_UPDATES:
                    o.events.setdefault(oid, []).append(
                        (event["version"], event["status"], event.get("reason"))
                    )
                else:
                    o.final_events.setdefault(oid, []).append((event["version"], event["status"]))
        return len(dead)

    async def run(self) -> ChaosReport:
        s = self.settings
        conn = await asyncpg.connect(s.postgres_dsn)
        try:
            initial = await self.create_items(conn)
        finally:
            await conn.close()
        since_ms = int(time.time() * 1000) - 1000
        window = self.cfg.orders / self.cfg.rate
        faults = plan_faults(self.cfg, window, self.rng)
        started = time.monotonic()
        await asyncio.gather(self.send_orders(started), self.inject_faults(faults, started))
        disturbed_until = time.monotonic()

        observed = checks.Observed(
            expected=self.expected,
            expected_invalid=self.expected_invalid,
            final_statuses=frozenset(s.value for s in OrderStatus.LEFT_SAGA),
            initial_stock=initial,
        )
        recovered_at = await self.wait_for_recovery(observed)
        dead = await asyncio.to_thread(self.read_topics, since_ms, observed)
        if not self.cfg.keep_items:
            await self.remove_items()
        total = len(observed.expected) + len(observed.expected_invalid)
        return ChaosReport(
            sent=self.cfg.orders,
            invalid_sent=self.invalid_sent,
            outcomes=dict(checks.outcome_counts(observed.postgres, checks.all_orders(observed))),
            lost=checks.lost(observed),
            duplicated=checks.duplicated(observed),
            stuck=checks.stuck(observed),
            inconsistent=checks.inconsistent(observed),
            invalid_not_failed=checks.invalid_not_failed(observed),
            stock_drift=checks.stock_drift(observed),
            dead_letters=dead,
            faults=self.faults_done,
            recover_seconds=None if recovered_at is None else recovered_at - disturbed_until,
            duration_seconds=time.monotonic() - started,
            notes=[
                f"{total} orders tracked, {len(self.delivery_errors)} delivery errors",
                *self.delivery_errors[:5],
            ],
        )

    async def wait_for_recovery(self, o: checks.Observed) -> float | None:
        """Look every few seconds until every order is final everywhere and no stock drifts; the
        time that was first seen, or None on timeout."""
        conn = await connect_retrying(self.settings.postgres_dsn)
        rds = aioredis.from_url(self.settings.redis_url)
        recovered = asyncio.Event()
        recovered_at = 0.0

        async def look() -> None:
            nonlocal conn, recovered_at
            try:
                await self.read_stores(conn, rds, o)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await conn.close()
                conn = await connect_retrying(self.settings.postgres_dsn)
                return
            total = len(checks.all_orders(o))
            done = total - len(checks.lost(o))
            self.progress("recovering", done, total)
            if done == total and not checks.stock_drift(o) and not recovered.is_set():
                recovered_at = time.monotonic()
                recovered.set()

        try:
            async with periodic_task(
                look, RECOVERY_CHECK_SECONDS, what="chaos recovery check", initial_delay=0
            ):
                async with asyncio.timeout(self.cfg.recover_timeout):
                    await recovered.wait()
        except TimeoutError:
            return None
        finally:
            await conn.close()
            await rds.aclose()
        return recovered_at


async def connect_retrying(dsn: str, attempts: int = 30) -> asyncpg.Connection:
    """Connect, through a PostgreSQL restart: `attempts` tries about a second apart."""
    connection: asyncpg.Connection = await retry_async(
        lambda: asyncpg.connect(dsn, timeout=5),
        retry_on=(OSError, asyncpg.PostgresError),
        attempts=attempts,
        base_delay=1.0,
        max_delay=2.0,
        # Quiet: restarting PostgreSQL is what chaos does, and the progress display shows waits.
        on_retry=lambda attempt, exc, delay: None,
    )
    return connection
