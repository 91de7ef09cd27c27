"""PostgreSQL adapter of the restaurant service: every query on kitchens, kitchen_menu and
kitchen_tickets.

Every query is parameterised. A unit of work is one transaction on one pooled connection: it
commits only when `commit()` is called and rolls back otherwise. Reads run on the pool.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from decimal import Decimal
from uuid import UUID

import asyncpg

from foodflow.contracts.restaurant import TicketState
from foodflow.platform.db.unit_of_work import PostgresTransaction, transaction_slots
from foodflow.restaurant_service.domain import ACTIVE, Kitchen, MenuLine, Ticket, TicketLine

_KITCHEN_COLUMNS = (
    "restaurant_id, name, lat, lon, timezone, opens_at, closes_at, accepting, capacity"
)
_TICKET_COLUMNS = (
    "order_id, restaurant_id, state, lines, ready_by, reason, detail, received_at, updated_at"
)
_ACTIVE_STATES = sorted(state.value for state in ACTIVE)


def _kitchen(row: asyncpg.Record) -> Kitchen:
    return Kitchen(
        restaurant_id=row["restaurant_id"],
        name=row["name"],
        lat=row["lat"],
        lon=row["lon"],
        timezone=row["timezone"],
        opens_at=row["opens_at"],
        closes_at=row["closes_at"],
        accepting=row["accepting"],
        capacity=row["capacity"],
    )


def _menu_line(row: asyncpg.Record) -> MenuLine:
    return MenuLine(
        item_id=row["item_id"],
        restaurant_id=row["restaurant_id"],
        prep_minutes=float(row["prep_minutes"]),
        available=row["available"],
    )


def _ticket(row: asyncpg.Record) -> Ticket:
    return Ticket(
        order_id=row["order_id"],
        restaurant_id=row["restaurant_id"],
        state=TicketState(row["state"]),
        lines=tuple(
            TicketLine(line["item_id"], line["quantity"]) for line in json.loads(row["lines"])
        ),
        ready_by=row["ready_by"],
        reason=row["reason"],
        detail=row["detail"],
        received_at=row["received_at"],
        updated_at=row["updated_at"],
    )


def _lines_json(ticket: Ticket) -> str:
    return json.dumps([{"item_id": li.item_id, "quantity": li.quantity} for li in ticket.lines])


async def _menu_lines(
    db: asyncpg.Pool | asyncpg.Connection, item_ids: Iterable[str]
) -> dict[str, MenuLine]:
    rows = await db.fetch(
        "SELECT item_id, restaurant_id, prep_minutes, available FROM kitchen_menu"
        " WHERE item_id = ANY($1::text[])",
        list(item_ids),
    )
    return {row["item_id"]: _menu_line(row) for row in rows}


class PostgresUnitOfWork(PostgresTransaction):
    """One transaction: `async with uow: ... await uow.commit()`."""

    async def kitchen(self, restaurant_id: str) -> Kitchen | None:
        """The kitchen, row-locked until this transaction ends: intakes at one kitchen count
        its capacity one at a time, and see its opening as the staff last set it."""
        row = await self.connection.fetchrow(
            f"SELECT {_KITCHEN_COLUMNS} FROM kitchens WHERE restaurant_id = $1 FOR UPDATE",
            restaurant_id,
        )
        return _kitchen(row) if row is not None else None

    async def active_tickets(self, restaurant_id: str) -> int:
        count: int = await self.connection.fetchval(
            "SELECT count(*) FROM kitchen_tickets WHERE restaurant_id = $1"
            " AND state = ANY($2::text[])",
            restaurant_id,
            _ACTIVE_STATES,
        )
        return count

    async def menu_lines(self, item_ids: Iterable[str]) -> dict[str, MenuLine]:
        return await _menu_lines(self.connection, item_ids)

    async def ticket(self, order_id: UUID) -> Ticket | None:
        """The order's ticket, row-locked until this transaction ends."""
        row = await self.connection.fetchrow(
            f"SELECT {_TICKET_COLUMNS} FROM kitchen_tickets WHERE order_id = $1 FOR UPDATE",
            order_id,
        )
        return _ticket(row) if row is not None else None

    async def add(self, ticket: Ticket) -> bool:
        """Record a new ticket; False when the order has one already."""
        status = await self.connection.execute(
            "INSERT INTO kitchen_tickets"
            " (order_id, restaurant_id, state, lines, ready_by, reason, detail)"
            " VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7) ON CONFLICT (order_id) DO NOTHING",
            ticket.order_id,
            ticket.restaurant_id,
            ticket.state.value,
            _lines_json(ticket),
            ticket.ready_by,
            ticket.reason,
            ticket.detail,
        )
        return bool(status == "INSERT 0 1")

    async def save(self, ticket: Ticket) -> None:
        await self.connection.execute(
            "UPDATE kitchen_tickets SET state = $2, ready_by = $3, reason = $4, detail = $5,"
            " updated_at = now() WHERE order_id = $1",
            ticket.order_id,
            ticket.state.value,
            ticket.ready_by,
            ticket.reason,
            ticket.detail,
        )

    async def set_available(
        self, restaurant_id: str, item_id: str, available: bool
    ) -> MenuLine | None:
        """Mark an item of this restaurant's menu (un)available; None when it is not on it."""
        row = await self.connection.fetchrow(
            "UPDATE kitchen_menu SET available = $3, updated_at = now()"
            " WHERE restaurant_id = $1 AND item_id = $2"
            " RETURNING item_id, restaurant_id, prep_minutes, available",
            restaurant_id,
            item_id,
            available,
        )
        return _menu_line(row) if row is not None else None

    async def save_kitchen(self, kitchen: Kitchen) -> None:
        """Store the kitchen's opening: its hours and whether it takes orders."""
        await self.connection.execute(
            "UPDATE kitchens SET opens_at = $2, closes_at = $3, accepting = $4,"
            " updated_at = now() WHERE restaurant_id = $1",
            kitchen.restaurant_id,
            kitchen.opens_at,
            kitchen.closes_at,
            kitchen.accepting,
        )


