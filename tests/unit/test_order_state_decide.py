"""The version guard's verdict on a transition that was not written (pure; the SQL that finds
what is stored at that version is tested in tests/integration/test_order_state.py)."""

from __future__ import annotations

import pytest

from foodflow.orders.status_store import SaveOutcome, _decide, transition_key


def test_a_transition_is_its_status_and_its_reason() -> None:
    assert transition_key("PROCESSING", None) == "PROCESSING"
    assert transition_key("FAILED", "TIMED_OUT") == "FAILED/TIMED_OUT"


@pytest.mark.parametrize(
    ("version", "transition", "stored_version", "stored", "outcome"),
    [
        # The same transition at the same version, or at an older one: a replay.
        (3, "FAILED/TIMED_OUT", 3, "FAILED/TIMED_OUT", SaveOutcome.ALREADY_THERE),
        (2, "PROCESSING", 3, "PROCESSING", SaveOutcome.ALREADY_THERE),
        # FAILED both, for other reasons: two sagas, one version (the chaos run's duplicates).
        (3, "FAILED/TIMED_OUT", 3, "FAILED/PAYMENT_UNAVAILABLE", SaveOutcome.CONFLICT),
        # A newer version does not make a replay when this version holds another transition.
        (2, "FAILED/TIMED_OUT", 3, "PROCESSING", SaveOutcome.CONFLICT),
        # The timeline lacks the version (NULL): not a replay either.
        (2, "PROCESSING", 3, None, SaveOutcome.CONFLICT),
        # Nothing stored, or an older version only: someone else wrote meanwhile.
        (1, "RECEIVED", None, None, SaveOutcome.CONFLICT),
        (3, "CONFIRMED", 2, None, SaveOutcome.CONFLICT),
    ],
)
def test_only_the_very_transition_stored_is_a_replay(
    version: int,
    transition: str,
    stored_version: int | None,
    stored: str | None,
    outcome: SaveOutcome,
) -> None:
    assert _decide(version, transition, stored_version, stored) is outcome
