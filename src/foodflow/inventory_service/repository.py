"""PostgreSQL adapter of the inventory: reads, and a unit of work for stock changes.

Every query is parameterised. A unit of work is one transaction on one pooled connection:
it commits only when `commit()` is called and rolls back otherwise.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from types import TracebackType

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from foodflow.inventory_service.domain import Reservation, ReservationStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CatalogueItem:
    item_id: str
    name: str
    price: Decimal
    stock: int


class PostgresUnitOfWork:
    """One transaction: `async with uow: ... await uow.commit()`."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._connection: PoolConnectionProxy | None = None
        self._transaction: asyncpg.transaction.Transaction | None = None

    async def __aenter__(self) -> PostgresUnitOfWork:
        connection = await self._pool.acquire()
        try:
            transaction = connection.transaction()
            await transaction.start()
        except BaseException:
            await self._pool.release(connection)
            raise
        self._connection = connection
        self._transaction = transaction
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        connection, transaction = self._connection, self._transaction
        self._connection = self._transaction = None
        if connection is None or transaction is None:
            return
        try:
            if connection.is_in_transaction():
                await transaction.rollback()
        finally:
            await self._pool.release(connection)

    @property
    def connection(self) -> PoolConnectionProxy:
        if self._connection is None:
            raise RuntimeError("the unit of work is not open; use `async with`")
        return self._connection

    async def commit(self) -> None:
        if self._transaction is None:
            raise RuntimeError("the unit of work is not open; use `async with`")
        await self._transaction.commit()

    async def lock_order(self, order_id: str) -> None:
        """Serialise requests for the same order until this transaction ends.

        The row lock of `get_reservation` cannot do it for a reservation that does not exist
        yet; a transaction-scoped advisory lock keyed by the order id can.
        """
        await self.connection.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0))", order_id
        )

    async def get_reservation(self, order_id: str) -> Reservation | None:
        """The order's reservation, row-locked until this transaction ends."""
        row = await self.connection.fetchrow(
            "SELECT order_id, state, items, detail FROM stock_reservations "
            "WHERE order_id = $1::uuid FOR UPDATE",
            order_id,
        )
        if row is None:
            return None
        detail = json.loads(row["detail"])
        return Reservation(
            order_id=str(row["order_id"]),
            status=ReservationStatus(row["state"]),
            items=json.loads(row["items"]),
            unknown_items=tuple(detail.get("unknown_items", ())),
            short_items=tuple(detail.get("short_items", ())),
        )

    async def lock_stock(self, item_ids: Iterable[str]) -> dict[str, int]:
        """Stock of each known item among `item_ids`, row-locked in item_id order."""
        rows = await self.connection.fetch(
            "SELECT item_id, stock FROM inventory_items WHERE item_id = ANY($1::text[]) "
            "ORDER BY item_id FOR UPDATE",
            list(item_ids),
        )
        return {row["item_id"]: row["stock"] for row in rows}

    async def take_stock(self, item_id: str, quantity: int) -> bool:
        """Decrement stock; False (and no change) when the item lacks `quantity`."""
        result = await self.connection.execute(
            "UPDATE inventory_items SET stock = stock - $2, updated_at = now() "
            "WHERE item_id = $1 AND stock >= $2",
            item_id,
            quantity,
        )
        return result == "UPDATE 1"

    async def return_stock(self, item_id: str, quantity: int) -> bool:
        result = await self.connection.execute(
            "UPDATE inventory_items SET stock = stock + $2, updated_at = now() WHERE item_id = $1",
            item_id,
            quantity,
        )
        return result == "UPDATE 1"

    async def add_reservation(self, reservation: Reservation) -> None:
        await self.connection.execute(
            "INSERT INTO stock_reservations (order_id, state, items, detail) "
            "VALUES ($1::uuid, $2, $3::jsonb, $4::jsonb)",
            reservation.order_id,
            reservation.status.value,
            json.dumps(dict(reservation.items)),
            json.dumps(
                {
                    "unknown_items": list(reservation.unknown_items),
                    "short_items": list(reservation.short_items),
                }
            ),
        )

    async def save_status(self, reservation: Reservation) -> None:
        await self.connection.execute(
            "UPDATE stock_reservations SET state = $2, updated_at = now() "
            "WHERE order_id = $1::uuid",
            reservation.order_id,
            reservation.status.value,
        )


class InventoryRepository:
    """Read queries over the pool, and units of work for changes."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    def unit_of_work(self) -> PostgresUnitOfWork:
        return PostgresUnitOfWork(self._pool)

    async def stock_levels(self, item_ids: Iterable[str]) -> dict[str, int]:
        """Current stock of each known item among `item_ids` (no locks: a snapshot)."""
        rows = await self._pool.fetch(
            "SELECT item_id, stock FROM inventory_items WHERE item_id = ANY($1::text[])",
            list(item_ids),
        )
        return {row["item_id"]: row["stock"] for row in rows}

    async def expired_reservations(self, older_than_seconds: float, limit: int = 200) -> list[str]:
        """Orders whose stock has been RESERVED longer than any live saga takes."""
        rows = await self._pool.fetch(
            "SELECT order_id FROM stock_reservations WHERE state = 'RESERVED'"
            " AND created_at < now() - make_interval(secs => $1) ORDER BY created_at LIMIT $2",
            older_than_seconds,
            limit,
        )
        return [str(row["order_id"]) for row in rows]

    async def menu(self) -> list[CatalogueItem]:
        rows = await self._pool.fetch(
            "SELECT item_id, name, price, stock FROM inventory_items ORDER BY item_id"
        )
        return [
            CatalogueItem(row["item_id"], row["name"], row["price"], row["stock"]) for row in rows
        ]
