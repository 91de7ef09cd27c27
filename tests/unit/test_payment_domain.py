"""Payment outcomes of the test cards and the payment state machine (no servers)."""

from __future__ import annotations

from decimal import Decimal
from uuid import uuid4

import pytest

from foodflow.contracts.money import to_cents
from foodflow.contracts.payment import (
    AuthoriseRequest,
    DeclineCode,
    PaymentOperation,
    PaymentState,
)
from foodflow.payment_service.domain import (
    Payment,
    PaymentConflict,
    decide_authorisation,
)


@pytest.mark.parametrize(
    ("token", "approved", "code", "slow"),
    [
        (None, True, None, False),
        ("tok_visa", True, None, False),
        ("tok_declined", False, DeclineCode.CARD_DECLINED, False),
        ("tok_insufficient_funds", False, DeclineCode.INSUFFICIENT_FUNDS, False),
        ("tok_timeout", True, None, True),
        ("tok_made_up", False, DeclineCode.UNKNOWN_TOKEN, False),
    ],
)
def test_test_cards_decide_the_outcome(
    token: str | None, approved: bool, code: DeclineCode | None, slow: bool
) -> None:
    decision = decide_authorisation(token)
    assert (decision.approved, decision.decline_code, decision.slow) == (approved, code, slow)


def test_amounts_become_cents_half_up() -> None:
    assert to_cents(Decimal("45.09")) == 4509
    assert to_cents(Decimal("0.005")) == 1
    assert to_cents(Decimal("0")) == 0


def _authorised(amount: int = 4509, token: str = "tok_visa") -> Payment:
    request = AuthoriseRequest(
        order_id=uuid4(), amount_cents=amount, card_token=token, idempotency_key="k"
    )
    return Payment.authorised(request, decide_authorisation(token))


def test_capture_then_refund_in_parts_ends_refunded() -> None:
    captured = _authorised().capture()
    assert (captured.state, captured.captured_cents) == (PaymentState.CAPTURED, 4509)
    assert captured.capture() == captured  # idempotent
    part = captured.refund(1000)
    assert (part.state, part.refunded_cents) == (PaymentState.CAPTURED, 1000)
    rest = part.refund()
    assert (rest.state, rest.refunded_cents) == (PaymentState.REFUNDED, 4509)
    with pytest.raises(PaymentConflict):
        rest.refund(1)


def test_void_only_before_capture() -> None:
    voided = _authorised().void()
    assert voided.state is PaymentState.VOIDED and voided.void() == voided
    with pytest.raises(PaymentConflict):
        voided.capture()
    with pytest.raises(PaymentConflict):
        _authorised().capture().void()


def test_declined_payment_cannot_be_captured_and_reports_its_code() -> None:
    declined = _authorised(token="tok_insufficient_funds")
    result = declined.result(PaymentOperation.AUTHORISE)
    assert not result.approved and result.decline_code is DeclineCode.INSUFFICIENT_FUNDS
    with pytest.raises(PaymentConflict):
        declined.capture()


def test_a_void_tombstone_refuses_a_late_authorisation() -> None:
    tombstone = Payment.void_tombstone(uuid4())
    result = tombstone.result(PaymentOperation.AUTHORISE)
    assert not result.approved and result.decline_code is DeclineCode.VOIDED


def test_capture_more_than_authorised_is_refused() -> None:
    with pytest.raises(PaymentConflict):
        _authorised(100).capture(101)
