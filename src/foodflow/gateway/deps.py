"""The gateway's runtime and what routes depend on, as `Annotated` aliases.

Everything is built once by the lifespan in `gateway.app` and kept on `app.state.runtime`.
"""

from __future__ import annotations

import asyncio
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
    RedisLoginAttempts,
)
from foodflow.gateway.board import Board
from foodflow.gateway.feed import Broadcaster
from foodflow.gateway.repository import GatewayRepository
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
    publisher: KafkaOrderPublisher
    login_attempts: RedisLoginAttempts
    # Who places the dashboard's test orders (created at start).
    demo_customer: UUID
    # Set when shutdown begins, so that open dashboard streams end at once.
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


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


async def get_publisher(request: Request) -> KafkaOrderPublisher:
    return runtime_of(request).publisher


async def get_login_attempts(request: Request) -> RedisLoginAttempts:
    return runtime_of(request).login_attempts


async def get_board(request: Request) -> Board:
    return runtime_of(request).board


async def get_demo_customer(request: Request) -> UUID:
    return runtime_of(request).demo_customer


Runtime = Annotated[GatewayRuntime, Depends(RUNTIME.dependency)]
AppSettings = Annotated[Settings, Depends(get_settings)]
Repository = Annotated[GatewayRepository, Depends(get_repository)]
Orders = Annotated[OrderState, Depends(get_order_state)]
Inventory = Annotated[InventoryClient, Depends(get_inventory)]
Delivery = Annotated[DeliveryClient, Depends(get_delivery)]
Publisher = Annotated[KafkaOrderPublisher, Depends(get_publisher)]
LoginCounter = Annotated[RedisLoginAttempts, Depends(get_login_attempts)]
OrderBoard = Annotated[Board, Depends(get_board)]
DemoCustomer = Annotated[UUID, Depends(get_demo_customer)]
