"""Passwords (argon2id) and bearer tokens (JWT, HS256, with expiry and a key id). No I/O.

Tokens are signed with the key `JWT_ACTIVE_KEY_ID` names and carry its id (`kid`); any key
listed in `JWT_SIGNING_KEYS` verifies. Rotating is adding a key and making it the active one;
the old key stays listed until the tokens it signed have expired.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from foodflow.platform.config import Settings
from foodflow.platform.secrets import SecretRefused

_hasher = PasswordHasher()
ALGORITHM = "HS256"


class Role(StrEnum):
    """Who a user is: customers order, couriers report the steps of the deliveries they ride,
    operators run the dashboard, admins do all of it."""

    CUSTOMER = "customer"
    COURIER = "courier"
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
