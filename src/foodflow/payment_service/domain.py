"""Payments: the provider interface, test-card outcomes and the payment state machine. Pure.

A payment belongs to one order: AUTHORISED -> CAPTURED -> REFUNDED (partly, then fully), or
AUTHORISED -> VOIDED. DECLINED is final. A VOID that arrives before any authorisation (the
caller timed out) leaves a VOIDED tombstone, so a late authorisation is refused, never charged.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from uuid import UUID

from foodflow.contracts.payment import (
    AuthoriseRequest,
    DeclineCode,
    PaymentOperation,
    PaymentResult,
    PaymentState,
)


class PaymentError(Exception):
    """A request the payment service cannot carry out; the message is meant for the caller."""


class PaymentNotFound(PaymentError):
    def __init__(self, order_id: UUID) -> None:
        super().__init__(f"no payment for order {order_id}")


class ProviderTimeout(PaymentError):
    """The provider did not answer in time; the operation may still land later. Retry it."""

    def __init__(self, order_id: UUID) -> None:
        super().__init__(f"the provider did not answer in time for order {order_id}")


class PaymentConflict(PaymentError):
    """The payment is in a state the requested operation cannot leave from."""


class NothingToUndo(PaymentError):
    """A failed order's payment holds nothing this compensation would give back."""


# Test card tokens decide the outcome, so tests and demos are deterministic.
TOKEN_APPROVE = "tok_visa"
TOKEN_DECLINED = "tok_declined"
TOKEN_INSUFFICIENT_FUNDS = "tok_insufficient_funds"
TOKEN_TIMEOUT = "tok_timeout"
APPROVING_TOKENS = frozenset({TOKEN_APPROVE, "tok_mastercard", "tok_amex", TOKEN_TIMEOUT})


@dataclass(frozen=True)
class AuthorisationDecision:
    approved: bool
    decline_code: DeclineCode | None = None
    slow: bool = False  # the provider answers only after the caller's timeout


def decide_authorisation(card_token: str | None) -> AuthorisationDecision:
    """The simulated provider's answer for a card token; no token means the default card."""
    token = card_token or TOKEN_APPROVE
    if token == TOKEN_TIMEOUT:
        return AuthorisationDecision(approved=True, slow=True)
    if token in APPROVING_TOKENS:
        return AuthorisationDecision(approved=True)
    if token == TOKEN_DECLINED:
        return AuthorisationDecision(approved=False, decline_code=DeclineCode.CARD_DECLINED)
    if token == TOKEN_INSUFFICIENT_FUNDS:
        return AuthorisationDecision(approved=False, decline_code=DeclineCode.INSUFFICIENT_FUNDS)
    return AuthorisationDecision(approved=False, decline_code=DeclineCode.UNKNOWN_TOKEN)


def compensation_for(payment: Payment | None, *, may_land_late: bool) -> PaymentOperation | None:
    """What leaves a failed order's payment with no charge: VOID an open authorisation, REFUND
    captured money not yet given back, else nothing (declined, voided, refunded). With no
    payment yet, VOID too when an authorisation may still land (`may_land_late`: the saga asked
    for one), leaving the tombstone that refuses it."""
    if payment is None:
        return PaymentOperation.VOID if may_land_late else None
    if payment.state is PaymentState.AUTHORISED:
        return PaymentOperation.VOID
    if payment.captured_cents > payment.refunded_cents:
        return PaymentOperation.REFUND
    return None


@dataclass(frozen=True)
class Payment:
    order_id: UUID
    state: PaymentState
    amount_cents: int
    currency: str = "EUR"
    captured_cents: int = 0
    refunded_cents: int = 0
    decline_code: DeclineCode | None = None

    @classmethod
    def authorised(cls, request: AuthoriseRequest, decision: AuthorisationDecision) -> Payment:
        return cls(
            order_id=request.order_id,
            state=PaymentState.AUTHORISED if decision.approved else PaymentState.DECLINED,
            amount_cents=request.amount_cents,
            currency=request.currency,
            decline_code=decision.decline_code,
        )

    @classmethod
    def void_tombstone(cls, order_id: UUID) -> Payment:
        return cls(order_id=order_id, state=PaymentState.VOIDED, amount_cents=0)

    def capture(self, amount_cents: int | None = None) -> Payment:
        """AUTHORISED -> CAPTURED (the full authorised amount, or less); CAPTURED stays."""
        if self.state is PaymentState.CAPTURED:
            return self
        if self.state is not PaymentState.AUTHORISED:
            raise PaymentConflict(f"payment of order {self.order_id} is {self.state}; no capture")
        amount = self.amount_cents if amount_cents is None else amount_cents
        if amount > self.amount_cents:
            raise PaymentConflict(
                f"cannot capture {amount} cents of an authorisation of {self.amount_cents}"
            )
        return replace(self, state=PaymentState.CAPTURED, captured_cents=amount)

    def void(self) -> Payment:
        """AUTHORISED -> VOIDED; VOIDED and DECLINED stay; a captured payment needs a refund."""
        if self.state in (PaymentState.VOIDED, PaymentState.DECLINED):
            return self
        if self.state is not PaymentState.AUTHORISED:
            raise PaymentConflict(
                f"payment of order {self.order_id} is {self.state}; refund it instead of voiding"
            )
        return replace(self, state=PaymentState.VOIDED)

    def refund(self, amount_cents: int | None = None) -> Payment:
        """Give back captured money, all of what is left by default; REFUNDED once all is back."""
        if self.state not in (PaymentState.CAPTURED, PaymentState.REFUNDED):
            raise PaymentConflict(f"payment of order {self.order_id} is {self.state}; no refund")
        left = self.captured_cents - self.refunded_cents
        amount = left if amount_cents is None else amount_cents
        if amount > left:
            raise PaymentConflict(f"cannot refund {amount} cents: only {left} left to refund")
        refunded = self.refunded_cents + amount
        state = PaymentState.REFUNDED if refunded == self.captured_cents else self.state
        return replace(self, state=state, refunded_cents=refunded)

    def result(self, operation: PaymentOperation, message: str | None = None) -> PaymentResult:
        approved = self.state is not PaymentState.DECLINED and not (
            operation is PaymentOperation.AUTHORISE and self.state is PaymentState.VOIDED
        )
        decline_code = self.decline_code
        if operation is PaymentOperation.AUTHORISE and self.state is PaymentState.VOIDED:
            decline_code = DeclineCode.VOIDED
        return PaymentResult(
            order_id=self.order_id,
            operation=operation,
            approved=approved,
            state=self.state,
            amount_cents=self.amount_cents,
            captured_cents=self.captured_cents,
            refunded_cents=self.refunded_cents,
            currency=self.currency,
            decline_code=decline_code,
            message=message,
        )
