"""The system's secrets: generated once into `<state_dir>/secrets/`, handed to each process.

`ensure_secrets` creates what is missing (the directory 0700, each file 0600, written whole or
not at all) and never replaces a secret that exists; `service_env` is the environment a service
process gets (its own private key only); `load_settings` gives the test suite the same secrets.

    jwt_signing_keys.json      {"active": <kid>, "keys": {<kid>: {"secret": …, "created": …}}}
    demo_operator_password     the gateway's demo operator
    keys/<service>.pem         each service's Ed25519 private key (PKCS#8)
    couriers/<courier_id>      the password of each seeded courier's gateway account, made
                               when `foodflow up` creates the account (`foodflow.tools.couriers`)
    restaurants/<restaurant_id>  the same for each seeded restaurant's staff account
                               (`foodflow.tools.kitchens`)
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from pydantic import SecretStr

from foodflow.platform.config import PORT_SETTING, Settings
from foodflow.platform.errors import FoodflowError
from foodflow.platform.secrets import private_key

SERVICES = tuple(PORT_SETTING)
JWT_FILE = "jwt_signing_keys.json"
DEMO_PASSWORD_FILE = "demo_operator_password"
KEYS_DIR = "keys"
COURIERS_DIR = "couriers"
RESTAURANTS_DIR = "restaurants"
# A courier or restaurant id as its service keeps it, and safe as a file name (no dot first:
# no `..`, no hidden file).
ACCOUNT_ID = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$")


class SecretsMissing(FoodflowError):
    """The secrets have not been generated yet."""


@dataclass(frozen=True)
class Secrets:
    jwt_active_key_id: str
    jwt_signing_keys: dict[str, str]
    demo_operator_password: str
    service_keys: dict[str, str]  # private key PEM by service

    def public_keys(self) -> dict[str, str]:
        return {
            service: private_key(pem, f"{service}.pem")
            .public_key()
            .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
            .decode()
            for service, pem in self.service_keys.items()
        }


def secrets_dir(settings: Settings) -> Path:
    return settings.state_dir / "secrets"


def ensure_secrets(settings: Settings, report: Callable[[str], None] = print) -> Path:
    """Generate every missing secret; report where on the first creation. Idempotent, and safe
    with several processes at once (a file is linked into place only if it is not there)."""
    home = secrets_dir(settings)
    created = not (home / JWT_FILE).exists()
    _private_dir(home)
    _private_dir(home / KEYS_DIR)
    kid = new_key_id()
    _write_new(home / JWT_FILE, _jwt_document(kid, {kid: _key_entry()}))
    _write_new(home / DEMO_PASSWORD_FILE, secrets.token_urlsafe(32))
    for service in SERVICES:
        _write_new(home / KEYS_DIR / f"{service}.pem", new_private_key())
    if created:
        report(f"secrets generated in {home} (readable by you only)")
    return home


def load_secrets(settings: Settings) -> Secrets:
    home = secrets_dir(settings)
    try:
        jwt_document = json.loads((home / JWT_FILE).read_text())
        password = (home / DEMO_PASSWORD_FILE).read_text().strip()
        keys = {s: (home / KEYS_DIR / f"{s}.pem").read_text() for s in SERVICES}
    except FileNotFoundError as exc:
        raise SecretsMissing(
            f"{exc.filename} is missing: run `foodflow up` or `foodflow secrets`"
        ) from None
    return Secrets(
        jwt_active_key_id=jwt_document["active"],
        jwt_signing_keys={kid: e["secret"] for kid, e in jwt_document["keys"].items()},
        demo_operator_password=password,
        service_keys=keys,
    )


def courier_password(settings: Settings, courier_id: str) -> str:
    """The password of `courier_id`'s gateway account: generated (0600) the first time it is
    asked for, the same ever after. ValueError for an id that cannot be a file name."""
    return _account_password(settings, COURIERS_DIR, courier_id, "courier")


def courier_password_file(settings: Settings, courier_id: str) -> Path:
    return secrets_dir(settings) / COURIERS_DIR / courier_id


def restaurant_password(settings: Settings, restaurant_id: str) -> str:
    """The password of `restaurant_id`'s staff account, as `courier_password`."""
    return _account_password(settings, RESTAURANTS_DIR, restaurant_id, "restaurant")


def restaurant_password_file(settings: Settings, restaurant_id: str) -> Path:
    return secrets_dir(settings) / RESTAURANTS_DIR / restaurant_id


def _account_password(settings: Settings, directory: str, account_id: str, what: str) -> str:
    if not ACCOUNT_ID.fullmatch(account_id):
        raise ValueError(f"{account_id!r} is not a {what} id")
    home = secrets_dir(settings)
    _private_dir(home)
    _private_dir(home / directory)
    path = home / directory / account_id
    _write_new(path, secrets.token_urlsafe(32))
    return path.read_text().strip()


def service_env(settings: Settings, service: str) -> dict[str, str]:
    """The environment `service` runs with: its own private key, every service's public key,
    and for the gateway the user token keys and the demo operator's password."""
    found = load_secrets(settings)
    env = {
        "SERVICE_PRIVATE_KEY": found.service_keys[service],
        "SERVICE_PUBLIC_KEYS": json.dumps(found.public_keys()),
    }
    if service == "gateway":
        env |= {
            "JWT_SIGNING_KEYS": json.dumps(found.jwt_signing_keys),
            "JWT_ACTIVE_KEY_ID": found.jwt_active_key_id,
            "DEMO_OPERATOR_PASSWORD": found.demo_operator_password,
        }
    return env


