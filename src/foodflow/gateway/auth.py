"""Sign-up, login (rate-limited), the current user of a request and the roles routes need."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from foodflow.gateway import services
from foodflow.gateway.deps import (
    AppSettings,
    ClientAddress,
    PasswordHashing,
    Repository,
    Throttles,
)
from foodflow.gateway.schemas import Login, SignUpAccepted, Token, UserCreate, UserPublic
from foodflow.gateway.security import STAFF, InvalidToken, Principal, Role, read_token

router = APIRouter(tags=["users"])
_bearer = HTTPBearer(auto_error=False)


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


async def staff_user(user: CurrentUser) -> Principal:
    """The current user if an operator or admin: 401 without a valid token, 403 for others."""
    if user.role not in STAFF:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "operators and admins only")
    return user


StaffUser = Annotated[Principal, Depends(staff_user)]


@router.post("/users", response_model=SignUpAccepted, status_code=status.HTTP_202_ACCEPTED)
async def sign_up(
    body: UserCreate,
    repository: Repository,
    passwords: PasswordHashing,
    throttle: Throttles,
    address: ClientAddress,
) -> SignUpAccepted:
    """Create a customer account; the same answer whether or not the email had one."""
    return await services.sign_up(repository, passwords, throttle, body, Role.CUSTOMER, address)


@router.get("/users/me", response_model=UserPublic)
async def me(user: CurrentUser, repository: Repository) -> UserPublic:
    """The logged-in user."""
    return await services.me(repository, user)


@router.post("/auth/login", response_model=Token)
async def login(
    body: Login,
    repository: Repository,
    passwords: PasswordHashing,
    throttle: Throttles,
    settings: AppSettings,
    address: ClientAddress,
) -> Token:
    """Exchange email and password for a bearer token; a few attempts per minute at most."""
    return await services.log_in(
        repository, passwords, throttle, settings, body.email, body.password, address
    )
