"""Every SQL statement on the gateway's own tables: `users` and `customer_orders`."""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

import asyncpg

from foodflow.contracts.orders import ValidatedOrder
from foodflow.gateway.security import Role
from foodflow.gateway.services import Account, PlacedOrder
from foodflow.platform.db.migrations import migrate_pool

MIGRATIONS = Path(__file__).parent / "migrations"

_PLACED_COLUMNS = "order_id, user_id, request_hash, request, created_at"
_ACCOUNT_COLUMNS = "user_id, email, name, role, courier_id, restaurant_id"


async def migrate_gateway(pool: asyncpg.Pool) -> list[str]:
    """Create or bring up to date `users` and `customer_orders`."""
    return await migrate_pool(pool, "gateway", MIGRATIONS)


class GatewayRepository:
    """Users and the orders they placed, over the gateway's pool (`Accounts` and `PlacedOrders`)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def add_user(self, account: Account, password_hash: str) -> bool:
        """False when the email is taken already."""
        try:
            await self._pool.execute(
                f"INSERT INTO users ({_ACCOUNT_COLUMNS}, password_hash)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7)",
                account.user_id,
                account.email,
                account.name,
                account.role.value,
                account.courier_id,
                account.restaurant_id,
                password_hash,
            )
        except asyncpg.UniqueViolationError:
            return False
        return True

    async def put_user(self, account: Account, password_hash: str) -> Account:
        """Create the account, or make the one with its email exactly this (role, name,
        password, courier and restaurant), keeping its user id; the account as stored."""
        row = await self._pool.fetchrow(
            f"INSERT INTO users ({_ACCOUNT_COLUMNS}, password_hash)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7)"
            " ON CONFLICT (email) DO UPDATE SET name = EXCLUDED.name,"
            " password_hash = EXCLUDED.password_hash, role = EXCLUDED.role,"
            " courier_id = EXCLUDED.courier_id, restaurant_id = EXCLUDED.restaurant_id"
            f" RETURNING {_ACCOUNT_COLUMNS}",
            account.user_id,
            account.email,
            account.name,
            account.role.value,
            account.courier_id,
            account.restaurant_id,
            password_hash,
        )
        return _account(row)

    async def user(self, user_id: UUID) -> Account | None:
        row = await self._pool.fetchrow(
            f"SELECT {_ACCOUNT_COLUMNS} FROM users WHERE user_id = $1", user_id
        )
        return None if row is None else _account(row)

    async def contacts(self, user_ids: list[UUID]) -> dict[UUID, tuple[str, str]]:
        """Name and email of each of `user_ids` that is a registered user (the dashboard shows
        customers by name, not by id)."""
        rows = await self._pool.fetch(
            "SELECT user_id, name, email FROM users WHERE user_id = ANY($1::uuid[])", user_ids
        )
        return {row["user_id"]: (row["name"], row["email"]) for row in rows}

    async def user_by_email(self, email: str) -> tuple[Account, str] | None:
        row = await self._pool.fetchrow(
            f"SELECT {_ACCOUNT_COLUMNS}, password_hash FROM users WHERE email = $1", email
        )
        if row is None:
            return None
        return _account(row), row["password_hash"]

    async def add_order(
        self,
        order: ValidatedOrder,
        user_id: UUID,
        idempotency_key: str | None,
        request_hash: str,
    ) -> bool:
        """False when this user placed an order with this key before (nothing is stored)."""
        row = await self._pool.fetchrow(
            "INSERT INTO customer_orders"
            " (order_id, user_id, idempotency_key, request_hash, request)"
            " VALUES ($1, $2, $3, $4, $5::jsonb)"
            " ON CONFLICT (user_id, idempotency_key) DO NOTHING RETURNING order_id",
            order.order_id,
            user_id,
            idempotency_key,
            request_hash,
            order.model_dump_json(),
        )
        return row is not None

    async def order_by_key(self, user_id: UUID, idempotency_key: str | None) -> PlacedOrder | None:
        row = await self._pool.fetchrow(
            f"SELECT {_PLACED_COLUMNS} FROM customer_orders"
            " WHERE user_id = $1 AND idempotency_key = $2",
            user_id,
            idempotency_key,
        )
        return None if row is None else _placed(row)

    async def order(self, order_id: UUID) -> PlacedOrder | None:
        row = await self._pool.fetchrow(
            f"SELECT {_PLACED_COLUMNS} FROM customer_orders WHERE order_id = $1", order_id
        )
        return None if row is None else _placed(row)

    async def count_orders(self, user_id: UUID) -> int:
        count: int = await self._pool.fetchval(
            "SELECT count(*) FROM customer_orders WHERE user_id = $1", user_id
        )
        return count

    async def orders(self, user_id: UUID, limit: int, offset: int) -> list[PlacedOrder]:
        """The user's orders, newest first."""
        rows = await self._pool.fetch(
            f"SELECT {_PLACED_COLUMNS} FROM customer_orders WHERE user_id = $1"
            " ORDER BY created_at DESC LIMIT $2 OFFSET $3",
            user_id,
            limit,
            offset,
        )
        return [_placed(row) for row in rows]


def _placed(row: asyncpg.Record) -> PlacedOrder:
    return PlacedOrder(
        order_id=row["order_id"],
        user_id=row["user_id"],
        request_hash=row["request_hash"],
        request=ValidatedOrder.model_validate_json(row["request"]),
        created_at=row["created_at"],
    )


def _account(row: asyncpg.Record) -> Account:
    return Account(
        user_id=row["user_id"],
        email=row["email"],
        name=row["name"],
        role=Role(row["role"]),
        courier_id=row["courier_id"],
        restaurant_id=row["restaurant_id"],
    )
