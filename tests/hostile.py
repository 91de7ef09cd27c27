"""Hypothesis strategies for hostile `validated_orders` messages, shared by unit and e2e tests."""

from __future__ import annotations

import json
import uuid

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=30,
)
numbers = (
    st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([0, -1, 101, 10**6, 1.5, "2", "NaN", None, True])
)
item_ids = st.text(max_size=80) | st.sampled_from(["sushi-set", "pho-bo", "", "x" * 100, "🍣"])
items = st.fixed_dictionaries(
    {"item_id": item_ids | json_values, "quantity": numbers},
    optional={"price": numbers},
)
orderish = st.fixed_dictionaries(
    {},
    optional={
        "order_id": st.uuids().map(str) | st.text(max_size=10) | json_values,
        "user_id": st.text(max_size=80) | json_values,
        "items": st.lists(items, max_size=60) | json_values,
        "promo_code": st.text(max_size=40) | json_values,
    },
)


def _encode(value: object) -> bytes:
    # json.dumps (not orjson) on purpose: it writes NaN and Infinity, which are not JSON.
    return json.dumps(value, allow_nan=True, ensure_ascii=False).encode("utf-8", "surrogatepass")


hostile_messages = st.one_of(
    st.binary(max_size=300),
    json_values.map(_encode),
    orderish.map(_encode),
    st.integers(min_value=200, max_value=3000).map(lambda d: b"[" * d + b"]" * d),
    st.integers(min_value=1, max_value=20).map(
        lambda n: _encode({"user_id": "u", "items": [{"item_id": "pho-bo", "quantity": 1}] * n})
    ),
    st.just(
        _encode(
            {"user_id": "u", "items": [{"item_id": f"i{n}", "quantity": 1} for n in range(5000)]}
        )
    ),
    st.builds(
        lambda oid: _encode(
            {"order_id": str(oid), "user_id": "u", "items": [{"item_id": "pho-bo", "quantity": -5}]}
        ),
        st.uuids(),
    ),
)


def draw_hostile(count: int, seed: int = 0) -> list[bytes]:
    """`count` hostile messages, the same ones every run."""
    drawn: list[bytes] = []

    @settings(
        max_examples=count,
        database=None,
        derandomize=True,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        deadline=None,
    )
    @given(hostile_messages)
    def collect(message: bytes) -> None:
        drawn.append(message)

    collect()
    return drawn


def unique_marker() -> str:
    return uuid.uuid4().hex
