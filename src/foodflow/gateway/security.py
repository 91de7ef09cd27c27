"""Passwords (argon2id, a policy against guessable ones) and bearer tokens (JWT, HS256, with
expiry and a key id). No I/O: hashing runs in worker threads, a few at once (`Passwords`).

Tokens are signed with the key `JWT_ACTIVE_KEY_ID` names and carry its id (`kid`); any key
listed in `JWT_SIGNING_KEYS` verifies. Rotating is adding a key and making it the active one;
the old key stays listed until the tokens it signed have expired.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from zxcvbn import zxcvbn

from foodflow.platform.config import Settings
from foodflow.platform.secrets import SecretRefused

_hasher = PasswordHasher()
ALGORITHM = "HS256"


class Role(StrEnum):
    """Who a user is: customers order, couriers report the steps of the deliveries they ride,
    restaurant staff answer and cook their restaurant's orders, operators run the dashboard,
    admins do all of that but cook."""

    CUSTOMER = "customer"
    COURIER = "courier"
    RESTAURANT = "restaurant"
    OPERATOR = "operator"
    ADMIN = "admin"


STAFF = frozenset({Role.OPERATOR, Role.ADMIN})


class InvalidToken(Exception):
    pass


@dataclass(frozen=True)
class Principal:
    user_id: UUID
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    @property
    def is_staff(self) -> bool:
        """Operators and admins: the dashboard, courier accounts, any delivery's steps."""
        return self.role in STAFF


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


MIN_PASSWORD_LENGTH = 10
# zxcvbn's score 2: more than 10^8 guesses, out of reach of a throttled online attack. It
# refuses the common-password lists it ships (top passwords, keyboard walks, repeats).
MIN_PASSWORD_SCORE = 2
# zxcvbn refuses longer input, and its time grows with the length: the head is what it judges.
ESTIMATED_PASSWORD_LENGTH = 72


def password_weakness(password: str, user_inputs: Sequence[str] = ()) -> str | None:
    """Why `password` is too easy to guess (None when it is not): too short, a common
    password, a pattern, or made of the user's own email or name (`user_inputs`)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"the password needs at least {MIN_PASSWORD_LENGTH} characters"
    estimate = zxcvbn(password[:ESTIMATED_PASSWORD_LENGTH], user_inputs=list(user_inputs))
    if estimate["score"] >= MIN_PASSWORD_SCORE:
        return None
    warning = estimate["feedback"]["warning"] or "it is too easy to guess"
    return f"the password is too weak: {warning.rstrip('.')}; choose a longer, less common one"


class Passwords:
    """argon2id hashing and checking off the event loop: each in a worker thread, at most
    `concurrency` at once (each takes 64 MiB and a core), the others waiting their turn.

    `verify` with no stored hash (an unknown email) checks against a hash of a random
    password, so that it takes as long as for a known email and is always False.
    """

    def __init__(self, concurrency: int) -> None:
        self._slots = asyncio.Semaphore(concurrency)
        self._dummy_hash: str | None = None

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(hash_password, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        if password_hash is None:
            await self.verify(await self._dummy(), password)
            return False
        async with self._slots:
            return await asyncio.to_thread(verify_password, password_hash, password)

    async def weakness(self, password: str, user_inputs: Sequence[str] = ()) -> str | None:
        """`password_weakness` in a worker thread: a long password takes zxcvbn ~50 ms."""
        return await asyncio.to_thread(password_weakness, password, user_inputs)

    async def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = await self.hash(secrets.token_urlsafe(16))
        return self._dummy_hash


def issue_token(principal: Principal, settings: Settings, now: float | None = None) -> str:
    issued = int(now if now is not None else time.time())
    claims = {
        "sub": str(principal.user_id),
        "role": principal.role.value,
        "iat": issued,
        "exp": issued + settings.access_token_ttl_seconds,
    }
    kid = settings.jwt_active_key_id
    key = (settings.jwt_signing_keys or {}).get(kid or "")
    if kid is None or key is None:
        raise SecretRefused("JWT_ACTIVE_KEY_ID does not name one of the JWT_SIGNING_KEYS")
    return jwt.encode(claims, key.get_secret_value(), algorithm=ALGORITHM, headers={"kid": kid})


def read_token(token: str, settings: Settings) -> Principal:
    try:
        kid = jwt.get_unverified_header(token).get("kid")
        key = (settings.jwt_signing_keys or {}).get(kid) if isinstance(kid, str) else None
        if key is None:
            raise InvalidToken("the token is not valid")
        claims = jwt.decode(
            token,
            key.get_secret_value(),
            algorithms=[ALGORITHM],
            options={"require": ["exp", "sub", "role"]},
        )
        return Principal(UUID(claims["sub"]), Role(claims["role"]))
    except jwt.ExpiredSignatureError as exc:
        raise InvalidToken("the token has expired; log in again") from exc
    except (jwt.PyJWTError, ValueError, KeyError) as exc:
        raise InvalidToken("the token is not valid") from exc
