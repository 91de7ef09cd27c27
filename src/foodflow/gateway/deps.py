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

from foodflow.config import Settings
from foodflow.gateway.board import Board
from foodflow.gateway.feed import Broadcaster
from foodflow.kafka.consumer import BatchConsumer
from foodflow.kafka.producer import EventProducer


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


def get_runtime(request: Request) -> GatewayRuntime:
    runtime: GatewayRuntime = request.app.state.gateway
    return runtime


def get_settings(request: Request) -> Settings:
    return get_runtime(request).settings


def get_pool(request: Request) -> asyncpg.Pool:
    return get_runtime(request).pool


def get_redis(request: Request) -> aioredis.Redis:
    return get_runtime(request).redis


def get_producer(request: Request) -> EventProducer:
    return get_runtime(request).producer


def get_board(request: Request) -> Board:
    return get_runtime(request).board


def get_broadcaster(request: Request) -> Broadcaster:
    return get_runtime(request).broadcaster


Runtime = Annotated[GatewayRuntime, Depends(get_runtime)]
AppSettings = Annotated[Settings, Depends(get_settings)]
DbPool = Annotated[asyncpg.Pool, Depends(get_pool)]
RedisClient = Annotated[aioredis.Redis, Depends(get_redis)]
Producer = Annotated[EventProducer, Depends(get_producer)]
OrderBoard = Annotated[Board, Depends(get_board)]
Subscribers = Annotated[Broadcaster, Depends(get_broadcaster)]
