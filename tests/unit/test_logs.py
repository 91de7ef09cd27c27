"""JSON-line logs with the order id, the console format, and reading one order's lines back."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from foodflow.platform.logs import (
    RotatingLogHandler,
    batch_of,
    bind_order_id,
    configure_logging,
    lines_for_order,
    log_files,
    order_id_in_text,
    render_console,
)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.contextvars.clear_contextvars()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_order_id_in_text() -> None:
    oid = str(uuid.uuid4())
    assert order_id_in_text(f"Checking inventory... order {oid}") == oid
    assert order_id_in_text(f"Price mismatch order_id={oid.upper()}") == oid
    assert order_id_in_text(f"Assigned order id {oid} to an order") == oid
    assert order_id_in_text(f"consumer {oid} joined") is None


def test_json_lines_carry_the_order_id(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("order_manager", "INFO", "json")
    log = logging.getLogger("foodflow.test")
    oid, bound = str(uuid.uuid4()), str(uuid.uuid4())
    log.info("Checking inventory... order %s", oid)

    async def handler() -> None:
        bind_order_id(bound)
        log.info("Available=%s", True)

    asyncio.run(handler())
    log.info("no order here")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert lines[0]["message"] == f"Checking inventory... order {oid}"
    assert lines[0]["order_id"] == oid
    assert lines[0]["service"] == "order_manager"
    assert lines[0]["level"] == "info"
    assert lines[0]["logger"] == "foodflow.test"
    assert lines[0]["ts"].endswith("Z")
    assert list(lines[0])[:5] == ["ts", "level", "service", "logger", "message"]
    assert lines[1] == {**lines[1], "message": "Available=True", "order_id": bound}
    assert "order_id" not in lines[2]  # the binding stayed inside its task


def test_a_structlog_logger_writes_the_same_json_line(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("order_manager", "INFO", "json")
    log = structlog.get_logger("foodflow.test.structlog")
    oid = str(uuid.uuid4())
    log.info("Confirming order", order_id=oid, total="45.09")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("Failed")
    first, second = (json.loads(line) for line in capsys.readouterr().err.splitlines())
    assert list(first)[:5] == ["ts", "level", "service", "logger", "message"]
    assert first["ts"].endswith("Z")
    assert first == {
        "ts": first["ts"],
        "level": "info",
        "service": "order_manager",
        "logger": "foodflow.test.structlog",
        "message": "Confirming order",
        "order_id": oid,
        "total": "45.09",
    }
    assert second["message"] == "Failed" and second["level"] == "error"
    assert "RuntimeError: boom" in second["exception"]


def test_console_format_keeps_the_seed_lines_readable(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("inventory_service", "INFO", "console")
    logging.getLogger("foodflow.test").info("Checking inventory...")
    line = capsys.readouterr().err.strip()
    assert line.endswith("INFO    inventory_service foodflow.test: Checking inventory...")


def test_lines_for_order_merges_services_in_time_order(tmp_path: Path) -> None:
    oid, other = str(uuid.uuid4()), str(uuid.uuid4())
    manager = tmp_path / "order_manager.log"
    inventory = tmp_path / "inventory_service.log"

    def line(ts: str, message: str, order_id: str | None, service: str) -> str:
        event = {"ts": ts, "level": "info", "service": service, "logger": "x", "message": message}
        if order_id:
            event["order_id"] = order_id
        return json.dumps(event)

    manager.write_text(
        "\n".join(
            [
                line(
                    "2026-11-28T10:00:00.100000Z", "Received validated order", oid, "order_manager"
                ),
                line(
                    "2026-11-28T10:00:00.150000Z",
                    "Received validated order",
                    other,
                    "order_manager",
                ),
                line("2026-11-28T10:00:00.400000Z", "Confirming order", oid, "order_manager"),
                "not a log line",
            ]
        )
    )
    inventory.write_text(
        line("2026-11-28T10:00:00.200000Z", "Checking inventory...", oid, "inventory_service")
        + "\n"
    )
    found = lines_for_order(oid, [manager, inventory, tmp_path / "missing.log"])
    assert [(x.service, x.event["message"]) for x in found] == [
        ("order_manager", "Received validated order"),
        ("inventory_service", "Checking inventory..."),
        ("order_manager", "Confirming order"),
    ]
    assert oid in found[0].render() or "Received validated order" in found[0].render()


def test_periodic_flush_handler_holds_info_lines_briefly_and_warnings_not_at_all(
    tmp_path: Path,
) -> None:
    from foodflow.platform.logs import PeriodicFlushHandler

    path = tmp_path / "service.log"
    with path.open("w", buffering=1 << 16) as stream:
        handler = PeriodicFlushHandler(stream, interval=0.05)
        logger = logging.getLogger("foodflow.test.buffered")
        logger.addHandler(handler)
        logger.propagate = False
        logger.setLevel(logging.INFO)
        try:
            logger.warning("at once")
            assert path.read_text() == "at once\n"
            logger.info("soon")
            for _ in range(100):
                if "soon" in path.read_text():
                    break
                time.sleep(0.01)
            assert path.read_text() == "at once\nsoon\n"
        finally:
            logger.removeHandler(handler)
            handler.close()


def test_a_batch_line_names_every_order_once(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("inventory_service", "INFO", "json")
    ids = [uuid.uuid4() for _ in range(300)]
    logging.getLogger("foodflow.test").info("Reserved %d", len(ids), extra=batch_of(ids))
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    event = json.loads(lines[0])
    assert event["message"] == "Reserved 300"
    assert event["order_ids"] == [str(i) for i in ids]
    assert "order_id" not in event


def test_console_format_shows_a_batch_s_order_ids(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("pricing_service", "INFO", "console")
    oid = str(uuid.uuid4())
    logging.getLogger("foodflow.test").info("Priced 1", extra=batch_of([oid]))
    assert oid in capsys.readouterr().err


def _line(ts: str, message: str, **fields: object) -> str:
    event = {"ts": ts, "level": "info", "service": "x", "logger": "x", "message": message}
    return json.dumps({**event, **fields}) + "\n"


def test_lines_for_order_finds_an_order_in_a_batch_line_and_in_rotated_files(
    tmp_path: Path,
) -> None:
    oid, other = str(uuid.uuid4()), str(uuid.uuid4())
    (tmp_path / "payment_service.log.2").write_text(
        _line("2026-11-28T10:00:00.100000Z", "Authorised a batch", order_ids=[other, oid])
    )
    (tmp_path / "payment_service.log.1").write_text(
        _line("2026-11-28T10:00:00.200000Z", "Captured a batch", order_ids=[other])
    )
    (tmp_path / "payment_service.log").write_text(
        _line("2026-11-28T10:00:00.300000Z", f"Refund of order {oid.upper()}: REFUNDED")
    )
    (tmp_path / "payment_service.out").write_text("not a log file\n")
    (tmp_path / "order_manager.log").write_text(
        _line("2026-11-28T10:00:00.050000Z", "Received", order_id=oid)
        + _line("2026-11-28T10:00:00.060000Z", f"Another order; not {oid}", order_id=other)
    )
    files = log_files(tmp_path)
    assert [p.name for p in files] == [
        "order_manager.log",
        "payment_service.log",
        "payment_service.log.1",
        "payment_service.log.2",
    ]
    found = lines_for_order(oid.upper(), files)
    assert [line.event["message"] for line in found] == [
        "Received",
        "Authorised a batch",
        f"Refund of order {oid.upper()}: REFUNDED",
    ]
    assert log_files(tmp_path / "absent") == []
    assert found[1].render().endswith("Authorised a batch  batch=2 orders")


def test_the_log_file_rotates_by_size_and_keeps_n_backups(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "gateway.log"
    handler = RotatingLogHandler(path, max_bytes=1024, backups=3, redirect_std=False)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("foodflow.test.rotating")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        for number in range(200):  # ~20 kB: many times the limit
            logger.info("line %04d %s", number, "x" * 90)
        handler.flush()
    finally:
        logger.removeHandler(handler)
        handler.close()
    names = sorted(p.name for p in path.parent.iterdir())
    assert names == ["gateway.log", "gateway.log.1", "gateway.log.2", "gateway.log.3"]
    # A log names orders and customers' ids: readable by the owner's group, not by everyone.
    assert {file.stat().st_mode & 0o777 for file in path.parent.iterdir()} <= {0o640, 0o600}
    for file in path.parent.iterdir():
        assert file.stat().st_size <= 1024 + 100
    # The newest lines are in the current file, the ones before them in .1, and none is lost
    # across the files kept.
    kept = [
        line
        for name in ("gateway.log.3", "gateway.log.2", "gateway.log.1", "gateway.log")
        for line in (path.parent / name).read_text().splitlines()
    ]
    numbers = [int(line.split()[1]) for line in kept]
    assert numbers == list(range(numbers[0], 200))
    assert numbers[-1] == 199


def test_a_log_file_is_continued_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "order_writer.log"
    path.write_text("x" * 1000 + "\n")
    handler = RotatingLogHandler(path, max_bytes=1100, backups=1, redirect_std=False)
    handler.setFormatter(logging.Formatter("%(message)s"))
    record = logging.LogRecord("x", logging.INFO, "", 0, "y" * 200, None, None)
    handler.handle(record)
    handler.close()
    assert (tmp_path / "order_writer.log.1").read_text().startswith("x" * 1000)


def test_a_console_line_cannot_be_forged_by_a_logged_value() -> None:
    """A request path or a field holding a newline or an escape sequence stays on its line."""
    line = render_console(
        {
            "ts": "2026-12-01T03:00:00",
            "level": "warning",
            "message": "GET /x\n2026-12-01T03:00:01 INFO gateway forged\x1b[2J",
            "path": "/a\r/b",
        }
    )
    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    assert "/x\\n2026" in line and "\\x1b[2J" in line and "path=/a\\r/b" in line
