"""What the gateway's routes depend on, as `Annotated` aliases (`DbPool`, `RedisClient`, …).

Everything is built once by the lifespan in `gateway.app` and kept on `app.state.gateway`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Annotated

import asyncpg
import redis.asyncio as aioredis
from fastapi import Depends, Request

from foodflow.gateway.board import Board
from foodflow.gateway.feed import Broadcaster
from foodflow.platform.config import Settings
from foodflow.platform.kafka.consumer import BatchConsumer
from foodflow.platform.kafka.producer import EventProducer


@dataclass
class GatewayRuntime:
    """The long-lived clients the gateway's lifespan owns."""

    settings: Settings
    pool: asyncpg.Pool
    redis: aioredis.Redis
    producer: EventProducer
    board: Board
    broadcaster: Broadcaster
    consumer: BatchConsumer
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


def runtime_of(request: Request) -> GatewayRuntime:
    runtime: GatewayRuntime = request.app.state.gateway
    return runtime


# The dependencies are coroutines: FastAPI runs a plain `def` dependency in its thread pool,
# a thread hop per request for a lookup.


async def get_runtime(request: Request) -> GatewayRuntime:
    return runtime_of(request)


async def get_settings(request: Request) -> Settings:
    return runtime_of(request).settings


async def get_pool(request: Request) -> asyncpg.Pool:
    return runtime_of(request).pool


async def get_redis(request: Request) -> aioredis.Redis:
    return runtime_of(request).redis


async def get_producer(request: Request) -> EventProducer:
    return runtime_of(request).producer


async def get_board(request: Request) -> Board:
    return runtime_of(request).board


async def get_broadcaster(request: Request) -> Broadcaster:
    return runtime_of(request).broadcaster


Runtime = Annotated[GatewayRuntime, Depends(get_runtime)]
AppSettings = Annotated[Settings, Depends(get_settings)]
DbPool = Annotated[asyncpg.Pool, Depends(get_pool)]
RedisClient = Annotated[aioredis.Redis, Depends(get_redis)]
Producer = Annotated[EventProducer, Depends(get_producer)]
OrderBoard = Annotated[Board, Depends(get_board)]
Subscribers = Annotated[Broadcaster, Depends(get_broadcaster)]
