"""The shared HTTP metrics middleware and `/metrics` route, on a throwaway app."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from prometheus_client import REGISTRY, CollectorRegistry, Counter

from foodflow.platform.metrics import install_metrics


def sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_requests_are_counted_by_route_template_and_metrics_are_served() -> None:
    extra = CollectorRegistry()
    Counter("unit_extra_things", "An app-owned metric", registry=extra).inc(3)
    collected: list[str] = []

    async def collect(app: FastAPI) -> None:
        collected.append(app.title)
        raise RuntimeError("a gauge that cannot be measured must not fail the scrape")

    app = FastAPI(title="unit")
    install_metrics(app, "unit_service", collect=collect, registries=[extra])

    @app.get("/things/{thing_id}")
    async def thing(thing_id: int) -> dict[str, int]:
        """One thing."""
        return {"id": thing_id}

    labels = {"service": "unit_service", "method": "GET", "route": "/things/{thing_id}"}
    before = sample("foodflow_http_requests_total", {**labels, "status": "200"})
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://unit") as client:
        for i in range(3):
            assert (await client.get(f"/things/{i}")).status_code == 200
        assert (await client.get("/things/not-a-number")).status_code == 422
        assert (await client.get("/nowhere")).status_code == 404
        metrics = await client.get("/metrics")

    assert sample("foodflow_http_requests_total", {**labels, "status": "200"}) == before + 3
    assert sample("foodflow_http_requests_total", {**labels, "status": "422"}) >= 1
    unmatched = {"service": "unit_service", "method": "GET", "route": "<unmatched>"}
    assert sample("foodflow_http_requests_total", {**unmatched, "status": "404"}) >= 1
    assert sample("foodflow_http_request_seconds_count", labels) >= 4
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "unit_extra_things_total 3.0" in metrics.text
    assert 'foodflow_http_requests_total{method="GET"' in metrics.text
    assert collected == ["unit"]
