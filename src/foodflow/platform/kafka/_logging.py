"""librdkafka's log lines, routed to Python logging and throttled.

While a broker is down librdkafka reports every reconnect attempt (several a second per
client); one line per facility and client every LOG_INTERVAL_SECONDS says the same.
"""

from __future__ import annotations

import logging
import threading
import time

LOGGER_NAME = "foodflow.platform.kafka.librdkafka"
LOG_INTERVAL_SECONDS = 10.0


class RepeatThrottle(logging.Filter):
    def __init__(self, interval: float = LOG_INTERVAL_SECONDS) -> None:
        super().__init__()
        self._interval = interval
        self._last: dict[tuple[object, ...], float] = {}
        self._suppressed: dict[tuple[object, ...], int] = {}
        self._lock = threading.Lock()  # librdkafka logs from its own threads

    def filter(self, record: logging.LogRecord) -> bool:
        # confluent-kafka logs ("%s [%s] %s", facility, client name, text).
        args = record.args if isinstance(record.args, tuple) else ()
        key = (record.levelno, *args[:2])
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(key, -self._interval) < self._interval:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return False
            self._last[key] = now
            suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            record.msg = f"{record.msg} ({suppressed} similar lines suppressed)"
        return True


def librdkafka_logger() -> logging.Logger:
    logger = logging.getLogger(LOGGER_NAME)
    if not any(isinstance(f, RepeatThrottle) for f in logger.filters):
        logger.addFilter(RepeatThrottle())
    return logger
