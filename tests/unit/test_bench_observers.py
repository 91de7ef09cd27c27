"""The bench's PostgreSQL and Redis observers, one step at a time, on fakes."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from redis.exceptions import ConnectionError as RedisConnectionError

from foodflow.contracts.orders import order_status_key
from foodflow.platform.config import Settings
from foodflow.tools.bench.load import LoadRun


class FakeConnection:
    def __init__(self, stored: set[uuid.UUID]) -> None:
        self.stored = stored
        self.asked: list[list[uuid.UUID]] = []

    async def fetch(self, query: str, ids: list[uuid.UUID]) -> list[dict[str, Any]]:
        self.asked.append(ids)
        return [{"id": str(i), "status": "CONFIRMED"} for i in ids if i in self.stored]

    async def close(self) -> None:
        pass


class FakeRedis:
    def __init__(self, statuses: dict[str, str], failures: int = 0) -> None:
        self.statuses = statuses
        self.failures = failures

    async def mget(self, keys: list[str]) -> list[bytes | None]:
        if self.failures:
            self.failures -= 1
            raise RedisConnectionError("restarting")
        return [
            orjson.dumps({"status": self.statuses[k]}) if k in self.statuses else None for k in keys
        ]


def sent_orders(count: int) -> LoadRun:
    """A run that has sent `count` orders, none of them seen anywhere yet."""
    run = LoadRun(Settings(), rate=None, duration=1, warmup=0)
    for i in range(count):
        order_id = uuid.uuid4()
        run.ids.append(order_id)
        run.index[str(order_id).encode()] = i
        run.res.status.append(None)
        run.res.confirmed_at.append(None)
        run.res.persisted_at.append(None)
        run.res.redis_ok.append(False)
        run.res.due.append(0.0)
    return run


def final(run: LoadRun, i: int, status: str = "CONFIRMED") -> None:
    run.res.status[i] = status
    run.res.confirmed_at[i] = 1.0


async def test_postgres_is_asked_for_final_orders_then_for_all_once_sending_is_done() -> None:
    run = sent_orders(3)
    conn = FakeConnection(stored={run.ids[0], run.ids[2]})
    run._conn = conn
    final(run, 0)

    await run._poll_postgres()
    assert conn.asked == [[run.ids[0]]]
    assert run.res.persisted_at[0] is not None and run.done_count == 1

    run._sending_done.set()
    await run._poll_postgres()
    assert conn.asked[-1] == [run.ids[1], run.ids[2]]
    assert run.done_count == 2 and not run._all_persisted.is_set()

    conn.stored.add(run.ids[1])
    await run._poll_postgres()
    assert conn.asked[-1] == [run.ids[1]]
    await run._poll_postgres()
    assert run._all_persisted.is_set() and run.done_count == 3


async def test_a_lost_postgres_connection_is_dropped_for_the_next_step() -> None:
    class Broken(FakeConnection):
        async def fetch(self, query: str, ids: list[uuid.UUID]) -> list[dict[str, Any]]:
            raise ConnectionResetError("server closed the connection")

    run = sent_orders(1)
    final(run, 0)
    run._conn = Broken(set())
    await run._poll_postgres()
    assert run._conn is None and run.res.persisted_at[0] is None


async def test_redis_must_show_the_final_status_and_is_retried_while_down() -> None:
    run = sent_orders(2)
    final(run, 0, "FAILED")
    final(run, 1, "CONFIRMED")
    redis = FakeRedis({order_status_key(run.ids[0]): "FAILED"}, failures=1)

    await run._check_redis(redis)  # type: ignore[arg-type]
    assert run.res.redis_ok == [True, False]
    run._sending_done.set()
    redis.statuses[order_status_key(run.ids[1])] = "CONFIRMED"
    await run._check_redis(redis)  # type: ignore[arg-type]
    assert run.res.redis_ok == [True, True] and run._all_in_redis.is_set()
