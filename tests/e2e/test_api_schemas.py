"""Schemathesis against every service's own OpenAPI schema, over HTTP to the running service:
no 5xx, and no response that breaks the schema the service publishes."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from foodflow.platform.config import Settings
from foodflow.tools import processes

from ..service_auth import as_caller

pytestmark = pytest.mark.e2e
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
# Services whose HTTP API is for other services and operators; the gateway's public API is
# tested with its own, authenticated suite.
SERVICES = (
    "inventory_service",
    "pricing_service",
    "payment_service",
    "delivery_service",
    "order_manager",
    "order_writer",
)
# Each operation is called with the credentials of a caller it admits: the order manager unless
# listed here (by service and the path's first segment, or by service alone).
CALLERS = {
    ("inventory_service", "cancel"): "delivery_service",
    ("inventory_service", "menu"): "pricing_service",
    ("payment_service", "payments"): "delivery_service",
    ("delivery_service", ""): "gateway",
}


def caller_of(service: str, path: str) -> str:
    first = path.strip("/").split("/")[0]
    return CALLERS.get((service, first)) or CALLERS.get((service, ""), "order_manager")


@pytest.mark.parametrize("service", SERVICES)
def test_no_server_errors_and_responses_match_the_schema(system: Settings, service: str) -> None:
    # Schemathesis drives Hypothesis directly here: its lazy pytest fixture loader does not
    # work with the pytest version we lock.
    svc = processes.ServiceProcess(service, system)
    schema = schemathesis.openapi.from_url(svc.url + "/openapi.json")
    operations = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()
        operations.append(result.ok())
    assert operations, f"{service} publishes no operations"
    for operation in operations:
        exercise(operation, as_caller(system, caller_of(service, operation.path), service))


def exercise(operation: Any, headers: dict[str, str]) -> None:
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(operation.as_strategy())
    def check(case: schemathesis.Case[Any]) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS)

    check()
