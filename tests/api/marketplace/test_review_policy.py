"""The review rule as a specification: who may review which reading, and until when (pure, with hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from api.marketplace.review_policy import EDIT_WINDOW, ReadingFacts, Refusal, can_edit, can_reply, refusal

STATUSES = ("requested", "accepted", "active", "ended", "declined", "cancelled", "expired")
facts = st.builds(ReadingFacts, is_client=st.booleans(), status=st.sampled_from(STATUSES), started=st.booleans(),
                  paid_cents=st.integers(-10_000, 10_000), reviewed=st.booleans())


@given(facts)
def test_a_review_is_allowed_exactly_for_the_client_of_an_ended_started_paid_unreviewed_reading(f: ReadingFacts
                                                                                                ) -> None:
    allowed = f.is_client and f.status == "ended" and f.started and f.paid_cents > 0 and not f.reviewed
    assert (refusal(f) is None) == allowed


@given(facts)
def test_a_free_or_fully_refunded_reading_never_carries_a_review(f: ReadingFacts) -> None:
    if f.paid_cents <= 0:
        assert refusal(f) is not None


@given(facts)
def test_the_reason_given_is_the_first_rule_broken(f: ReadingFacts) -> None:
    reason = refusal(f)
    if not f.is_client:
        assert reason is Refusal.NOT_YOURS
    elif f.status != "ended":
        assert reason is Refusal.NOT_ENDED
    elif not f.started:
        assert reason is Refusal.NEVER_STARTED
    elif f.paid_cents <= 0:
        assert reason is Refusal.NOT_PAID
    elif f.reviewed:
        assert reason is Refusal.ALREADY_REVIEWED


WRITTEN = datetime(2030, 1, 1, tzinfo=UTC)


@given(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=30)), st.booleans())
def test_a_review_is_editable_for_seven_days_unless_hidden(age: timedelta, hidden: bool) -> None:
    assert can_edit(WRITTEN, WRITTEN + age, hidden=hidden) == (not hidden and age < EDIT_WINDOW)


def test_the_edit_window_closes_at_seven_days_to_the_microsecond() -> None:
    assert can_edit(WRITTEN, WRITTEN + timedelta(days=7) - timedelta(microseconds=1), hidden=False)
    assert not can_edit(WRITTEN, WRITTEN + timedelta(days=7), hidden=False)


def test_a_reader_replies_once_and_never_to_a_hidden_review() -> None:
    assert can_reply(None, hidden=False)
    assert not can_reply("Thank you!", hidden=False)
    assert not can_reply(None, hidden=True)
