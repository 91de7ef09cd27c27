"""Runs chaos against the running system: steady orders, random faults, recovery, verdict."""

from __future__ import annotations

import asyncio
import functools
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
from redis.exceptions import RedisError

from foodflow.contracts import topics
from foodflow.contracts.ids import derive_order_id
from foodflow.contracts.money import to_cents
from foodflow.contracts.orders import DeadLetter, OrderStatus
from foodflow.inventory_service.repository import CatalogueItem, InventoryRepository
from foodflow.orders import status_store
from foodflow.payment_service.repository import net_charges, refund_counts
from foodflow.platform.config import Settings
from foodflow.platform.errors import InfraError
from foodflow.platform.periodic import periodic_task
from foodflow.platform.retry import retry_async
from foodflow.restaurant_service import repository as kitchen_menu
from foodflow.tools import processes, restore
from foodflow.tools.chaos import checks
from foodflow.tools.chaos.brokers import (
    BROKER_FAULTS,
    DOWNTIME_SECONDS,
    IN_SYNC_WITHIN_SECONDS,
    wait_in_sync,
)
from foodflow.tools.chaos.faults import (
    OUTAGE_TARGETS,
    POISON_KINDS,
    QUIET_KAFKA_LOG,
    Fault,
    FaultRecord,
    apply,
    service,
)
from foodflow.tools.kafka_io import read_since, tool_producer

