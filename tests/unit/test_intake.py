from uuid import uuid4

import pytest

from foodflow.order_manager.intake import Accepted, Rejected, read_order, rejected_order_event

SEED_LINE = (
    b'{"user_id": "user-001", "items": [{"item_id": "sushi-set", "quantity": 1, "price": 25.50},'
    b' {"item_id": "pho-bo", "quantity": 2, "price": 9.00}]}'
)


def test_the_seed_line_is_accepted_and_gets_a_stable_id() -> None:
    first = read_order(SEED_LINE, "validated_orders", 0, 7)
    again = read_order(SEED_LINE, "validated_orders", 0, 7)
    assert isinstance(first, Accepted) and isinstance(again, Accepted)
    assert first.id_assigned and first.order_id == again.order_id
    assert [i.quantity for i in first.order.items] == [1, 2]


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"", "empty"),
        (b"not json", "invalid order"),
        (b"[1, 2]", "invalid order"),
        (b'{"user_id": "u", "items": []}', "items"),
        (b'{"user_id": "u", "items": [{"item_id": "x", "quantity": 0}]}', "quantity"),
        (b'{"user_id": "u", "items": [{"item_id": "x", "quantity": -3}]}', "quantity"),
        (b'{"user_id": "u", "items": [{"item_id": "x", "quantity": 100000}]}', "quantity"),
        (b'{"user_id": "u", "items": [{"item_id": "x", "quantity": "2"}]}', "quantity"),
        (b'{"items": [{"item_id": "x", "quantity": 1}]}', "user_id"),
        (
            b'{"user_id": "u", "items": [{"item_id": "x", "quantity": 1},'
            b' {"item_id": "x", "quantity": 1}]}',
            "only once",
        ),
        (b"x" * 70000, "exceeds"),
    ],
)
def test_bad_messages_are_rejected_with_a_reason(raw: bytes, fragment: str) -> None:
    result = read_order(raw, "validated_orders", 0, 1)
    assert isinstance(result, Rejected)
    assert fragment in result.error


def test_a_bad_order_with_an_id_becomes_a_failed_invalid_order_event() -> None:
    order_id = uuid4()
    raw = f'{{"order_id": "{order_id}", "user_id": "u-9", "items": "lots"}}'.encode()
    result = read_order(raw, "validated_orders", 0, 1)
    assert isinstance(result, Rejected) and result.order_id == order_id
    event = rejected_order_event(result)
    assert (event.status, event.reason, event.version, event.user_id) == (
        "FAILED",
        "INVALID_ORDER",
        1,
        "u-9",
    )
