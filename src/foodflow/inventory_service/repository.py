"""PostgreSQL adapter of the inventory: reads, and a unit of work for stock changes.

Every query is parameterised. A unit of work is one transaction on one pooled connection:
it commits only when `commit()` is called and rolls back otherwise.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TypeAlias

import asyncpg

from foodflow.inventory_service.domain import Reservation, ReservationStatus, Shelf
from foodflow.platform.db.unit_of_work import PostgresTransaction

log = logging.getLogger(__name__)
_ITEM_COLUMNS = "item_id, name, price, stock, listed, available"


@dataclass(frozen=True)
class CatalogueItem:
    item_id: str
    name: str
    price: Decimal
    stock: int
    # On the public listing (the menu customers order from, the dashboard's stock); the items
    # of `foodflow bench` and `foodflow chaos` runs are not (migration 0002).
    listed: bool = True
    # Offered by its restaurant now; off the menu and short for orders when not (migration 0003).
    available: bool = True


class PostgresUnitOfWork(PostgresTransaction):
    """One transaction: `async with uow: ... await uow.commit()`."""

    async def lock_orders(self, order_ids: Collection[str]) -> None:
        """Serialise requests for the same orders until this transaction ends.

        Row locks cannot do it for reservations that do not exist yet; transaction-scoped
        advisory locks keyed by the order ids can. Taken in sorted order: no lock cycles.
        """
        await self.connection.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(id, 0))"
            " FROM (SELECT DISTINCT id FROM unnest($1::text[]) AS id ORDER BY id) AS ids",
            list(order_ids),
        )

    async def get_reservations(self, order_ids: Collection[str]) -> dict[str, Reservation]:
        """The orders' reservations (absent: none), row-locked until this transaction ends."""
        rows = await self.connection.fetch(
            "SELECT order_id, state, items, detail FROM stock_reservations"
            " WHERE order_id = ANY($1::uuid[]) ORDER BY order_id FOR UPDATE",
            list(order_ids),
        )
        reservations = {}
        for row in rows:
            detail = json.loads(row["detail"])
            order_id = str(row["order_id"])
            reservations[order_id] = Reservation(
                order_id=order_id,
                status=ReservationStatus(row["state"]),
                items=json.loads(row["items"]),
                unknown_items=tuple(detail.get("unknown_items", ())),
                short_items=tuple(detail.get("short_items", ())),
            )
        return reservations

    async def lock_stock(self, item_ids: Iterable[str]) -> Shelf:
        """Stock and availability of each known item among `item_ids`, row-locked in item_id
        order."""
        rows = await self.connection.fetch(
            "SELECT item_id, stock, available FROM inventory_items"
            " WHERE item_id = ANY($1::text[]) ORDER BY item_id FOR UPDATE",
            list(item_ids),
        )
        return _shelf(rows)

    async def change_stock(self, deltas: Mapping[str, int]) -> set[str]:
        """Add each delta to its item's stock (never below zero); the items that changed."""
        rows = await self.connection.fetch(
            "UPDATE inventory_items AS i SET stock = i.stock + d.delta, updated_at = now()"
            " FROM unnest($1::text[], $2::int[]) AS d(item_id, delta)"
            " WHERE i.item_id = d.item_id AND i.stock + d.delta >= 0 RETURNING i.item_id",
            list(deltas),
            list(deltas.values()),
        )
        return {row["item_id"] for row in rows}

    async def add_reservations(self, reservations: Sequence[Reservation]) -> None:
        await self.connection.execute(
            "INSERT INTO stock_reservations (order_id, state, items, detail)"
            " SELECT * FROM unnest($1::uuid[], $2::text[], $3::jsonb[], $4::jsonb[])",
            [r.order_id for r in reservations],
            [r.status.value for r in reservations],
            [json.dumps(dict(r.items)) for r in reservations],
            [
                json.dumps(
                    {"unknown_items": list(r.unknown_items), "short_items": list(r.short_items)}
                )
                for r in reservations
            ],
        )

    async def save_statuses(self, reservations: Sequence[Reservation]) -> None:
        await self.connection.execute(
            "UPDATE stock_reservations AS r SET state = s.state, updated_at = now()"
            " FROM unnest($1::uuid[], $2::text[]) AS s(order_id, state)"
            " WHERE r.order_id = s.order_id",
            [r.order_id for r in reservations],
            [r.status.value for r in reservations],
        )


