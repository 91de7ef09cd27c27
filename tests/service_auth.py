"""Calling an internal service in a test as one of its real callers would."""

from __future__ import annotations

from foodflow.platform.config import Settings
from foodflow.platform.http.service_auth import ServiceTokens
from foodflow.tools.secrets import load_settings


def as_caller(settings: Settings, caller: str, audience: str) -> dict[str, str]:
    """The `Authorization` header `caller` (a service name) sends to `audience`, signed with
    `caller`'s generated key."""
    tokens = ServiceTokens.from_settings(caller, load_settings(settings, caller))
    return {"authorization": tokens.authorization(audience)}