def load_settings(settings: Settings, service: str | None = None) -> Settings:
    """`settings` with the generated secrets: the gateway's, every public key, and the private
    key of `service` (the identity its calls carry) when one is named."""
    found = load_secrets(settings)
    update: dict[str, Any] = {
        "jwt_signing_keys": {k: SecretStr(v) for k, v in found.jwt_signing_keys.items()},
        "jwt_active_key_id": found.jwt_active_key_id,
        "demo_operator_password": SecretStr(found.demo_operator_password),
        "service_public_keys": found.public_keys(),
    }
    if service is not None:
        update["service_private_key"] = SecretStr(found.service_keys[service])
    return settings.model_copy(update=update)


def compose_env(settings: Settings) -> list[str]:
    """`NAME='value'` lines for Docker Compose's `.env`: the gateway's secrets, the public keys
    and one `<SERVICE>_PRIVATE_KEY` per service (line breaks of a PEM written as \\n)."""
    found = load_secrets(settings)
    values = {
        "JWT_SIGNING_KEYS": json.dumps(found.jwt_signing_keys),
        "JWT_ACTIVE_KEY_ID": found.jwt_active_key_id,
        "DEMO_OPERATOR_PASSWORD": found.demo_operator_password,
        "SERVICE_PUBLIC_KEYS": json.dumps(found.public_keys()),
    }
    for service, pem in found.service_keys.items():
        values[f"{service.upper()}_PRIVATE_KEY"] = pem.strip().replace("\n", "\\n")
    # Single quotes: Compose takes the value as written (no escapes, no interpolation).
    return [f"{name}='{value}'" for name, value in values.items()]


def kubernetes_objects(settings: Settings) -> dict[str, Any]:
    """The secrets as Kubernetes objects, one `v1 List` for `kubectl apply -f -`
    (docs/deployment.md#secrets): a Secret `foodflow-<service>` per service holding its own
    private key alone (the gateway's also its user token keys and the demo operator's password),
    and the ConfigMap `foodflow-public-keys` (public keys are no secret). Names as the manifests
    in deploy/k8s reference them; service names with `-` for `_`, as Kubernetes names need."""
    found = load_secrets(settings)
    labels = {"app.kubernetes.io/part-of": "foodflow"}
    items: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "foodflow-public-keys", "labels": labels},
            "data": {"SERVICE_PUBLIC_KEYS": json.dumps(found.public_keys())},
        }
    ]
    for service, pem in found.service_keys.items():
        values = {"SERVICE_PRIVATE_KEY": pem}
        if service == "gateway":
            values |= {
                "JWT_SIGNING_KEYS": json.dumps(found.jwt_signing_keys),
                "JWT_ACTIVE_KEY_ID": found.jwt_active_key_id,
                "DEMO_OPERATOR_PASSWORD": found.demo_operator_password,
            }
        items.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": f"foodflow-{service.replace('_', '-')}", "labels": labels},
                "type": "Opaque",
                "stringData": values,
            }
        )
    return {"apiVersion": "v1", "kind": "List", "items": items}


def rotate_jwt_key(settings: Settings) -> str:
    """Sign new user tokens with a new key; keep the older keys listed while tokens they signed
    may still be valid (ACCESS_TOKEN_TTL_SECONDS after the next key took over), drop the rest.
    Answers the new key id. Restart the gateway to apply."""
    path = secrets_dir(settings) / JWT_FILE
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise SecretsMissing(f"{path} is missing: run `foodflow secrets`") from None
    now = time.time()
    kid = new_key_id()
    entries: dict[str, dict[str, Any]] = document["keys"]
    by_age = sorted(entries.items(), key=lambda item: float(item[1]["created"]))
    kept = {
        old: entry
        for (old, entry), retired_at in zip(
            by_age, [float(e["created"]) for _, e in by_age[1:]] + [now], strict=True
        )
        if retired_at + settings.access_token_ttl_seconds > now
    }
    _replace(path, _jwt_document(kid, kept | {kid: _key_entry(now)}))
    return kid


def new_key_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(2)


def new_private_key() -> str:
    key = Ed25519PrivateKey.generate()
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()


def _key_entry(now: float | None = None) -> dict[str, Any]:
    return {"secret": secrets.token_urlsafe(48), "created": now or time.time()}


def _jwt_document(active: str, keys: dict[str, dict[str, Any]]) -> str:
    return json.dumps({"active": active, "keys": keys}, indent=2)


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)  # also when it existed, or the umask widened it


def _write_temporary(path: Path, text: str) -> Path:
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(text)
    return temporary


def _write_new(path: Path, text: str) -> None:
    """Create `path` (0600) holding `text`, unless it exists: never half written, never
    replacing a secret another process wrote first."""
    if path.exists():
        path.chmod(0o600)
        return
    temporary = _write_temporary(path, text)
    try:
        os.link(temporary, path)
    except FileExistsError:
        pass
    finally:
        temporary.unlink()


def _replace(path: Path, text: str) -> None:
    os.replace(_write_temporary(path, text), path)
