"""What one request may carry: a body-size limit on every service, and 422s that stay 422s.

`install_body_limit(app, settings)` is the one line each service's app adds (through
`platform.http.app.service_app`). Bodies beyond `MAX_BODY_BYTES` (`MAX_BATCH_BODY_BYTES` for the
internal `…_batch` endpoints) are answered 413 before more than the limit is read: at once from
`Content-Length`, and for a chunked body as soon as the chunks received pass it. Refused bodies
are answered 422 by `platform.http.errors` (problem details that never echo the input, so an
infinite `1e999` or an unpaired surrogate cannot turn the refusal into a 500).
"""

from __future__ import annotations

from fastapi import FastAPI, Request, status
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from foodflow.platform.config import Settings
from foodflow.platform.http.errors import problem

BATCH_SUFFIX = "_batch"


class BodyTooLarge(HTTPException):
    """Raised from `receive` when a streamed body passes the limit; FastAPI lets it through."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            status.HTTP_413_CONTENT_TOO_LARGE, f"request body larger than {limit} bytes"
        )


class BodyLimit:
    """ASGI middleware: 413 for a body over `limit` bytes (`batch_limit` on `…_batch` paths)."""

    def __init__(self, app: ASGIApp, limit: int, batch_limit: int) -> None:
        self.app = app
        self.limit = limit
        self.batch_limit = batch_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        limit = self.batch_limit if path.endswith(BATCH_SUFFIX) else self.limit
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _too_large(scope, receive, send, limit)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except BodyTooLarge:
            # The route did not catch it (not a FastAPI body): answer here if still possible.
            if started:
                raise
            await _too_large(scope, receive, send, limit)


def install_body_limit(app: FastAPI, settings: Settings) -> None:
    """Limit request bodies to `settings.max_body_bytes` (`max_batch_body_bytes` on batch
    endpoints)."""
    app.add_middleware(
        BodyLimit, limit=settings.max_body_bytes, batch_limit=settings.max_batch_body_bytes
    )


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _too_large(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    response = problem(
        Request(scope),
        status.HTTP_413_CONTENT_TOO_LARGE,
        f"request body larger than {limit} bytes",
        headers={"Connection": "close"},
    )
    await response(scope, receive, send)
