"""The gateway in-process (its lifespan run, the real PostgreSQL, Redis and Kafka), reached
from any client address: each test attacks from addresses and accounts of its own."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import FastAPI

from foodflow.gateway.app import create_app
from foodflow.platform.config import Settings
from foodflow.tools.secrets import load_settings

Client = Callable[[str], httpx.AsyncClient]


@pytest.fixture(scope="package")
async def gateway(infra: Settings) -> AsyncIterator[FastAPI]:
    # For this package's tests only: its lifespan runs a Kafka producer and consumer in this
    # process, which must not live on into the e2e tests that restart Kafka under them (a
    # librdkafka client left running through chaos's restarts aborted the test process).
    app = create_app(load_settings(infra, "gateway"))
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
def client_from(gateway: FastAPI) -> Callable[[str], httpx.AsyncClient]:
    """A client whose requests come from the socket peer `address`."""

    def make(address: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=gateway, client=(address, 40000))
        return httpx.AsyncClient(transport=transport, base_url="http://gateway", timeout=30.0)

    return make


def an_address() -> str:
    """A fresh address in 198.18.0.0/15 (reserved for tests): no throttle has seen it."""
    return f"198.{random.randint(18, 19)}.{random.randint(0, 255)}.{random.randint(1, 254)}"


def an_email() -> str:
    return f"sec-{uuid.uuid4().hex[:12]}@example.com"


STRONG_PASSWORD = "violet staple orbit"
