"""Passwords and bearer tokens of the gateway: signed with a key id, rotated (no servers)."""

from __future__ import annotations

import secrets
import time
from uuid import uuid4

import jwt
import pytest

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


def signing_settings(active: str, **keys: str) -> Settings:
    return Settings(JWT_SIGNING_KEYS=keys, JWT_ACTIVE_KEY_ID=active, ACCESS_TOKEN_TTL_SECONDS=60)


OLD_KEY, NEW_KEY = secrets.token_urlsafe(48), secrets.token_urlsafe(48)
SETTINGS = signing_settings("new", old=OLD_KEY, new=NEW_KEY)


def test_passwords_are_hashed_and_verified() -> None:
    hashed = hash_password("correct horse")
    assert hashed.startswith("$argon2id$") and "correct horse" not in hashed
    assert verify_password(hashed, "correct horse")
    assert not verify_password(hashed, "wrong horse")
    assert not verify_password("not a hash", "correct horse")


def test_a_token_carries_user_and_role_until_it_expires() -> None:
    principal = Principal(uuid4(), Role.COURIER)
    token = issue_token(principal, SETTINGS)
    assert jwt.get_unverified_header(token)["kid"] == "new"
    assert read_token(token, SETTINGS) == principal
    expired = issue_token(principal, SETTINGS, now=time.time() - 120)
    with pytest.raises(InvalidToken, match="expired"):
        read_token(expired, SETTINGS)


def test_a_token_of_a_listed_older_key_is_accepted_after_rotation() -> None:
    principal = Principal(uuid4(), Role.CUSTOMER)
    before_rotation = issue_token(principal, signing_settings("old", old=OLD_KEY))
    assert read_token(before_rotation, SETTINGS) == principal


def test_a_token_of_an_unlisted_key_id_is_refused() -> None:
    retired = issue_token(Principal(uuid4(), Role.ADMIN), signing_settings("gone", gone=OLD_KEY))
    with pytest.raises(InvalidToken):
        read_token(retired, SETTINGS)


def test_a_token_signed_with_another_secret_under_a_listed_key_id_is_refused() -> None:
    forged = issue_token(
        Principal(uuid4(), Role.ADMIN), signing_settings("new", new=secrets.token_urlsafe(48))
    )
    with pytest.raises(InvalidToken):
        read_token(forged, SETTINGS)


@pytest.mark.parametrize("kid", [None, "new", "old"])
def test_a_token_forged_with_the_once_published_development_secret_is_refused(
    kid: str | None,
) -> None:
    claims = {"sub": str(uuid4()), "role": "admin", "exp": int(time.time()) + 31 * 365 * 86400}
    forged = jwt.encode(
        claims,
        "development-only-secret-do-not-use-in-production",
        algorithm="HS256",
        headers={"kid": kid} if kid else None,
    )
    with pytest.raises(InvalidToken):
        read_token(forged, SETTINGS)


def test_a_token_with_another_algorithm_is_refused() -> None:
    claims = {"sub": str(uuid4()), "role": "admin", "exp": int(time.time()) + 60}
    unsigned = jwt.encode(claims, "", algorithm="none", headers={"kid": "new"})
    with pytest.raises(InvalidToken):
        read_token(unsigned, SETTINGS)
