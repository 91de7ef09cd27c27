"""Property tests of the intake parser: hostile bytes never raise, and what passes is sane."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from foodflow.contracts.orders import MAX_ITEMS_PER_ORDER, MAX_QUANTITY
from foodflow.order_manager.messages import Accepted, InvalidMessage, read_order

from ..hostile import hostile_messages


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_messages)
def test_any_message_is_accepted_sanely_or_rejected_with_a_reason(raw: bytes) -> None:
    result = read_order(raw, "validated_orders", 1, 42)
    if isinstance(result, InvalidMessage):
        assert result.error
        return
    assert isinstance(result, Accepted)
    order = result.order
    assert 1 <= len(order.items) <= MAX_ITEMS_PER_ORDER
    assert len({i.item_id for i in order.items}) == len(order.items)
    for item in order.items:
        assert 1 <= item.quantity <= MAX_QUANTITY
        assert item.price is None or (item.price.is_finite() and item.price >= 0)
