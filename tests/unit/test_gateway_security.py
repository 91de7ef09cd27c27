"""Passwords, bearer tokens and the secret rule of the gateway (no servers)."""

from __future__ import annotations

import time
from uuid import uuid4

import pytest
from pydantic import ValidationError

from foodflow.gateway.security import (
    InvalidToken,
    Principal,
    Role,
    hash_password,
    issue_token,
    read_token,
    verify_password,
)
from foodflow.platform.config import Settings

SETTINGS = Settings(JWT_SECRET="s" * 40, ACCESS_TOKEN_TTL_SECONDS=60)


def test_passwords_are_hashed_and_verified() -> None:
    hashed = hash_password("correct horse")
    assert hashed.startswith("$argon2id$") and "correct horse" not in hashed
    assert verify_password(hashed, "correct horse")
    assert not verify_password(hashed, "wrong horse")
    assert not verify_password("not a hash", "correct horse")


def test_a_token_carries_user_and_role_until_it_expires() -> None:
    principal = Principal(uuid4(), Role.COURIER)
    assert read_token(issue_token(principal, SETTINGS), SETTINGS) == principal
    expired = issue_token(principal, SETTINGS, now=time.time() - 120)
    with pytest.raises(InvalidToken, match="expired"):
        read_token(expired, SETTINGS)


def test_a_token_signed_with_another_secret_is_refused() -> None:
    token = issue_token(Principal(uuid4(), Role.ADMIN), Settings(JWT_SECRET="x" * 40))
    with pytest.raises(InvalidToken):
        read_token(token, SETTINGS)


def test_the_default_secret_is_refused_outside_development() -> None:
    assert Settings(ENVIRONMENT="development").environment == "development"
    with pytest.raises(ValidationError, match="JWT_SECRET"):
        Settings(ENVIRONMENT="production")
    assert Settings(ENVIRONMENT="production", JWT_SECRET="p" * 32).environment == "production"
