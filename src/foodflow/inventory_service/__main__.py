"""`python -m foodflow.inventory_service`: serve the inventory service with uvicorn."""

from __future__ import annotations

import importlib.util
import logging

import uvicorn

from foodflow.config import get_settings
from foodflow.inventory_service.app import create_app


def main() -> None:
    settings = get_settings()
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    uvicorn.run(
        create_app(settings),
        host=settings.service_host,
        port=settings.inventory_port,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        log_level=settings.log_level.lower(),
    )


if __name__ == "__main__":
    main()
