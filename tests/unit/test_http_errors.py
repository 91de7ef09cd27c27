"""How every service turns errors into HTTP: RFC 9457 problem details, internal text logged
under the request id, never returned."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

from foodflow.contracts.errors import PROBLEM_JSON, problem_title, problem_type
from foodflow.platform.errors import ServiceUnavailable
from foodflow.platform.http.errors import (
    batch_response,
    install_error_handlers,
    install_problem_details,
)


class StoreDown(ServiceUnavailable):
    """What a store raises when its database stopped answering."""


class Missing(Exception):
    pass


class ProviderLate(Exception):
    pass


class Line(BaseModel):
    item_id: str = Field(pattern=r"^[a-z0-9-]+$", max_length=64)
    quantity: int = Field(ge=1)


def app_raising(error: Exception) -> FastAPI:
    app = FastAPI()
    install_problem_details(app)
    install_error_handlers(app, [(Missing, 404), (ProviderLate, 504)])

    @app.get("/")
    async def fail() -> None:
        raise error

    @app.post("/lines")
    async def lines(body: Line) -> Line:
        return body

    return app


async def call(
    error: Exception, method: str = "GET", path: str = "/", **kwargs: object
) -> httpx.Response:
    transport = httpx.ASGITransport(app=app_raising(error), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        return await client.request(method, path, **kwargs)  # type: ignore[arg-type]


def assert_problem(got: httpx.Response, status: int) -> dict[str, object]:
    assert got.status_code == status
    assert got.headers["content-type"] == PROBLEM_JSON
    body: dict[str, object] = got.json()
    assert {"type", "title", "status", "detail", "request_id"} <= set(body)
    assert body["status"] == status
    assert got.headers["x-request-id"] == body["request_id"]
    return body


async def test_a_dependency_that_gave_up_is_a_503_whose_cause_is_logged_not_returned(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        got = await call(StoreDown("order state read: PostgreSQL at 10.0.0.7:5432 refused"))
    body = assert_problem(got, 503)
    assert body["type"] == "about:blank" and body["title"] == "Service Unavailable"
    assert "10.0.0.7" not in got.text and "PostgreSQL" not in got.text
    logged = [r.getMessage() for r in caplog.records]
    assert any(str(body["request_id"]) in line and "10.0.0.7:5432" in line for line in logged)


async def test_domain_errors_keep_their_status_and_name_their_type() -> None:
    body = assert_problem(await call(Missing("no such order")), 404)
    assert body["detail"] == "no such order"
    assert body["type"] == "urn:foodflow:problem:missing" and body["title"] == "Missing"


async def test_a_domain_error_given_a_5xx_keeps_its_code_but_not_its_text() -> None:
    got = await call(ProviderLate("provider at 10.1.1.1 did not answer"))
    assert_problem(got, 504)
    assert "10.1.1.1" not in got.text


async def test_an_unhandled_error_is_a_500_with_only_a_request_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR):
        got = await call(RuntimeError("password=hunter2 at db.internal:5432"))
    body = assert_problem(got, 500)
    assert "hunter2" not in got.text and "db.internal" not in got.text
    assert "RuntimeError" not in got.text
    (record,) = [r for r in caplog.records if str(body["request_id"]) in r.getMessage()]
    assert record.exc_info is not None and "hunter2" in str(record.exc_info[1])


async def test_an_http_exception_keeps_its_detail_and_headers() -> None:
    error = HTTPException(
        401, "a service token is required", headers={"WWW-Authenticate": "Bearer"}
    )
    got = await call(error)
    body = assert_problem(got, 401)
    assert body["detail"] == "a service token is required" and body["title"] == "Unauthorized"
    assert got.headers["www-authenticate"] == "Bearer"
    assert_problem(await call(error, path="/nowhere"), 404)
    assert_problem(await call(error, method="DELETE"), 405)


async def test_a_refused_body_lists_its_fields_without_echoing_input_or_patterns() -> None:
    sneaky = "<script>\ud800"
    got = await call(
        Missing(),
        "POST",
        "/lines",
        content=b'{"item_id": "<script>\\ud800", "quantity": 1e999}',
        headers={"content-type": "application/json"},
    )
    body = assert_problem(got, 422)
    fields = {e["field"]: e["message"] for e in body["errors"]}  # type: ignore[attr-defined]
    assert set(fields) == {"body.item_id", "body.quantity"}
    assert "pattern" not in got.text and "a-z0-9" not in got.text
    assert "<script>" not in got.text and sneaky not in got.text
    assert str(body["detail"]).startswith("the request is not valid: body.item_id")


async def test_a_request_id_is_reused_only_when_it_looks_like_one() -> None:
    got = await call(Missing("x"), headers={"X-Request-ID": "trace-42"})
    assert assert_problem(got, 404)["request_id"] == "trace-42"
    forged = await call(Missing("x"), headers={"X-Request-ID": "x\nlevel=error forged"})
    assert "forged" not in str(assert_problem(forged, 404)["request_id"])


def test_a_batch_item_s_5xx_keeps_its_class_but_not_its_text() -> None:
    class Answer(BaseModel):
        n: int

    table = [(Missing, 404), (ProviderLate, 504)]
    response = batch_response(
        Answer,
        [Answer(n=1), Missing("no order 7"), ProviderLate("10.1.1.1:443 timed out")],
        table,
    )
    text = bytes(response.body).decode()
    outcomes = json.loads(text)["outcomes"]
    assert outcomes[0] == {"status": 200, "result": {"n": 1}, "detail": None, "error": None}
    assert (outcomes[1]["status"], outcomes[1]["detail"]) == (404, "no order 7")
    assert outcomes[2]["status"] == 504 and outcomes[2]["error"] == "ProviderLate"
    assert "10.1.1.1" not in text


def test_problem_types_and_titles_come_from_the_error_class() -> None:
    assert problem_type("ReservationNotFound") == "urn:foodflow:problem:reservation-not-found"
    assert problem_title("ReservationNotFound") == "Reservation not found"
