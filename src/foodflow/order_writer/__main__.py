"""`python -m foodflow.order_writer`: serve the writer on settings.order_writer_port."""

from __future__ import annotations

import logging

import uvicorn

from foodflow.config import get_settings
from foodflow.order_writer.app import create_app


def main() -> None:
    settings = get_settings()
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    uvicorn.run(
        create_app(settings),
        host=settings.service_host,
        port=settings.order_writer_port,
        log_level=settings.log_level.lower(),
        log_config=None,
    )


if __name__ == "__main__":
    main()
