"""Bodies of the payment service's endpoints. Amounts are integer cents, never floats."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, Field

MAX_AMOUNT_CENTS = 10_000_000  # 100 000.00: far above any order, far below overflow
# Printable ASCII without spaces: keys and tokens are identifiers, and PostgreSQL refuses NUL.
IdempotencyKey = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[!-~]+$")]
CardToken = Annotated[str, Field(max_length=64, pattern=r"^[A-Za-z0-9_]+$")]


class PaymentState(StrEnum):
    AUTHORISED = "AUTHORISED"
    DECLINED = "DECLINED"
    CAPTURED = "CAPTURED"
    VOIDED = "VOIDED"
    REFUNDED = "REFUNDED"


class PaymentOperation(StrEnum):
    AUTHORISE = "AUTHORISE"
    CAPTURE = "CAPTURE"
    VOID = "VOID"
    REFUND = "REFUND"


class DeclineCode(StrEnum):
    CARD_DECLINED = "CARD_DECLINED"
    INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"
    UNKNOWN_TOKEN = "UNKNOWN_TOKEN"
    VOIDED = "VOIDED"  # the authorisation was voided (e.g. after a timeout) before it completed


class AuthoriseRequest(BaseModel):
    order_id: UUID
    amount_cents: int = Field(ge=0, le=MAX_AMOUNT_CENTS)
    currency: str = Field("EUR", pattern=r"^[A-Z]{3}$")
    card_token: CardToken | None = None
    idempotency_key: IdempotencyKey
    # Capture at once when approved (the saga charges on confirmation): one call instead of
    # two. The capture is recorded under `<idempotency_key>:capture`; the answer is then the
    # capture's (state CAPTURED).
    capture: bool = False


class PaymentRequest(BaseModel):
    """Capture, void or refund of an order's payment. Refund without an amount: all captured."""

    order_id: UUID
    idempotency_key: IdempotencyKey
    amount_cents: int | None = Field(default=None, ge=1, le=MAX_AMOUNT_CENTS)


class PaymentResult(BaseModel):
    """The payment after an operation. A decline is an answer (approved=False), not an error."""

    order_id: UUID
    operation: PaymentOperation
    approved: bool
    state: PaymentState
    amount_cents: int
    captured_cents: int = 0
    refunded_cents: int = 0
    currency: str = "EUR"
    decline_code: DeclineCode | None = None
    message: str | None = None
