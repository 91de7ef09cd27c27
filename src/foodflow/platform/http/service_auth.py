"""Who is calling: short-lived Ed25519 tokens between services, checked per route.

A caller signs {"iss": <caller>, "aud": <callee>, "iat", "exp": +300 s} with its own private
key (`ServiceTokens`, one token per callee, reused until a minute before it expires); the
callee verifies it with the caller's public key, checks that it is the audience and that the
caller is allowed on the route (`allow(*callers)`): no or bad token 401, a caller not allowed
403. Ed25519 rather than one shared HMAC secret: a service that leaks its key lets an attacker
speak as that service only, not mint tokens for any other.

The callee remembers the tokens it has verified until they expire, so a batch endpoint under
load checks one signature per caller every few minutes, not one per request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import jwt
from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from foodflow.platform.config import PORT_SETTING, Settings
from foodflow.platform.errors import FoodflowError
from foodflow.platform.secrets import SecretRefused, env_name, private_key, public_key

log = logging.getLogger(__name__)

ALGORITHM = "EdDSA"
TOKEN_TTL_SECONDS = 300
# A token is replaced this long before it expires, so it never expires in flight.
REFRESH_BEFORE_SECONDS = 60
# Clock skew tolerated between hosts.
LEEWAY_SECONDS = 30
# A token promising to live longer than this is refused: a leaked one is worth little.
MAX_TOKEN_LIFETIME_SECONDS = 900
# Verified tokens remembered (one per caller instance and audience in practice).
VERIFIED_CACHE_SIZE = 4096
Clock = Callable[[], float]


class InvalidServiceToken(FoodflowError):
    """The token is missing its claims, expired, for another service, or not signed by its
    issuer's key."""


class ServiceTokens:
    """This service's tokens for the services it calls, minted on demand and cached."""

    def __init__(
        self,
        issuer: str,
        private_key_pem: str,
        *,
        ttl_seconds: int = TOKEN_TTL_SECONDS,
        clock: Clock = time.time,
    ) -> None:
        self.issuer = issuer
        self._key = private_key(private_key_pem, env_name("service_private_key"))
        self._ttl = ttl_seconds
        self._clock = clock
        self._tokens: dict[str, tuple[str, float]] = {}

    @classmethod
    def from_settings(cls, issuer: str, settings: Settings) -> ServiceTokens:
        if settings.service_private_key is None:
            raise SecretRefused(f"{env_name('service_private_key')} is not set")
        return cls(issuer, settings.service_private_key.get_secret_value())

    def token_for(self, audience: str) -> str:
        """A token for calls to `audience` (a service name) valid for at least a minute."""
        now = self._clock()
        cached = self._tokens.get(audience)
        if cached is not None and cached[1] - REFRESH_BEFORE_SECONDS > now:
            return cached[0]
        issued = int(now)
        expires = issued + self._ttl
        claims = {"iss": self.issuer, "aud": audience, "iat": issued, "exp": expires}
        token = jwt.encode(claims, self._key, algorithm=ALGORITHM)
        self._tokens[audience] = (token, expires)
        return token

    def authorization(self, audience: str) -> str:
        """The `Authorization` header value for a call to `audience`."""
        return f"Bearer {self.token_for(audience)}"


class ServiceVerifier:
    """Verifies the tokens sent to `service` against the callers' public keys."""

    def __init__(
        self, service: str, public_keys: Mapping[str, str], *, clock: Clock = time.time
    ) -> None:
        self.service = service
        variable = env_name("service_public_keys")
        self._keys = {
            name: public_key(pem, f"{variable}[{name!r}]") for name, pem in public_keys.items()
        }
        self._clock = clock
        self._verified: dict[str, tuple[str, float]] = {}

    @classmethod
    def from_settings(cls, service: str, settings: Settings) -> ServiceVerifier:
        return cls(service, settings.service_public_keys or {})

    def caller_of(self, token: str) -> str:
        """The calling service's name, or `InvalidServiceToken`."""
        remembered = self._verified.get(token)
        now = self._clock()
        if remembered is not None and remembered[1] > now:
            return remembered[0]
        caller, expires = self._verify(token, now)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.clear()
        self._verified[token] = (caller, expires)
        return caller

    def _verify(self, token: str, now: float) -> tuple[str, float]:
        try:
            issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
            if not isinstance(issuer, str) or issuer not in self._keys:
                raise InvalidServiceToken("the token's issuer is not a known service")
            claims: dict[str, Any] = jwt.decode(
                token,
                self._keys[issuer],
                algorithms=[ALGORITHM],
                audience=self.service,
                issuer=issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["iss", "aud", "iat", "exp"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidServiceToken("the token has expired") from exc
        except jwt.InvalidAudienceError as exc:
            raise InvalidServiceToken(f"the token is not meant for {self.service}") from exc
        except jwt.PyJWTError as exc:
            # The library's words (which check failed, on what) are for our log, not the caller.
            log.info("A service token was refused: %s: %s", type(exc).__name__, exc)
            raise InvalidServiceToken("the token is not valid") from exc
        expires = float(claims["exp"])
        if expires - float(claims["iat"]) > MAX_TOKEN_LIFETIME_SECONDS:
            raise InvalidServiceToken("the token claims too long a lifetime")
        if expires + LEEWAY_SECONDS <= now:
            raise InvalidServiceToken("the token has expired")
        return issuer, expires


def install_service_auth(app: FastAPI, service: str, settings: Settings) -> None:
    """Let `allow(...)` on `app`'s routes verify tokens meant for `service`."""
    app.state.service_verifier = ServiceVerifier.from_settings(service, settings)


_bearer = HTTPBearer(
    auto_error=False, description="A service token (foodflow.platform.http.service_auth)"
)


def allow(*callers: str) -> Callable[..., Awaitable[str]]:
    """A FastAPI dependency admitting only `callers` (service names); it answers the caller.
    Use as `dependencies=[Depends(allow("order_manager"))]` on a route or a router."""
    allowed = frozenset(callers)
    if unknown := allowed - set(PORT_SETTING):
        raise ValueError(f"not service names: {sorted(unknown)}")

    async def caller(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
    ) -> str:
        if credentials is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "a service token is required (Authorization: Bearer)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        verifier: ServiceVerifier = request.app.state.service_verifier
        try:
            name = verifier.caller_of(credentials.credentials)
        except InvalidServiceToken as exc:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, str(exc), headers={"WWW-Authenticate": "Bearer"}
            ) from exc
        if name not in allowed:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"{name} may not call {request.url.path}"
            )
        return name

    return caller
