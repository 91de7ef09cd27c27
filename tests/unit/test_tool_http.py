"""The tools' blocking HTTP session on aiohttp, against a small local server."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from foodflow.tools import http


class Echo(BaseHTTPRequestHandler):
    """GET /plain answers text; any other request echoes its method, path, auth and body."""

    def do_GET(self) -> None:
        if self.path == "/plain":
            self._answer(418, b"not json", "text/plain")
        else:
            self._echo()

    def do_POST(self) -> None:
        self._echo()

    def _echo(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        seen = {
            "method": self.command,
            "path": self.path,
            "auth": self.headers.get("Authorization"),
            "body": body,
        }
        self._answer(200, json.dumps(seen).encode(), "application/json")

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_session_joins_paths_and_sends_json_and_headers(server: str) -> None:
    with http.HttpSession(server, timeout=5) as session:
        posted = session.post("/users", json={"email": "a@b.c"}, headers={"Authorization": "x"})
        fetched = session.get("/orders/1")
    assert posted.status_code == 200
    assert posted.json() == {
        "method": "POST",
        "path": "/users",
        "auth": "x",
        "body": {"email": "a@b.c"},
    }
    assert fetched.json()["path"] == "/orders/1"


def test_a_body_that_is_not_json_keeps_its_status_and_text(server: str) -> None:
    answer = http.get(server + "/plain", timeout=5)
    assert (answer.status_code, answer.text) == (418, "not json")
    with pytest.raises(ValueError):
        answer.json()


def test_no_answer_raises_one_of_http_errors() -> None:
    with pytest.raises(http.HTTP_ERRORS):
        http.get(f"http://127.0.0.1:{closed_port()}/health", timeout=1)


async def test_works_from_a_thread_whose_event_loop_is_running(server: str) -> None:
    assert http.get(server + "/health", timeout=5).status_code == 200