class KitchenRepository:
    """Read queries over the pool, and units of work for changes."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        # A unit of work here moves the order too, on a second connection of the pool.
        self._slots = transaction_slots(pool)

    def unit_of_work(self) -> PostgresUnitOfWork:
        return PostgresUnitOfWork(self._pool, self._slots)

    async def kitchens(self) -> list[Kitchen]:
        rows = await self._pool.fetch(
            f"SELECT {_KITCHEN_COLUMNS} FROM kitchens ORDER BY restaurant_id"
        )
        return [_kitchen(row) for row in rows]

    async def kitchen(self, restaurant_id: str) -> Kitchen | None:
        row = await self._pool.fetchrow(
            f"SELECT {_KITCHEN_COLUMNS} FROM kitchens WHERE restaurant_id = $1", restaurant_id
        )
        return _kitchen(row) if row is not None else None

    async def menu_lines(self, item_ids: Iterable[str]) -> dict[str, MenuLine]:
        """The menu lines of these items (an item on no menu is not among them)."""
        return await _menu_lines(self._pool, item_ids)

    async def menus(self, restaurant_ids: Collection[str]) -> list[MenuLine]:
        """Every item on these restaurants' menus, by item id."""
        rows = await self._pool.fetch(
            "SELECT item_id, restaurant_id, prep_minutes, available FROM kitchen_menu"
            " WHERE restaurant_id = ANY($1::text[]) ORDER BY item_id",
            list(restaurant_ids),
        )
        return [_menu_line(row) for row in rows]

    async def active_counts(self) -> dict[str, int]:
        """Tickets on the go (accepted or preparing) per restaurant that has any."""
        rows = await self._pool.fetch(
            "SELECT restaurant_id, count(*) AS active FROM kitchen_tickets"
            " WHERE state = ANY($1::text[]) GROUP BY restaurant_id",
            _ACTIVE_STATES,
        )
        return {row["restaurant_id"]: row["active"] for row in rows}

    async def ticket(self, order_id: UUID) -> Ticket | None:
        row = await self._pool.fetchrow(
            f"SELECT {_TICKET_COLUMNS} FROM kitchen_tickets WHERE order_id = $1", order_id
        )
        return _ticket(row) if row is not None else None

    async def tickets(
        self, restaurant_id: str, states: Collection[TicketState], limit: int
    ) -> list[Ticket]:
        """The restaurant's oldest `limit` tickets in `states`, oldest first: the orders waiting
        longest are never hidden behind newer ones."""
        rows = await self._pool.fetch(
            f"SELECT {_TICKET_COLUMNS} FROM kitchen_tickets"
            " WHERE restaurant_id = $1 AND state = ANY($2::text[])"
            " ORDER BY received_at, order_id LIMIT $3",
            restaurant_id,
            [state.value for state in states],
            limit,
        )
        return [_ticket(row) for row in rows]

    async def stale_pending(self, older_than_seconds: float, limit: int) -> list[UUID]:
        """Up to `limit` tickets nobody answered for longer than `older_than_seconds`, oldest
        first."""
        rows = await self._pool.fetch(
            "SELECT order_id FROM kitchen_tickets WHERE state = 'PENDING'"
            " AND received_at < now() - make_interval(secs => $1)"
            " ORDER BY received_at LIMIT $2",
            older_than_seconds,
            limit,
        )
        return [row["order_id"] for row in rows]


async def put_on_menu(
    db: asyncpg.Pool | asyncpg.Connection, entries: Iterable[tuple[str, str, float]]
) -> None:
    """Put items on kitchens' menus, as (item id, restaurant id, minutes of preparation),
    available; an item on a menu already moves. For tools that bring items of their own
    (`foodflow chaos --kitchens`); the seed menu is the migration's."""
    rows = [(item, restaurant, Decimal(str(minutes))) for item, restaurant, minutes in entries]
    await db.executemany(
        "INSERT INTO kitchen_menu (item_id, restaurant_id, prep_minutes) VALUES ($1, $2, $3)"
        " ON CONFLICT (item_id) DO UPDATE SET restaurant_id = EXCLUDED.restaurant_id,"
        " prep_minutes = EXCLUDED.prep_minutes, available = true, updated_at = now()",
        rows,
    )


async def take_off_menu(db: asyncpg.Pool | asyncpg.Connection, item_ids: Collection[str]) -> None:
    """Take these items off every menu (`put_on_menu`'s undoing)."""
    await db.execute("DELETE FROM kitchen_menu WHERE item_id = ANY($1::text[])", list(item_ids))
