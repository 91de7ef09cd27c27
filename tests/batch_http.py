"""HTTP helpers shared by the integration tests of the batch endpoints."""

from __future__ import annotations

from typing import Any

import httpx


async def post_batch(
    client: httpx.AsyncClient, path: str, items: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """POST `items` to a batch endpoint; its outcomes, one per item (asserted)."""
    response = await client.post(path, json={"items": items})
    assert response.status_code == 200, response.text
    outcomes: list[dict[str, Any]] = response.json()["outcomes"]
    assert len(outcomes) == len(items)
    return outcomes
