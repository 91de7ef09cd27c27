"""PostgreSQL adapter of the payment ledger: `payments` (one row per order) and
`payment_ledger` (one row per operation, keyed by its idempotency key).

Every query is parameterised. A ledger transaction is one PostgreSQL transaction on one pooled
connection, holding the advisory locks of its orders until it ends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from uuid import UUID

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from foodflow.contracts.payment import DeclineCode, PaymentOperation, PaymentResult, PaymentState
from foodflow.payment_service.domain import Payment
from foodflow.payment_service.services import LedgerEntry, RecordedOperation


class PostgresLedgerTransaction:
    """Reads and writes of one ledger transaction (see `PostgresLedger.transaction`)."""

    def __init__(self, connection: PoolConnectionProxy) -> None:
        self._connection = connection

    async def recorded(self, keys: Collection[str]) -> dict[str, RecordedOperation]:
        rows = await self._connection.fetch(
            "SELECT idempotency_key, order_id, operation, response FROM payment_ledger"
            " WHERE idempotency_key = ANY($1::text[])",
            list(keys),
        )
        return {
            row["idempotency_key"]: RecordedOperation(
                row["order_id"],
                PaymentOperation(row["operation"]),
                PaymentResult.model_validate_json(row["response"]),
            )
            for row in rows
        }

    async def payments(self, order_ids: Collection[UUID]) -> dict[UUID, Payment]:
        rows = await self._connection.fetch(
            "SELECT order_id, state, amount_cents, captured_cents, refunded_cents, currency,"
            " decline_code FROM payments WHERE order_id = ANY($1::uuid[])"
            " ORDER BY order_id FOR UPDATE",
            list(order_ids),
        )
        return {row["order_id"]: _payment(row) for row in rows}

    async def save(self, payments: Sequence[Payment], entries: Sequence[LedgerEntry]) -> None:
        await self._connection.execute(
            """
            INSERT INTO payments (order_id, state, amount_cents, captured_cents,
                                  refunded_cents, currency, decline_code)
            SELECT * FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::bigint[],
                                 $5::bigint[], $6::text[], $7::text[])
            ON CONFLICT (order_id) DO UPDATE SET
                state = EXCLUDED.state, captured_cents = EXCLUDED.captured_cents,
                refunded_cents = EXCLUDED.refunded_cents, updated_at = now()
            """,
            [p.order_id for p in payments],
            [p.state.value for p in payments],
            [p.amount_cents for p in payments],
            [p.captured_cents for p in payments],
            [p.refunded_cents for p in payments],
            [p.currency for p in payments],
            [p.decline_code.value if p.decline_code else None for p in payments],
        )
        await self._connection.execute(
            """
            INSERT INTO payment_ledger (idempotency_key, order_id, operation,
                                        amount_cents, approved, state, response)
            SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::bigint[],
                                 $5::boolean[], $6::text[], $7::jsonb[])
            """,
            [e.key for e in entries],
            [e.order_id for e in entries],
            [e.operation.value for e in entries],
            [e.moved_cents for e in entries],
            [e.result.approved for e in entries],
            [e.result.state.value for e in entries],
            [e.result.model_dump_json() for e in entries],
        )


class PostgresLedger:
    """The payment ledger over a pool: transactions for changes, plain reads otherwise."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @asynccontextmanager
    async def transaction(
        self, order_ids: Collection[UUID]
    ) -> AsyncIterator[PostgresLedgerTransaction]:
        """One transaction serialised with every other on the same orders: transaction-scoped
        advisory locks, taken in sorted order (no lock cycles between batches). It commits when
        the block ends normally and rolls back when it raises."""
        async with self._pool.acquire() as connection, connection.transaction():
            await connection.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(id, 7))"
                " FROM (SELECT id FROM unnest($1::text[]) AS id ORDER BY id) AS ids",
                sorted({str(order_id) for order_id in order_ids}),
            )
            yield PostgresLedgerTransaction(connection)

    async def replay_many(self, keys: Collection[str]) -> dict[str, PaymentResult]:
        """The recorded answers to the operations with these idempotency keys, by key."""
        rows = await self._pool.fetch(
            "SELECT idempotency_key, response FROM payment_ledger"
            " WHERE idempotency_key = ANY($1::text[])",
            list(keys),
        )
        return {
            row["idempotency_key"]: PaymentResult.model_validate_json(row["response"])
            for row in rows
        }

    async def get(self, order_id: UUID) -> Payment | None:
        row = await self._pool.fetchrow(
            "SELECT order_id, state, amount_cents, captured_cents, refunded_cents, currency,"
            " decline_code FROM payments WHERE order_id = $1",
            order_id,
        )
        return None if row is None else _payment(row)

    async def entries(self, order_id: UUID) -> list[dict[str, object]]:
        rows = await self._pool.fetch(
            "SELECT idempotency_key, operation, amount_cents, approved, state, created_at"
            " FROM payment_ledger WHERE order_id = $1 ORDER BY created_at, idempotency_key",
            order_id,
        )
        return [dict(r) for r in rows]


def _payment(row: asyncpg.Record) -> Payment:
    return Payment(
        order_id=row["order_id"],
        state=PaymentState(row["state"]),
        amount_cents=row["amount_cents"],
        currency=row["currency"],
        captured_cents=row["captured_cents"],
        refunded_cents=row["refunded_cents"],
        decline_code=DeclineCode(row["decline_code"]) if row["decline_code"] else None,
    )


async def net_charges(
    db: asyncpg.Pool | asyncpg.Connection, order_ids: Collection[UUID | str]
) -> dict[str, int]:
    """Captured minus refunded cents of each of these orders that has a payment, by order id
    (as str): what the customer was charged in the end, for audits such as `foodflow chaos`."""
    rows = await db.fetch(
        "SELECT order_id::text AS id, captured_cents - refunded_cents AS net FROM payments"
        " WHERE order_id = ANY($1::uuid[])",
        [str(order_id) for order_id in order_ids],
    )
    return {row["id"]: row["net"] for row in rows}


async def refund_counts(
    db: asyncpg.Pool | asyncpg.Connection, order_ids: Collection[UUID | str]
) -> dict[str, int]:
    """How many REFUND operations the ledger holds for each of these orders that has one, by
    order id (as str): an audit (`foodflow chaos`) that a refund happened once."""
    rows = await db.fetch(
        "SELECT order_id::text AS id, count(*) AS refunds FROM payment_ledger"
        " WHERE order_id = ANY($1::uuid[]) AND operation = 'REFUND' GROUP BY order_id",
        [str(order_id) for order_id in order_ids],
    )
    return {row["id"]: row["refunds"] for row in rows}
