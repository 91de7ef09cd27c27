"""PostgreSQL adapter of the payment service: `payments` (one row per order) and
`payment_ledger` (one row per operation, keyed by its idempotency key)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from foodflow.contracts.payment import DeclineCode, PaymentOperation, PaymentResult, PaymentState
from foodflow.payment_service.domain import Payment, PaymentConflict, PaymentError

PaymentChange = Callable[[Payment | None], Payment]


@dataclass(frozen=True)
class LedgerOperation:
    """One operation for `apply_many`: `change` maps the payment before to the payment after."""

    key: str
    operation: PaymentOperation
    order_id: UUID
    change: PaymentChange


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

    async def replay_many(self, keys: Sequence[str]) -> dict[str, PaymentResult]:
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

    async def apply(
        self, key: str, operation: PaymentOperation, order_id: UUID, change: PaymentChange
    ) -> PaymentResult:
        """Apply `change` to the order's payment once per `key`, recording it in the ledger.

        A key seen before returns the recorded answer; a domain error is raised and nothing
        is written.
        """
        (answer,) = await self.apply_many([LedgerOperation(key, operation, order_id, change)])
        if isinstance(answer, PaymentError):
            raise answer
        return answer

    async def apply_many(
        self, operations: Sequence[LedgerOperation]
    ) -> list[PaymentResult | PaymentError]:
        """`apply` for many operations in one transaction, one answer each, in order.

        Orders are serialised by transaction-scoped advisory locks taken in sorted order (no
        lock cycles between batches); operations on the same order apply in the batch's order.
        An operation's domain error is its answer and writes nothing; the others still apply.
        """
        if not operations:
            return []
        order_ids = sorted({str(op.order_id) for op in operations})
        keys = [op.key for op in operations]
        answers: list[PaymentResult | PaymentError] = []
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(id, 7))"
                " FROM (SELECT id FROM unnest($1::text[]) AS id ORDER BY id) AS ids",
                order_ids,
            )
            seen = {
                row["idempotency_key"]: row
                for row in await conn.fetch(
                    "SELECT idempotency_key, order_id, operation, response FROM payment_ledger"
                    " WHERE idempotency_key = ANY($1::text[])",
                    keys,
                )
            }
            payments = await self._load_many(conn, [UUID(i) for i in order_ids])
            changed: dict[UUID, Payment] = {}
            entries: list[tuple[str, LedgerOperation, int, PaymentResult]] = []
            done: dict[str, PaymentResult] = {}
            for op in operations:
                row = seen.get(op.key)
                if row is not None:
                    if row["order_id"] != op.order_id or row["operation"] != op.operation.value:
                        answers.append(
                            PaymentConflict(
                                f"idempotency key {op.key!r} was used for {row['operation']}"
                                f" of order {row['order_id']}"
                            )
                        )
                    else:
                        answers.append(PaymentResult.model_validate_json(row["response"]))
                    continue
                if op.key in done:  # the same operation twice in one batch
                    answers.append(done[op.key])
                    continue
                before = payments.get(op.order_id)
                try:
                    after = op.change(before)
                except PaymentError as exc:
                    answers.append(exc)
                    continue
                result = after.result(op.operation)
                payments[op.order_id] = changed[op.order_id] = after
                entries.append((op.key, op, _moved_cents(op.operation, before, after), result))
                done[op.key] = result
                answers.append(result)
            if changed:
                await self._save_many(conn, list(changed.values()))
                await conn.execute(
                    """
                    INSERT INTO payment_ledger (idempotency_key, order_id, operation,
                                                amount_cents, approved, state, response)
                    SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::bigint[],
                                         $5::boolean[], $6::text[], $7::jsonb[])
                    """,
                    [key for key, _, _, _ in entries],
                    [op.order_id for _, op, _, _ in entries],
                    [op.operation.value for _, op, _, _ in entries],
                    [moved for _, _, moved, _ in entries],
                    [result.approved for _, _, _, result in entries],
                    [result.state.value for _, _, _, result in entries],
                    [result.model_dump_json() for _, _, _, result in entries],
                )
        return answers

    @staticmethod
    async def _save_many(conn: asyncpg.Connection, payments: Sequence[Payment]) -> None:
        await conn.execute(
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
    async def _load_many(conn: asyncpg.Connection, order_ids: list[UUID]) -> dict[UUID, Payment]:
        rows = await conn.fetch(
            "SELECT order_id, state, amount_cents, captured_cents, refunded_cents, currency,"
            " decline_code FROM payments WHERE order_id = ANY($1::uuid[])"
            " ORDER BY order_id FOR UPDATE",
            order_ids,
        )
        return {row["order_id"]: _payment(row) for row in rows}

    @staticmethod
    async def _load(
        conn: asyncpg.Connection, order_id: UUID, *, lock: bool = True
    ) -> Payment | None:
        row = await conn.fetchrow(
            "SELECT order_id, state, amount_cents, captured_cents, refunded_cents, currency,"
            " decline_code FROM payments WHERE order_id = $1" + (" FOR UPDATE" if lock else ""),
            order_id,
        )
        return None if row is None else _payment(row)


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