ITEMS_PER_RUN = 8
INFRA = ("kafka", "redis", "postgres")
RECOVERY_CHECK_SECONDS = 1.0
# The service `kill2` runs as several instances for the run (`order_managers`), and kills one of.
SCALED = "order_manager"
# Faults that kill a process: after one, a dead letter may be published again (see
# `checks.repeated_letters`). A broker too: the group coordinator it was may have been the one
# that held a consumer's commit, and the partition the letter came from may then be handed to
# another instance, which has not seen the letter go out.
CRASHES = ("kill", "kill_one_of", "restart", *BROKER_FAULTS)
# Faults are this much longer apart than the longest stall allowed (see `inject_faults`).
SETTLE_MARGIN_SECONDS = 5.0
# With `kitchens`: the restaurant whose staff never answer, and where the customers live.
SILENT_KITCHEN = "napoli-oven"
BUSY_KITCHEN = "central-kitchen"
CHAOS_ADDRESS = {"address": "Chaosstrasse 1, Berlin", "lat": 52.515, "lon": 13.40}


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
    flushall: bool = True  # Redis FLUSHALL once, mid-run
    poison: tuple[str, ...] = POISON_KINDS  # one poison message of each kind
    outages: tuple[str, ...] = ()  # dependencies taken away for `outage_seconds` each
    outage_seconds: float = 30.0
    kill2: bool = True  # SIGKILL one of `order_managers` order manager instances
    order_managers: int = 2  # instances run for `kill2` (those not running are started)
    # A Kafka cluster of this many nodes, whose brokers chaos kills (0: none; the running
    # Kafka must then be that cluster, see `brokers.cluster_problem`).
    brokers: int = 0
    broker_faults: tuple[str, ...] = BROKER_FAULTS  # which of them, each once
    broker_downtime: float = DOWNTIME_SECONDS  # seconds a killed broker stays down
    # Every partition fully replicated again at most this long after a killed broker is back.
    in_sync_within: float = IN_SYNC_WITHIN_SECONDS
    grace_seconds: float | None = None  # the services' DEPENDENCY_GRACE_SECONDS; None: ours
    max_stall_seconds: float = 15.0  # the longest stall allowed after any single fault
    # Least time between a fault's moment and the next fault; None: max_stall_seconds + 5 s,
    # so that a stall over the limit shows whole after its own fault. 0 packs faults closer
    # (each stall is then cut at the next fault: stalls are told less well).
    settle_seconds: float | None = None
    # The restaurant faults: this share of orders carries a delivery address, so kitchens and
    # couriers take them on; the simulator plays the kitchens and couriers, its kitchens
    # reject `kitchen_reject_share` of them and the kitchen `silent_kitchen` (which cooks a
    # quarter of the run's items) never answers (RESTAURANT_TIMEOUT). The restaurant service
    # is among the services killed. Every such order must end DELIVERED or CANCELLED.
    kitchens: bool = False
    delivered_ratio: float = 0.3
    kitchen_reject_share: float = 0.2
    silent_kitchen: str = SILENT_KITCHEN


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
    charged_not_persisted: list[str] = field(default_factory=list)
    failed_by_short_fault: list[str] = field(default_factory=list)
    grace_seconds: float = 60.0
    bad_messages: int = 0  # malformed orders plus poison messages, each to be dead-lettered
    poison_sent: int = 0
    not_dead_lettered: list[str] = field(default_factory=list)
    courier_for_rejected: list[str] = field(default_factory=list)
    refunded_twice: list[str] = field(default_factory=list)
    to_deliver: int = 0  # orders sent with an address (`kitchens`)
    repeated_letters: int = 0
    crashes: int = 0  # kills and restarts: each may repeat a dead letter once
    stalls: list[tuple[str, float]] = field(default_factory=list)  # (fault, longest stall s)
    max_stall_seconds: float = 15.0
    # The longest stall of the whole run (any partition, any time but while a dependency was
    # away), and the fault it followed ("" before any).
    longest_stall: float = 0.0
    longest_stall_after: str = ""
    # Each broker fault, and the seconds from its broker being back until no partition was
    # under-replicated (None: still some after `in_sync_within`).
    in_sync: list[tuple[str, float | None]] = field(default_factory=list)
    # Each broker fault, and the seconds from the kill until its partitions were led elsewhere
    # (the controller's fencing of the dead node; None: not before it was back).
    leaders_moved: list[tuple[str, float | None]] = field(default_factory=list)
    in_sync_within: float = IN_SYNC_WITHIN_SECONDS

    @property
    def letters_once(self) -> bool:
        """Exactly once: a repeated letter is only excused by a crash that could cause it."""
        return self.repeated_letters == 0 or self.crashes > 0

    @property
    def in_sync_ok(self) -> bool:
        return all(
            seconds is not None and seconds <= self.in_sync_within for _, seconds in self.in_sync
        )

    def broken(self) -> dict[str, object]:
        """Every invariant the run broke, by name, with what broke it: all at once, so that
        one run shows all that is wrong (empty: it passed)."""
        limit = self.max_stall_seconds
        found: dict[str, object] = {
            "lost": self.lost,
            "duplicated": self.duplicated,
            "stuck": self.stuck,
            "inconsistent": self.inconsistent,
            "invalid not FAILED": self.invalid_not_failed,
            "stock drift": self.stock_drift,
            "charged but not persisted": self.charged_not_persisted,
            "FAILED by a short fault": self.failed_by_short_fault,
            "not dead-lettered": self.not_dead_lettered,
            "a courier sent for a rejected order": self.courier_for_rejected,
            "refunded more than once": self.refunded_twice,
            "dead letters repeated without a crash": not self.letters_once,
            f"stalls over {limit:g} s": [s for s in self.stalls if s[1] > limit],
            f"longest stall over {limit:g} s": self.longest_stall > limit,
            "under-replicated after a broker was back": not self.in_sync_ok,
            "did not recover": self.recover_seconds is None,
        }
        return {name: value for name, value in found.items() if value}

    @property
    def passed(self) -> bool:
        return not self.broken()


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
    if cfg.kill2:
        at = rng.uniform(0.1, 0.9) * window
        n = cfg.order_managers
        faults.append(Fault(at, "kill_one_of", SCALED, instance=rng.randrange(n), of=n))
    if cfg.brokers:
        # A random node, the leader of the most partitions, the controller: spread out (and
        # run one at a time, each broker back and in sync before the next fault).
        faults += [
            Fault(
                window * (0.15 + 0.3 * n),
                kind,
                "kafka",
                cfg.broker_downtime,
                instance=rng.randint(1, cfg.brokers) if kind == "kill_broker" else 0,
            )
            for n, kind in enumerate(cfg.broker_faults)
        ]
    if cfg.flushall:
        faults.append(Fault(rng.uniform(0.1, 0.9) * window, "flushall", "redis"))
    if cfg.poison:
        faults.append(Fault(rng.uniform(0.1, 0.9) * window, "poison", ",".join(cfg.poison)))
    # Outages spread evenly; faults run one at a time, so outages longer than their share of
    # the window push the faults after them later.
    faults += [
        Fault(window * (n + 0.5) / len(cfg.outages), "outage", target, cfg.outage_seconds)
        for n, target in enumerate(cfg.outages)
    ]
    unknown = (
        set(cfg.outages) - set(OUTAGE_TARGETS)
        | set(cfg.poison) - set(POISON_KINDS)
        | set(cfg.broker_faults) - set(BROKER_FAULTS)
    )
    if unknown:
        raise ValueError(f"unknown outage target, poison or broker fault: {sorted(unknown)}")
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
        self.faults_done: list[FaultRecord] = []
        self.sent_at: dict[str, float] = {}  # order → epoch s the broker took its message
        self.partitions: dict[str, int] = {}  # order → partition of its message
        self.bad_messages: list[checks.Coordinates] = []  # malformed or poison: dead letters
        self.to_deliver: set[str] = set()  # orders sent with a delivery address
        # How each service ran before the run: what chaos starts one again from.
        self.before: dict[str, restore.Started] = {}

    # --- set-up -------------------------------------------------------------------------------
    async def create_items(self, conn: asyncpg.Connection) -> dict[str, int]:
        # Enough stock for about 70 % of the demand, so OUT_OF_STOCK happens too.
        per_item = max(1, int(self.cfg.orders * 2 * 2 * 0.7 / ITEMS_PER_RUN))
        # Unlisted: off the public menu and the dashboard's stock while the run lasts.
        await InventoryRepository(conn).put_items(
            CatalogueItem(i, f"chaos item {i}", Decimal("5.00"), per_item, listed=False)
            for i in self.items
        )
        if self.cfg.kitchens:
            # A quarter of the items to the kitchen that never answers, the rest to one that
            # does; one minute of cooking each (the simulator's minutes are short).
            await kitchen_menu.put_on_menu(
                conn,
                [
                    (item, self.cfg.silent_kitchen if n % 4 == 0 else BUSY_KITCHEN, 1.0)
                    for n, item in enumerate(self.items)
                ],
            )
        return dict.fromkeys(self.items, per_item)

    async def remove_items(self) -> None:
        """Take the run's items off the menu once audited (orders keep their lines)."""
        conn = await connect_retrying(self.settings.postgres_dsn)
        try:
            await InventoryRepository(conn).remove_items(self.items)
            if self.cfg.kitchens:
                await kitchen_menu.take_off_menu(conn, self.items)
        finally:
            await conn.close()

    # --- sending ------------------------------------------------------------------------------
    def _order_payload(self, n: int) -> Outgoing:
        roll = self.rng.random()
        if roll < self.cfg.invalid_ratio:
            self.invalid_sent += 1
            if self.rng.random() < 0.5:
                value = b"{not json at all " + str(n).encode()
                return Outgoing(value, f"chaos-bad-{self.tag}-{n}", bad=True)
            order_id = str(uuid.uuid4())
            self.expected_invalid.add(order_id)
            malformed = {
                "order_id": order_id,
                "user_id": "chaos",
                "items": [{"item_id": "x", "quantity": 0}],
            }
            return Outgoing(orjson.dumps(malformed), order_id, order_id=order_id, bad=True)
        chosen = self.rng.sample(self.items, self.rng.randint(1, 2))
        items = {item: self.rng.randint(1, 3) for item in chosen}
        body: dict[str, object] = {
            "user_id": f"chaos-user-{n % 50}",
            "items": [{"item_id": i, "quantity": q} for i, q in items.items()],
        }
        deliver = self.cfg.kitchens and self.rng.random() < self.cfg.delivered_ratio
        if deliver:
            body["delivery_address"] = CHAOS_ADDRESS
        if self.rng.random() < self.cfg.without_id_ratio:
            # The seed's way: no key, no id.
            return Outgoing(orjson.dumps(body), None, items, deliver=deliver)
        order_id = str(uuid.uuid4())
        body["order_id"] = order_id
        self.expected[order_id] = items
        if deliver:
            self.to_deliver.add(order_id)
        return Outgoing(orjson.dumps(body), order_id, items, order_id, deliver=deliver)

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

        def delivered(err: KafkaError | None, msg: Message, *, out: Outgoing) -> None:
            if err is not None:
                self.delivery_errors.append(str(err))
                return
            self.delivered += 1
            where = (msg.topic() or "", msg.partition() or 0, msg.offset() or 0)
            order_id = out.order_id
            if out.items is not None and order_id is None:
                order_id = str(derive_order_id(*where))
                self.expected[order_id] = out.items
                if out.deliver:
                    self.to_deliver.add(order_id)
            if order_id is not None:
                self.sent_at[order_id] = msg.timestamp()[1] / 1000
                self.partitions[order_id] = where[1]
            if out.bad:
                self.bad_messages.append(where)

        for n in range(self.cfg.orders):
            due = started + n / self.cfg.rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            out = self._order_payload(n)
            producer.produce(
                topics.VALIDATED_ORDERS,
                value=out.value,
                key=out.key,
                on_delivery=functools.partial(delivered, out=out),
            )
            producer.poll(0)
            if n % 50 == 0:
                self.progress("sending", n, self.cfg.orders)
        self.progress("sending", self.cfg.orders, self.cfg.orders)
        while await asyncio.to_thread(producer.flush, 1.0) > 0:
            self.progress("flushing", self.delivered, self.cfg.orders)

    async def inject_faults(self, faults: list[Fault], started: float) -> None:
        """One fault at a time, each no earlier than its planned moment, nor than `settle`
        seconds after the system should have moved again after the one before: a stall then
        shows whole after the fault that caused it (`checks.stalls_after`)."""
        settle = self.cfg.settle_seconds
        if settle is None:
            settle = self.cfg.max_stall_seconds + SETTLE_MARGIN_SECONDS
        for fault in faults:
            delay = started + fault.at - time.monotonic()
            if self.faults_done:
                delay = max(delay, self.faults_done[-1].stall_from + settle - time.time())
            if delay > 0:
                await asyncio.sleep(delay)
            record = await asyncio.to_thread(
                apply,
                self.settings,
                fault,
                self.cfg.service_env,
                self.items[0],
                self.tag,
                self.before,
                self.cfg.in_sync_within,
            )
            for where, order_id in record.poisoned:
                self.bad_messages.append(where)
                if order_id is not None:
                    self.expected_invalid.add(order_id)
                    self.sent_at[order_id] = record.started
                    self.partitions[order_id] = where[1]
            self.faults_done.append(record)
            self.progress("faults", len(self.faults_done), len(faults))

    def describe(self, record: FaultRecord, run_started: float) -> str:
        detail = f"; {record.detail}" if record.detail else ""
        return (
            f"{record.fault.describe()} at {record.started - run_started:.1f}s"
            f" ({record.seconds:.1f}s{detail})"
        )

    # --- observing ----------------------------------------------------------------------------
    async def read_stores(
        self, conn: asyncpg.Connection, rds: aioredis.Redis, o: checks.Observed
    ) -> None:
        ids = list(checks.all_orders(o))
        rows = await stored_orders(conn, ids)
        o.postgres = {row["id"]: row["status"] for row in rows}
        o.reasons = {row["id"]: row["reason"] for row in rows}
        o.totals = {
            row["id"]: None if row["total"] is None else to_cents(row["total"]) for row in rows
        }
        o.charges = await net_charges(conn, ids)
        if self.cfg.kitchens:
            o.refunds = await refund_counts(conn, ids)
        # The current state's truth (order_state); Redis is only its cache and may be flushed.
        o.state = await status_store.stored_status_values(conn, ids)
        try:
            cached = await status_store.cached_status_values(rds, ids)
        except RedisError:
            cached = [None] * len(ids)  # a cache that is away holds nothing to contradict
        o.cache = {oid: status for oid, status in zip(ids, cached, strict=True) if status}
        inventory = InventoryRepository(conn)
        o.current_stock = await inventory.stock_levels(self.items)
        o.held_reservations = await inventory.held_reservations(ids)

    def read_topics(self, since_ms: int, o: checks.Observed) -> list[checks.Coordinates]:
        """Status events per order (and when each first became final) from both output topics;
        returns the source each dead letter since `since_ms` names, one per letter."""
        wanted = {oid.encode() for oid in checks.all_orders(o)}
        letters: list[checks.Coordinates] = []
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
                    letters.append(dead_letter_source(msg))
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
                    if event["status"] in o.final_statuses and oid not in o.final_at:
                        o.final_at[oid] = msg.timestamp()[1] / 1000
                else:
                    o.final_events.setdefault(oid, []).append((event["version"], event["status"]))
        return letters

    async def run(self) -> ChaosReport:
        s = self.settings
        conn = await asyncpg.connect(s.postgres_dsn)
        try:
            initial = await self.create_items(conn)
        finally:
            await conn.close()
        self.before = await asyncio.to_thread(restore.snapshot, s, processes.SERVICES)
        try:
            if self.cfg.brokers:
                await asyncio.to_thread(self.await_in_sync)
            scaled = await asyncio.to_thread(self.scale_for_kill2) if self.cfg.kill2 else []
            simulator = await asyncio.to_thread(self.play_kitchens) if self.cfg.kitchens else None
            try:
                return await self._run(initial)
            finally:
                await asyncio.to_thread(self.scale_back, scaled)
                if simulator is not None:
                    await asyncio.to_thread(self.stop_playing, simulator)
        finally:
            # Once audited, or when the run fails or is interrupted: the items go either way.
            if not self.cfg.keep_items:
                await self.remove_items()

    def await_in_sync(self) -> None:
        """A cluster with a partition under-replicated (a broker just started) would blame the
        run's first broker fault for what it found: wait until it is whole."""
        if wait_in_sync(self.settings, self.cfg.in_sync_within) is None:
            raise InfraError(
                "kafka",
                f"partitions still under-replicated after {self.cfg.in_sync_within:g}s",
                "`foodflow status` lists them; chaos starts once the cluster is whole",
            )

    def scale_for_kill2(self) -> list[processes.ServiceProcess]:
        """Run `order_managers` order managers for `kill2`; the instances this run started."""
        started = []
        for instance in range(1, self.cfg.order_managers):
            extra = service(self.settings, SCALED, self.cfg.service_env, self.before, instance)
            if not extra.is_running():
                extra.start()
                started.append(extra)
        return started

    def play_kitchens(self) -> bool:
        """(Re)start the simulator with the run's kitchen faults; whether it ran before."""
        simulator = processes.SimulatorProcess(self.settings)
        was_running = simulator.is_running()
        simulator.stop()
        simulator.start(
            env={
                "KITCHEN_SIM_REJECT_SHARE": str(self.cfg.kitchen_reject_share),
                "KITCHEN_SIM_SILENT": self.cfg.silent_kitchen,
            }
        )
        return was_running

    def stop_playing(self, was_running: bool) -> None:
        """Stop the run's simulator; start the plain one again if it ran before the run."""
        simulator = processes.SimulatorProcess(self.settings)
        simulator.stop()
        if was_running:
            simulator.start()

    def scale_back(self, started: list[processes.ServiceProcess]) -> None:
        """Stop the instances the run started (the others ran before it and keep running)."""
        for extra in reversed(started):
            extra.stop()

    async def _run(self, initial: dict[str, int]) -> ChaosReport:
        since_ms = int(time.time() * 1000) - 1000
        window = self.cfg.orders / self.cfg.rate
        faults = plan_faults(self.cfg, window, self.rng)
        started = time.monotonic()
        self.started_wall = started_wall = time.time()
        await asyncio.gather(self.send_orders(started), self.inject_faults(faults, started))
        disturbed_until = time.monotonic()

        observed = checks.Observed(
            expected=self.expected,
            expected_invalid=self.expected_invalid,
            final_statuses=frozenset(s.value for s in OrderStatus.LEFT_SAGA),
            initial_stock=initial,
            sent_at=self.sent_at,
            partitions=self.partitions,
            to_deliver=self.to_deliver,
        )
        recovered_at = await self.wait_for_recovery(observed)
        observed_until = time.time()
        letters = await asyncio.to_thread(self.read_topics, since_ms, observed)
        total = len(observed.expected) + len(observed.expected_invalid)
        grace = (
            self.cfg.grace_seconds
            if self.cfg.grace_seconds is not None
            else self.settings.dependency_grace_seconds
        )
        longest, longest_after = self.longest_stall(observed, observed_until)
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
            dead_letters=len(set(letters)),
            faults=[
                f"#{n} {self.describe(r, started_wall)}" for n, r in enumerate(self.faults_done, 1)
            ],
            recover_seconds=None if recovered_at is None else recovered_at - disturbed_until,
            duration_seconds=time.monotonic() - started,
            notes=[
                f"{total} orders tracked, {len(self.delivery_errors)} delivery errors",
                *self.delivery_errors[:5],
            ],
            charged_not_persisted=checks.charged_not_persisted(observed),
            failed_by_short_fault=checks.failed_by_short_fault(
                observed, [checks.Window(r.started, r.ended) for r in self.faults_done], grace
            ),
            grace_seconds=grace,
            bad_messages=len(self.bad_messages),
            poison_sent=sum(len(r.poisoned) for r in self.faults_done),
            not_dead_lettered=checks.not_dead_lettered(self.bad_messages, letters),
            courier_for_rejected=checks.courier_for_rejected(observed),
            refunded_twice=checks.refunded_twice(observed),
            to_deliver=len(self.to_deliver),
            repeated_letters=checks.repeated_letters(self.bad_messages, letters),
            crashes=sum(1 for r in self.faults_done if r.fault.kind in CRASHES),
            stalls=self.stalls(observed, observed_until),
            max_stall_seconds=self.cfg.max_stall_seconds,
            longest_stall=longest,
            longest_stall_after=longest_after,
            in_sync=[
                (f"#{n} {r.fault.describe()}", r.in_sync_seconds)
                for n, r in enumerate(self.faults_done, 1)
                if r.is_broker_fault
            ],
            in_sync_within=self.cfg.in_sync_within,
            leaders_moved=[
                (f"#{n} {r.fault.describe()}", r.leaders_moved_seconds)
                for n, r in enumerate(self.faults_done, 1)
                if r.is_broker_fault
            ],
        )

    def stalls(self, o: checks.Observed, until: float) -> list[tuple[str, float]]:
        """The longest stall after each fault (see `checks.stalls_after`)."""
        records = self.faults_done
        if not records:
            return []
        since = min(r.started for r in records)
        longest = checks.stalls_after(
            checks.stall_segments(o, since, until),
            [r.stall_from for r in records],
            [checks.Window(r.started, r.ended) for r in records if r.takes_a_dependency_away],
        )
        return [
            (f"#{n} {r.fault.describe()}", seconds)
            for n, (r, seconds) in enumerate(zip(records, longest, strict=True), 1)
        ]

    def longest_stall(self, o: checks.Observed, until: float) -> tuple[float, str]:
        """The longest stall from the first order sent to `until` (see
        `checks.longest_stall`), and the fault it followed ("" for none)."""
        records = self.faults_done
        stall = checks.longest_stall(
            checks.stall_segments(o, self.started_wall, until),
            [r.stall_from for r in records],
            [checks.Window(r.started, r.ended) for r in records if r.takes_a_dependency_away],
        )
        if stall is None:
            return 0.0, ""
        seconds, after = stall
        return seconds, "" if after is None else f"#{after + 1} {records[after].fault.describe()}"

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
            finished = done == total and not checks.stuck(o) and not checks.stock_drift(o)
            if finished and not recovered.is_set():
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


@dataclass(frozen=True)
class Outgoing:
    """One message chaos sends: its bytes and key, the items of a valid order, the order's id
    when chaos knows it before sending, and whether it must end as a dead letter."""

    value: bytes
    key: str | None
    items: dict[str, int] | None = None
    order_id: str | None = None
    bad: bool = False
    deliver: bool = False  # sent with a delivery address


async def stored_orders(conn: asyncpg.Connection, ids: list[str]) -> list[asyncpg.Record]:
    """Status, reason and total of each of these orders that has an `orders` row."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT order_id::text AS id, status, reason, total FROM orders"
        " WHERE order_id = ANY($1::uuid[])",
        ids,
    )
    return rows


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
