"""Runs a service's FastAPI app under uvicorn: the `python -m foodflow.<service>` entrypoint."""

from __future__ import annotations

from collections.abc import Callable

import uvicorn
from fastapi import FastAPI

from foodflow.platform.config import PORT_SETTING, Settings, get_settings
from foodflow.platform.logs import LogFile, configure_logging


def serve(service: str, create_app: Callable[[Settings], FastAPI], port: int | None = None) -> None:
    settings = get_settings()
    configure_logging(
        service,
        settings.log_level,
        settings.log_format,
        buffered=True,
        file=log_file(settings),
    )
    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    uvicorn.run(
        create_app(settings),
        host=settings.service_host,
        port=port or getattr(settings, PORT_SETTING[service]),
        loop=loop,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=20,
        # The client address is the socket peer: trusting X-Forwarded-For is the gateway's
        # decision, against TRUSTED_PROXIES (uvicorn would trust it from any local peer).
        proxy_headers=False,
    )


def log_file(settings: Settings) -> LogFile | None:
    """The service's own rotated log file (`LOG_FILE`), or None for stderr."""
    if settings.log_file is None:
        return None
    return LogFile(settings.log_file, settings.log_max_bytes, settings.log_backups)
