"""From raw `db_write_order_status` messages to the events a batch writes (pure, no I/O)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from uuid import UUID

from pydantic import ValidationError

from foodflow.contracts.orders import OrderFinalEvent


@dataclass(frozen=True)
class Rejected:
    """A message that cannot become an OrderFinalEvent, and why."""

    error: str
    order_id: UUID | None = None


def parse_message(value: bytes | None, key: bytes | None = None) -> OrderFinalEvent | Rejected:
    """Validate one message body as an OrderFinalEvent, or say why it is not one."""
    order_id = _uuid_or_none(key)
    if not value:
        return Rejected("empty message", order_id)
    try:
        return OrderFinalEvent.model_validate_json(value)
    except ValidationError as exc:
        errors = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<body>'}: {err['msg']}"
            for err in exc.errors(include_url=False)[:10]
        )
        return Rejected(f"invalid OrderFinalEvent: {errors}", order_id)


def reduce_batch(events: Iterable[OrderFinalEvent]) -> list[OrderFinalEvent]:
    """Keep the highest version of each order (the first seen on a tie), sorted by order id.

    Sorting gives every writer the same lock order, so concurrent batches cannot deadlock.
    """
    newest: dict[UUID, OrderFinalEvent] = {}
    for event in events:
        current = newest.get(event.order_id)
        if current is None or event.version > current.version:
            newest[event.order_id] = event
    return [newest[order_id] for order_id in sorted(newest, key=lambda u: u.bytes)]


def _uuid_or_none(raw: bytes | None) -> UUID | None:
    if not raw:
        return None
    try:
        return UUID(raw.decode("ascii", errors="strict"))
    except (ValueError, UnicodeDecodeError):
        return None
