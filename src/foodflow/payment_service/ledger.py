"""PostgreSQL adapter of the payment service: `payments` (one row per order) and
`payment_ledger` (one row per operation, keyed by its idempotency key)."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

import asyncpg

from foodflow.contracts.payment import DeclineCode, PaymentOperation, PaymentResult, PaymentState
from foodflow.payment_service.domain import Payment, PaymentConflict

PaymentChange = Callable[[Payment | None], Payment]


def _moved_cents(operation: PaymentOperation, before: Payment | None, after: Payment) -> int:
    if operation is PaymentOperation.AUTHORISE:
        return after.amount_cents if before is None else 0
    if operation is PaymentOperation.CAPTURE:
        return after.captured_cents - (before.captured_cents if before else 0)
    if operation is PaymentOperation.REFUND:
        return after.refunded_cents - (before.refunded_cents if before else 0)
    return 0


class PostgresLedger:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def replay(self, key: str) -> PaymentResult | None:
        """The recorded answer to an operation with this idempotency key, if there is one."""
        raw = await self._pool.fetchval(
            "SELECT response FROM payment_ledger WHERE idempotency_key = $1", key
        )
        return PaymentResult.model_validate_json(raw) if raw else None

    async def apply(
        self, key: str, operation: PaymentOperation, order_id: UUID, change: PaymentChange
    ) -> PaymentResult:
        """Apply `change` to the order's payment once per `key`, recording it in the ledger.

        Operations on one order are serialised by a transaction-scoped advisory lock; a key
        seen before returns the recorded answer; a domain error rolls everything back.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1::text, 7))", str(order_id)
            )
            seen = await conn.fetchrow(
                "SELECT order_id, operation, response FROM payment_ledger"
                " WHERE idempotency_key = $1",
                key,
            )
            if seen is not None:
                if seen["order_id"] != order_id or seen["operation"] != operation.value:
                    raise PaymentConflict(
                        f"idempotency key {key!r} was used for {seen['operation']}"
                        f" of order {seen['order_id']}"
                    )
                return PaymentResult.model_validate_json(seen["response"])
            before = await self._load(conn, order_id)
            after = change(before)
            result = after.result(operation)
            await conn.execute(
                """
                INSERT INTO payments (order_id, state, amount_cents, captured_cents,
                                      refunded_cents, currency, decline_code)
                VALUES ($1, $2, $3, $4, $5, $6, $7)
                ON CONFLICT (order_id) DO UPDATE SET
                    state = EXCLUDED.state, captured_cents = EXCLUDED.captured_cents,
                    refunded_cents = EXCLUDED.refunded_cents, updated_at = now()
                """,
                order_id,
                after.state.value,
                after.amount_cents,
                after.captured_cents,
                after.refunded_cents,
                after.currency,
                after.decline_code.value if after.decline_code else None,
            )
            await conn.execute(
                """
                INSERT INTO payment_ledger (idempotency_key, order_id, operation, amount_cents,
                                            approved, state, response)
                VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)
                """,
                key,
                order_id,
                operation.value,
                _moved_cents(operation, before, after),
                result.approved,
                result.state.value,
                result.model_dump_json(),
            )
            return result

    async def get(self, order_id: UUID) -> Payment | None:
        async with self._pool.acquire() as conn:
            return await self._load(conn, order_id, lock=False)

    async def entries(self, order_id: UUID) -> list[dict[str, object]]:
        rows = await self._pool.fetch(
            "SELECT idempotency_key, operation, amount_cents, approved, state, created_at"
            " FROM payment_ledger WHERE order_id = $1 ORDER BY created_at, idempotency_key",
            order_id,
        )
        return [dict(r) for r in rows]

    @staticmethod
    async def _load(
        conn: asyncpg.Connection, order_id: UUID, *, lock: bool = True
    ) -> Payment | None:
        row = await conn.fetchrow(
            "SELECT order_id, state, amount_cents, captured_cents, refunded_cents, currency,"
            " decline_code FROM payments WHERE order_id = $1" + (" FOR UPDATE" if lock else ""),
            order_id,
        )
        if row is None:
            return None
        return Payment(
            order_id=row["order_id"],
            state=PaymentState(row["state"]),
            amount_cents=row["amount_cents"],
            currency=row["currency"],
            captured_cents=row["captured_cents"],
            refunded_cents=row["refunded_cents"],
            decline_code=DeclineCode(row["decline_code"]) if row["decline_code"] else None,
        )
