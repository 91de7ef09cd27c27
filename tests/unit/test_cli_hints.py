"""The helpers that word what went wrong on the command line: one line a person can act on, an
exit code a script can use, never a traceback or a Python repr (issue 14).

The commands themselves, with the system down or given bad values, are run in
tests/integration/test_cli_without_system.py."""

from __future__ import annotations

import json
import socket

import pytest
import typer
from pydantic import BaseModel, Field, ValidationError

from foodflow.platform.config import Settings
from foodflow.tools import cli_errors
from foodflow.tools.cli_errors import ExitCode, Server, Unavailable


class Line(BaseModel):
    item_id: str = Field(min_length=1)
    quantity: int = Field(ge=1)


class Order(BaseModel):
    items: list[Line]


def test_validation_errors_become_field_message_lines() -> None:
    with pytest.raises(ValidationError) as caught:
        Order.model_validate({"items": [{"item_id": "", "quantity": 0}]})
    assert cli_errors.validation_lines(caught.value) == [
        "items.0.item_id: String should have at least 1 character",
        "items.0.quantity: Input should be greater than or equal to 1",
    ]


def test_a_problem_detail_is_its_title_and_detail() -> None:
    body = json.dumps(
        {"type": "about:blank", "title": "Not Found", "status": 404, "detail": "no such order"}
    )
    assert cli_errors.problem_text(404, body) == "404 Not Found: no such order"


def test_a_problem_with_field_errors_names_each_field() -> None:
    body = json.dumps(
        {
            "title": "Unprocessable Content",
            "status": 422,
            "detail": "the request is invalid",
            "errors": [
                {"loc": ["body", "items", 0, "quantity"], "msg": "must be at least 1"},
                {"loc": ["body", "payment_token"], "msg": "Field required"},
            ],
        }
    )
    assert cli_errors.problem_text(422, body) == (
        "422 Unprocessable Content: the request is invalid; items.0.quantity: must be at least 1;"
        " payment_token: Field required"
    )


def test_fastapis_own_detail_is_understood_too() -> None:
    assert cli_errors.problem_text(401, '{"detail": "wrong email or password"}') == (
        "401: wrong email or password"
    )
    validation = {"detail": [{"loc": ["body", "items"], "msg": "Field required", "type": "x"}]}
    assert cli_errors.problem_text(422, json.dumps(validation)) == "422: items: Field required"


def test_an_answer_that_is_not_json_is_shown_as_one_printable_line() -> None:
    hostile = "Bad\ngateway \x1b[31mred\x1b[0m " + "x" * 1000
    text = cli_errors.problem_text(502, hostile)
    assert "\n" not in text and "\x1b" not in text
    assert text.startswith("502: Bad gateway")
    assert len(text) <= 300 and text.endswith("…")
    assert cli_errors.problem_text(500, "") == "500: no detail"


def test_only_an_unavailable_backend_behind_the_gateway_is_exit_3() -> None:
    assert cli_errors.exit_code_for_status(503) == ExitCode.UNAVAILABLE
    assert cli_errors.exit_code_for_status(504) == ExitCode.UNAVAILABLE
    assert cli_errors.exit_code_for_status(404) == ExitCode.REFUSED
    assert cli_errors.exit_code_for_status(422) == ExitCode.REFUSED
    assert cli_errors.exit_code_for_status(500) == ExitCode.REFUSED


def test_the_unavailable_line_names_each_server_and_says_what_to_do() -> None:
    redis = Server("Redis", "127.0.0.1", 6379)
    postgres = Server("PostgreSQL", "::1", 5432)
    assert Unavailable([redis]).line() == (
        "Redis at 127.0.0.1:6379 is not answering — is the system up? `foodflow status` shows"
        " what runs, `foodflow up` starts it"
    )
    both = Unavailable([redis, postgres], cause="Connection\nrefused").line()
    assert both.startswith(
        "Redis at 127.0.0.1:6379 and PostgreSQL at [::1]:5432 are not answering"
        " (Connection refused) — "
    )


def test_require_names_only_the_servers_that_do_not_answer() -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        up = Server("Kafka", "127.0.0.1", listening.getsockname()[1])
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))  # bound, not listening: refused
            down = Server("Redis", "127.0.0.1", sock.getsockname()[1])
            with pytest.raises(Unavailable) as caught:
                cli_errors.require(up, down)
        cli_errors.require(up)
    assert caught.value.servers == [down]


def test_the_services_are_probed_where_the_others_call_them() -> None:
    settings = Settings(PAYMENT_URL="http://payments.internal:9100", GATEWAY_PORT=18000)
    by_name = {s.name: s for s in cli_errors.services(settings)}
    assert by_name["payment_service"] == Server("payment_service", "payments.internal", 9100)
    assert by_name["gateway"] == Server("gateway", "127.0.0.1", 18000)
    assert len(by_name) == 8


def test_a_whole_system_down_is_named_by_its_first_few_servers() -> None:
    servers = [Server(f"s{n}", "127.0.0.1", 8000 + n) for n in range(10)]
    assert (
        Unavailable(servers)
        .line()
        .startswith(
            "s0 at 127.0.0.1:8000, s1 at 127.0.0.1:8001, s2 at 127.0.0.1:8002 and 7 more are not"
        )
    )


def test_a_refusal_is_printed_as_text_not_as_markup(capsys: pytest.CaptureFixture[str]) -> None:
    from foodflow.tools.customer import _fail
    from foodflow.tools.http import Response

    exit_ = _fail(Response(422, '{"title": "Unprocessable", "detail": "no item [/x] [bold]y"}'))
    assert exit_.exit_code == ExitCode.REFUSED
    assert "no item [/x] [bold]y" in capsys.readouterr().err  # a MarkupError before


def test_a_lazy_command_group_loads_when_run_and_probes_what_it_needs_first() -> None:
    from typing import ClassVar

    from typer.testing import CliRunner

    from foodflow.cli import LazyCommand, LazyGroup

    probed: list[str] = []

    def needs() -> list[Server]:
        probed.append("letters")
        return []

    class Group(LazyGroup):
        lazy: ClassVar = {
            "letters": LazyCommand(
                "foodflow.tools.dead_letters", "dlq_app", "Dead letters, loaded late.", needs
            )
        }

    app = typer.Typer(cls=Group)
    app.callback()(lambda: None)  # a group, not a lone command
    app.command("hello")(lambda: None)
    runner = CliRunner()
    listing = runner.invoke(app, ["--help"])
    assert "Dead letters, loaded late." in listing.output
    assert probed == []  # listing the commands neither loads nor probes
    assert "replay" in runner.invoke(app, ["letters", "--help"]).output
    assert probed == []  # nor does asking for a command's help
    done = runner.invoke(app, ["letters", "replay", "abc"])
    assert done.exit_code == ExitCode.USAGE  # the group ran, after its probe
    assert probed == ["letters"]
