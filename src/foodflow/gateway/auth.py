"""Sign-up, login (rate-limited) and the current user of a request."""

from __future__ import annotations

import logging
from typing import Annotated
from uuid import UUID, uuid4

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from foodflow.gateway.deps import AppSettings, DbPool, RedisClient
from foodflow.gateway.security import (
    InvalidToken,
    Principal,
    Role,
    hash_password,
    issue_token,
    read_token,
    verify_password,
)

log = logging.getLogger(__name__)
router = APIRouter(tags=["users"])
_bearer = HTTPBearer(auto_error=False)


Email = Annotated[
    str, Field(pattern=r"^[^@\s\x00-\x1f]+@[^@\s\x00-\x1f]+\.[^@\s\x00-\x1f]+$", max_length=254)
]


class UserCreate(BaseModel):
    email: Email
    name: str = Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f]+$")
    password: str = Field(min_length=8, max_length=200)


class UserPublic(BaseModel):
    user_id: UUID
    email: str
    name: str
    role: Role


class Login(BaseModel):
    email: Email
    password: str = Field(min_length=1, max_length=200)


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    user: UserPublic


async def current_user(
    settings: AppSettings,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing bearer token: log in at POST /auth/login",
            headers={"WWW-Authenticate": "Bearer"},
        )
    try:
        return read_token(credentials.credentials, settings)
    except InvalidToken as exc:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, str(exc), headers={"WWW-Authenticate": "Bearer"}
        ) from None


CurrentUser = Annotated[Principal, Depends(current_user)]


async def create_user(pool: asyncpg.Pool, body: UserCreate, role: Role) -> UserPublic:
    """Store a new user; the email is unique (case-insensitively)."""
    user_id = uuid4()
    try:
        await pool.execute(
            "INSERT INTO users (user_id, email, name, password_hash, role)"
            " VALUES ($1, $2, $3, $4, $5)",
            user_id,
            body.email.lower(),
            body.name,
            hash_password(body.password),
            role.value,
        )
    except asyncpg.UniqueViolationError:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"a user with email {body.email} exists already"
        ) from None
    return UserPublic(user_id=user_id, email=body.email.lower(), name=body.name, role=role)


@router.post("/users", response_model=UserPublic, status_code=status.HTTP_201_CREATED)
async def sign_up(body: UserCreate, pool: DbPool) -> UserPublic:
    """Create a customer account."""
    return await create_user(pool, body, Role.CUSTOMER)


@router.get("/users/me", response_model=UserPublic)
async def me(user: CurrentUser, pool: DbPool) -> UserPublic:
    """The logged-in user."""
    row = await pool.fetchrow(
        "SELECT user_id, email, name, role FROM users WHERE user_id = $1", user.user_id
    )
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "this user no longer exists")
    return UserPublic.model_validate(dict(row))


@router.post("/auth/login", response_model=Token)
async def login(
    body: Login, request: Request, pool: DbPool, redis: RedisClient, settings: AppSettings
) -> Token:
    """Exchange email and password for a bearer token; a few attempts per minute at most."""
    email = body.email.lower()
    client = request.client.host if request.client else "unknown"
    attempts_key = f"login_attempts:{email}:{client}"
    attempts = await redis.incr(attempts_key)
    if attempts == 1:
        await redis.expire(attempts_key, 60)
    if attempts > settings.login_attempts_per_minute:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            "too many login attempts; wait a minute and try again",
            headers={"Retry-After": "60"},
        )
    row = await pool.fetchrow(
        "SELECT user_id, email, name, role, password_hash FROM users WHERE email = $1", email
    )
    if row is None or not verify_password(row["password_hash"], body.password):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong email or password")
    await redis.delete(attempts_key)
    user = UserPublic(
        user_id=row["user_id"], email=row["email"], name=row["name"], role=Role(row["role"])
    )
    token = issue_token(Principal(user.user_id, user.role), settings)
    return Token(access_token=token, expires_in=settings.access_token_ttl_seconds, user=user)
