"""Turns raw `validated_orders` messages into orders, or into precise reasons for refusal."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import orjson
from pydantic import ValidationError

from foodflow.contracts.ids import derive_order_id
from foodflow.contracts.orders import ValidatedOrder
from foodflow.contracts.text import storable_text

MAX_MESSAGE_BYTES = 64 * 1024


@dataclass(frozen=True)
class Accepted:
    order_id: UUID
    order: ValidatedOrder
    id_assigned: bool


@dataclass(frozen=True)
class InvalidMessage:
    """Why a message is not an order to drive; its order id and user, when they can be read."""

    error: str
    order_id: UUID | None
    user_id: str | None


def read_order(
    value: bytes | None, topic: str, partition: int, offset: int
) -> Accepted | InvalidMessage:
    """Parse one message. Never raises: bad input becomes an `InvalidMessage` with the reason."""
    if not value:
        return InvalidMessage("empty message", None, None)
    if len(value) > MAX_MESSAGE_BYTES:
        return InvalidMessage(
            f"message of {len(value)} bytes exceeds {MAX_MESSAGE_BYTES}", None, None
        )
    try:
        order = ValidatedOrder.model_validate_json(value)
    except ValidationError as exc:
        order_id, user_id = _salvage_ids(value)
        return InvalidMessage(_summarise(exc), order_id, user_id)
    if order.order_id is not None:
        return Accepted(order.order_id, order, id_assigned=False)
    return Accepted(derive_order_id(topic, partition, offset), order, id_assigned=True)


def _summarise(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "message"
        parts.append(f"{where}: {err['msg']}")
    more = exc.error_count() - len(parts)
    return "invalid order: " + "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def _salvage_ids(value: bytes) -> tuple[UUID | None, str | None]:
    """The order id and user of a malformed order, when they can be read at all."""
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(data, dict):
        return None, None
    try:
        order_id = UUID(str(data.get("order_id")))
    except ValueError:
        return None, None
    user = data.get("user_id")
    if not isinstance(user, str) or not user:
        return order_id, None
    try:
        # The user goes into the FAILED event and then PostgreSQL: only text it can hold.
        return order_id, storable_text(user[:64])
    except ValueError:
        return order_id, None