def _shelf(rows: Iterable[asyncpg.Record]) -> Shelf:
    stock, unavailable = {}, set()
    for row in rows:
        stock[row["item_id"]] = row["stock"]
        if not row["available"]:
            unavailable.add(row["item_id"])
    return Shelf(stock, frozenset(unavailable))


Database: TypeAlias = asyncpg.Pool | asyncpg.Connection


class InventoryRepository:
    """Read queries and catalogue upkeep over a pool (or one connection), and units of work
    for stock changes (those need the pool)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def unit_of_work(self) -> PostgresUnitOfWork:
        if not isinstance(self._db, asyncpg.Pool):
            raise TypeError("a unit of work needs a connection pool")
        return PostgresUnitOfWork(self._db)

    async def stock_levels(self, item_ids: Iterable[str]) -> dict[str, int]:
        """Current stock of each known item among `item_ids` (no locks: a snapshot)."""
        rows = await self._db.fetch(
            "SELECT item_id, stock FROM inventory_items WHERE item_id = ANY($1::text[])",
            list(item_ids),
        )
        return {row["item_id"]: row["stock"] for row in rows}

    async def shelf(self, item_ids: Iterable[str]) -> Shelf:
        """Stock and availability of each known item among `item_ids` (no locks: a snapshot)."""
        rows = await self._db.fetch(
            "SELECT item_id, stock, available FROM inventory_items WHERE item_id = ANY($1::text[])",
            list(item_ids),
        )
        return _shelf(rows)

    async def expired_reservations(self, older_than_seconds: float, limit: int = 200) -> list[str]:
        """Orders whose stock has been RESERVED longer than any live saga takes."""
        rows = await self._db.fetch(
            "SELECT order_id FROM stock_reservations WHERE state = 'RESERVED'"
            " AND created_at < now() - make_interval(secs => $1) ORDER BY created_at LIMIT $2",
            older_than_seconds,
            limit,
        )
        return [str(row["order_id"]) for row in rows]

    async def held_reservations(self, order_ids: Collection[str]) -> dict[str, dict[str, int]]:
        """Quantity per item of each order among `order_ids` whose stock is still RESERVED."""
        rows = await self._db.fetch(
            "SELECT order_id::text AS id, items FROM stock_reservations"
            " WHERE state = 'RESERVED' AND order_id = ANY($1::uuid[])",
            list(order_ids),
        )
        return {row["id"]: json.loads(row["items"]) for row in rows}

    async def menu(self) -> list[CatalogueItem]:
        """The public listing: the listed items their restaurant offers now (what customers
        see and may order)."""
        return await self._items(on_menu_only=True)

    async def catalogue(self) -> list[CatalogueItem]:
        """Every item, listed or not, offered or not (what pricing prices: a bench order is
        priced too)."""
        return await self._items(on_menu_only=False)

    async def _items(self, *, on_menu_only: bool) -> list[CatalogueItem]:
        rows = await self._db.fetch(
            f"SELECT {_ITEM_COLUMNS} FROM inventory_items"
            " WHERE (listed AND available) OR NOT $1 ORDER BY item_id",
            on_menu_only,
        )
        return [_item(row) for row in rows]

    async def set_available(self, item_id: str, available: bool) -> CatalogueItem | None:
        """Offer an item again, or stop offering it (its stock is kept); None for an item
        not in the catalogue."""
        row = await self._db.fetchrow(
            "UPDATE inventory_items SET available = $2, updated_at = now()"
            f" WHERE item_id = $1 RETURNING {_ITEM_COLUMNS}",
            item_id,
            available,
        )
        return _item(row) if row is not None else None

    async def put_items(self, items: Iterable[CatalogueItem]) -> None:
        """Add items to the catalogue; an item already there takes the given name, price,
        stock and listing (whether its restaurant offers it is the restaurant's to say)."""
        await self._db.executemany(
            "INSERT INTO inventory_items (item_id, name, price, stock, listed)"
            " VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT (item_id) DO UPDATE SET name = EXCLUDED.name, price = EXCLUDED.price,"
            " stock = EXCLUDED.stock, listed = EXCLUDED.listed, updated_at = now()",
            [(item.item_id, item.name, item.price, item.stock, item.listed) for item in items],
        )

    async def remove_items(self, item_ids: Collection[str]) -> None:
        """Take items off the catalogue (reservations that name them stay)."""
        await self._db.execute(
            "DELETE FROM inventory_items WHERE item_id = ANY($1::text[])", list(item_ids)
        )


def _item(row: asyncpg.Record) -> CatalogueItem:
    return CatalogueItem(
        row["item_id"], row["name"], row["price"], row["stock"], row["listed"], row["available"]
    )
