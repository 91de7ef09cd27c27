"""The running internal services admit only their callers (finding 3, on the real system):
no or a bad token 401, a service the route does not admit 403."""

from __future__ import annotations

import httpx
import pytest

from foodflow.platform.config import PORT_SETTING, Settings

from ..security.test_service_auth import ROUTES, Route, call_route
from ..service_auth import as_caller

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("route", ROUTES, ids=str)
async def test_a_running_internal_service_refuses_strangers(system: Settings, route: Route) -> None:
    base = system.service_url(getattr(system, PORT_SETTING[route.service]))
    outsider = next(s for s in ("gateway", "order_writer") if s not in route.callers)
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        assert (await call_route(client, route, None)).status_code == 401
        garbage = {"authorization": "Bearer not-a-token"}
        assert (await call_route(client, route, garbage)).status_code == 401
        foreign = as_caller(system, outsider, route.service)
        assert (await call_route(client, route, foreign)).status_code == 403
