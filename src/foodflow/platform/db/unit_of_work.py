"""A unit of work on PostgreSQL: one transaction on one pooled connection.

Each service's repository subclasses it with the statements of its own tables; the use cases
see only the service's Protocol of it.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Protocol, Self

import asyncpg
from asyncpg.pool import PoolConnectionProxy


class Transaction(Protocol):
    """What a use case sees of a unit of work: a transaction it commits, or that rolls back.

    A service's own unit-of-work Protocol extends this one with its repository methods.
    """

    async def __aenter__(self) -> Self: ...
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...
    async def commit(self) -> None: ...


def transaction_slots(pool: asyncpg.Pool) -> asyncio.Semaphore:
    """Slots for units of work that may need a second connection of the same pool while they
    hold their own (an order's state is saved on the pool inside a delivery's or a ticket's
    transaction): at most half the pool at once, so the second connection is always there.
    Without the bound, as many such steps at once as the pool has connections would each hold
    one and wait for another, forever."""
    return asyncio.Semaphore(max(1, pool.get_max_size() // 2))


class PostgresTransaction:
    """`async with uow: ... await uow.commit()`: commits only on `commit()`, else rolls back.
    With `slots` (`transaction_slots`), a slot is taken before the connection and given back
    after it."""

    def __init__(self, pool: asyncpg.Pool, slots: asyncio.Semaphore | None = None) -> None:
        self._pool = pool
        self._slots = slots
        self._connection: PoolConnectionProxy | None = None
        self._transaction: asyncpg.transaction.Transaction | None = None

    async def __aenter__(self) -> Self:
        if self._slots is not None:
            await self._slots.acquire()
        try:
            connection = await self._pool.acquire()
            try:
                transaction = connection.transaction()
                await transaction.start()
            except BaseException:
                await self._pool.release(connection)
                raise
        except BaseException:
            if self._slots is not None:
                self._slots.release()
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
            try:
                await self._pool.release(connection)
            finally:
                if self._slots is not None:
                    self._slots.release()

    @property
    def connection(self) -> PoolConnectionProxy:
        if self._connection is None:
            raise RuntimeError("the unit of work is not open; use `async with`")
        return self._connection

    async def commit(self) -> None:
        if self._transaction is None:
            raise RuntimeError("the unit of work is not open; use `async with`")
        await self._transaction.commit()
