"""One exception hierarchy for foodflow."""

from __future__ import annotations


class FoodflowError(Exception):
    """Base of every error foodflow raises on purpose."""


class InfraError(FoodflowError):
    """A local server (Kafka, PostgreSQL, Redis) failed to start, answer or stop."""

    def __init__(self, server: str, message: str, log_tail: str = "") -> None:
        super().__init__(f"{server}: {message}")
        self.server = server
        self.message = message
        self.log_tail = log_tail


class PublishError(FoodflowError):
    """A Kafka message was not acknowledged by the broker.

    `refused` says the broker or the client refused the message itself (too large, invalid):
    sending it again cannot succeed, unlike a broker that is down or slow to answer.
    """

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


class ServiceUnavailable(FoodflowError):
    """A service this one depends on did not answer in time."""


class ItemUnavailable(ServiceUnavailable):
    """A service answered a batch but could not serve one item of it (a card its provider
    timed out on): that item's caller may retry, but the service itself is not down."""
