"""Order ids that the system assigns."""

from __future__ import annotations

import uuid

# Ids for orders that arrive without one are derived from where the message sits in the log,
# so a redelivered message gets the same id again.
ORDER_ID_NAMESPACE = uuid.UUID("6f1f5b8e-3c1a-4d0e-9a51-0f00df10f10a")


def derive_order_id(topic: str, partition: int, offset: int) -> uuid.UUID:
    return uuid.uuid5(ORDER_ID_NAMESPACE, f"{topic}/{partition}/{offset}")
