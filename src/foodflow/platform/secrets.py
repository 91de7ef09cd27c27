"""Every service checks its secrets before it serves: none missing, short or known.

There is no default secret and no environment in which a weak one is accepted: `foodflow up`
generates strong ones (foodflow.tools.secrets) and the test suite uses those same files.
"""

from __future__ import annotations

from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key
from pydantic import SecretStr

from foodflow.platform.config import Settings
from foodflow.platform.errors import FoodflowError

# 32 random bytes written url-safe (secrets.token_urlsafe(32)) are 43 characters.
MIN_SECRET_CHARS = 43
# A long text of few distinct characters ("aaaa…", "0000…") is not a secret either.
MIN_DISTINCT_CHARS = 10
# Values published in this code base's history or commonly pasted from examples.
KNOWN_WEAK = frozenset(
    {
        "development-only-secret-do-not-use-in-production",
        "changeme",
        "change-me",
        "secret",
        "password",
        "your-256-bit-secret",
        "supersecret",
    }
)
SecretName = Literal[
    "jwt_signing_keys", "service_private_key", "service_public_keys", "demo_operator_password"
]
HINT = "run `foodflow up` (or `foodflow secrets`) to generate the secrets"


class SecretRefused(FoodflowError):
    """A secret this process needs is missing, short or known: it must not serve."""


def env_name(name: str) -> str:
    return Settings.model_fields[name].alias or name.upper()


def require(settings: Settings, *names: SecretName) -> None:
    """Refuse (`SecretRefused`, naming the variable) unless each named secret is set and strong:
    text secrets 43+ characters, varied, not a known value; keys that load as Ed25519 keys;
    the active JWT key id one of the listed keys."""
    for name in names:
        _CHECKS[name](settings)


def check_text(variable: str, value: SecretStr | None) -> None:
    text = value.get_secret_value() if value is not None else ""
    if not text:
        raise SecretRefused(f"{variable} is not set; {HINT}")
    if text.strip().lower() in KNOWN_WEAK:
        raise SecretRefused(f"{variable} is a known, published value; {HINT}")
    if len(text) < MIN_SECRET_CHARS or len(set(text)) < MIN_DISTINCT_CHARS:
        raise SecretRefused(
            f"{variable} is too weak: at least {MIN_SECRET_CHARS} random url-safe characters "
            f"(32 bytes) are required; {HINT}"
        )


def _jwt_signing_keys(settings: Settings) -> None:
    variable = env_name("jwt_signing_keys")
    keys = settings.jwt_signing_keys or {}
    if not keys:
        raise SecretRefused(f"{variable} is not set; {HINT}")
    for kid, secret in keys.items():
        check_text(f"{variable}[{kid!r}]", secret)
    active = settings.jwt_active_key_id
    if active not in keys:
        raise SecretRefused(
            f"{env_name('jwt_active_key_id')}={active!r} is not one of the {variable}; {HINT}"
        )


def _service_private_key(settings: Settings) -> None:
    variable = env_name("service_private_key")
    if settings.service_private_key is None:
        raise SecretRefused(f"{variable} is not set; {HINT}")
    private_key(settings.service_private_key.get_secret_value(), variable)


def _service_public_keys(settings: Settings) -> None:
    variable = env_name("service_public_keys")
    if not settings.service_public_keys:
        raise SecretRefused(f"{variable} is not set; {HINT}")
    for service, pem in settings.service_public_keys.items():
        public_key(pem, f"{variable}[{service!r}]")


def _demo_operator_password(settings: Settings) -> None:
    check_text(env_name("demo_operator_password"), settings.demo_operator_password)


_CHECKS = {
    "jwt_signing_keys": _jwt_signing_keys,
    "service_private_key": _service_private_key,
    "service_public_keys": _service_public_keys,
    "demo_operator_password": _demo_operator_password,
}


def private_key(pem: str, variable: str) -> Ed25519PrivateKey:
    """The Ed25519 private key in `pem`, or `SecretRefused` naming `variable`."""
    try:
        key = load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise SecretRefused(f"{variable} is not a PEM private key; {HINT}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SecretRefused(f"{variable} is not an Ed25519 key; {HINT}")
    return key


def public_key(pem: str, variable: str) -> Ed25519PublicKey:
    """The Ed25519 public key in `pem`, or `SecretRefused` naming `variable`."""
    try:
        key = load_pem_public_key(pem.encode())
    except (ValueError, TypeError) as exc:
        raise SecretRefused(f"{variable} is not a PEM public key; {HINT}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise SecretRefused(f"{variable} is not an Ed25519 key; {HINT}")
    return key
