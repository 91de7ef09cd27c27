"""The gateway's runtime and what routes depend on, as `Annotated` aliases.

Everything is built once by the lifespan in `gateway.app` and kept on `app.state.runtime`.
The client's address is the socket peer's, unless that peer is a trusted proxy
(`TRUSTED_PROXIES`): then the right-most X-Forwarded-For entry that is not a trusted proxy.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated
from uuid import UUID

import asyncpg
import redis.asyncio as aioredis
from fastapi import Depends, Request

from foodflow.clients.inventory import InventoryClient
from foodflow.gateway.adapters import (
    DeliveryClient,
    KafkaOrderPublisher,
    OrderState,
    RedisThrottle,
    RestaurantDesk,
)
from foodflow.gateway.board import Board
from foodflow.gateway.feed import Broadcaster
from foodflow.gateway.ops import OpsRefresher
from foodflow.gateway.repository import GatewayRepository
from foodflow.gateway.security import Passwords
from foodflow.platform.config import Settings
from foodflow.platform.http.runtime import RuntimeSlot
from foodflow.platform.kafka.consumer import BatchConsumer
from foodflow.platform.kafka.producer import EventProducer


@dataclass
class GatewayRuntime:
    """The long-lived clients and adapters the gateway's lifespan owns."""

    settings: Settings
    pool: asyncpg.Pool
    redis: aioredis.Redis
    producer: EventProducer
    consumer: BatchConsumer
    board: Board
    broadcaster: Broadcaster
    repository: GatewayRepository
    orders: OrderState
    inventory: InventoryClient
    delivery: DeliveryClient
    restaurants: RestaurantDesk
    publisher: KafkaOrderPublisher
    throttle: RedisThrottle
    passwords: Passwords
    # Who places the dashboard's test orders (created at start).
    demo_customer: UUID
    # The dashboard's operations figures, measured by one task of this process.
    ops: OpsRefresher
    # Set when shutdown begins, so that open dashboard streams end at once.
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


Network = ipaddress.IPv4Network | ipaddress.IPv6Network

RUNTIME = RuntimeSlot(GatewayRuntime)
runtime_of = RUNTIME.of


# The dependencies are coroutines: FastAPI runs a plain `def` dependency in its thread pool,
# a thread hop per request for a lookup.


async def get_settings(request: Request) -> Settings:
    return runtime_of(request).settings


async def get_repository(request: Request) -> GatewayRepository:
    return runtime_of(request).repository


async def get_order_state(request: Request) -> OrderState:
    return runtime_of(request).orders


async def get_inventory(request: Request) -> InventoryClient:
    return runtime_of(request).inventory


async def get_delivery(request: Request) -> DeliveryClient:
    return runtime_of(request).delivery


async def get_restaurants(request: Request) -> RestaurantDesk:
    return runtime_of(request).restaurants


async def get_publisher(request: Request) -> KafkaOrderPublisher:
    return runtime_of(request).publisher


async def get_throttle(request: Request) -> RedisThrottle:
    return runtime_of(request).throttle


async def get_passwords(request: Request) -> Passwords:
    return runtime_of(request).passwords


async def get_board(request: Request) -> Board:
    return runtime_of(request).board


async def get_demo_customer(request: Request) -> UUID:
    return runtime_of(request).demo_customer


async def get_client_address(request: Request) -> str:
    peer = request.client.host if request.client else "unknown"
    return client_address(
        peer,
        request.headers.getlist("x-forwarded-for"),
        runtime_of(request).settings.trusted_proxies,
    )


def client_address(peer: str, forwarded_for: Sequence[str], proxies: Sequence[Network]) -> str:
    """The socket peer, or, when it is a trusted proxy, the right-most X-Forwarded-For hop that
    is not: every hop left of it could have been written by the client itself."""
    if not _trusted(peer, proxies):
        return peer
    hops = [hop.strip() for header in forwarded_for for hop in header.split(",")]
    for hop in reversed([hop for hop in hops if hop]):
        if not _trusted(hop, proxies):
            return hop
    return peer


def _trusted(address: str, proxies: Sequence[Network]) -> bool:
    if not proxies:
        return False
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    # An IPv4 client on a dual-stack socket shows as ::ffff:a.b.c.d: compare the IPv4 address.
    ip = (parsed.ipv4_mapped if isinstance(parsed, ipaddress.IPv6Address) else None) or parsed
    return any(ip in network for network in proxies)


Runtime = Annotated[GatewayRuntime, Depends(RUNTIME.dependency)]
AppSettings = Annotated[Settings, Depends(get_settings)]
Repository = Annotated[GatewayRepository, Depends(get_repository)]
Orders = Annotated[OrderState, Depends(get_order_state)]
Inventory = Annotated[InventoryClient, Depends(get_inventory)]
Delivery = Annotated[DeliveryClient, Depends(get_delivery)]
Restaurants = Annotated[RestaurantDesk, Depends(get_restaurants)]
Publisher = Annotated[KafkaOrderPublisher, Depends(get_publisher)]
Throttles = Annotated[RedisThrottle, Depends(get_throttle)]
PasswordHashing = Annotated[Passwords, Depends(get_passwords)]
ClientAddress = Annotated[str, Depends(get_client_address)]
OrderBoard = Annotated[Board, Depends(get_board)]
DemoCustomer = Annotated[UUID, Depends(get_demo_customer)]
