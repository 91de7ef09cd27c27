"""Schemathesis against every service's own OpenAPI schema, over HTTP to the running service:
no 5xx, and no response that breaks the schema the service publishes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from foodflow.gateway.services import DEMO_OPERATOR_EMAIL
from foodflow.platform.config import Settings
from foodflow.tools import processes

from ..service_auth import as_caller

pytestmark = pytest.mark.e2e
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
# Services whose HTTP API is for other services and operators; the gateway's public API has
# its own test below, as the demo operator.
SERVICES = (
    "inventory_service",
    "pricing_service",
    "payment_service",
    "delivery_service",
    "restaurant_service",
    "order_manager",
    "order_writer",
)
# Each operation is called with the credentials of a caller it admits: the order manager unless
# listed here (by service and the path's first segment, or by service alone).
CALLERS = {
    ("inventory_service", "cancel"): "delivery_service",
    ("inventory_service", "menu"): "gateway",
    ("inventory_service", "catalogue"): "pricing_service",
    ("payment_service", "payments"): "delivery_service",
    ("delivery_service", ""): "gateway",
    ("restaurant_service", ""): "gateway",
}


def caller_of(service: str, path: str) -> str:
    first = path.strip("/").split("/")[0]
    return CALLERS.get((service, first)) or CALLERS.get((service, ""), "order_manager")


@pytest.mark.parametrize("service", SERVICES)
def test_no_server_errors_and_responses_match_the_schema(system: Settings, service: str) -> None:
    # Schemathesis drives Hypothesis directly here: its lazy pytest fixture loader does not
    # work with the pytest version we lock.
    operations = operations_of(processes.ServiceProcess(service, system).url)
    assert operations, f"{service} publishes no operations"
    for operation in operations:
        exercise(operation, as_caller(system, caller_of(service, operation.path), service))


def operations_of(url: str) -> list[Any]:
    """Every operation of the OpenAPI schema the service at `url` publishes."""
    operations = []
    for result in schemathesis.openapi.from_url(url + "/openapi.json").get_all_operations():
        if isinstance(result, Err):
            raise result.err()
        operations.append(result.ok())
    return operations


def exercise(operation: Any, headers: dict[str, str], checks: list[Any] = CHECKS) -> None:
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(operation.as_strategy())
    def check(case: schemathesis.Case[Any]) -> None:
        case.call_and_validate(headers=headers, checks=checks)

    check()


def test_the_gateway_gives_no_server_error_to_an_operator(system: Settings) -> None:
    """The public API under schemathesis, as the demo operator (who may call every route):
    whatever the input, a 2xx or a 4xx, never a 5xx."""
    gateway = processes.ServiceProcess("gateway", system)
    password = system.demo_operator_password
    assert password is not None, "the suite's settings carry the generated secrets"
    login = httpx.post(
        gateway.url + "/auth/login",
        json={"email": DEMO_OPERATOR_EMAIL, "password": password.get_secret_value()},
        timeout=30,
    )
    assert login.status_code == 200, login.text
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    # The event stream never ends by design: it has its own tests.
    operations = [op for op in operations_of(gateway.url) if op.path != "/dashboard/events"]
    assert operations, "the gateway publishes no operations"
    for operation in operations:
        exercise(operation, headers, checks=[not_a_server_error])
