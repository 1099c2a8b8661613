from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from api.messages.refund_rule import answers, deadline, refund_due

SENT = datetime(2025, 3, 1, 12, tzinfo=UTC)
WINDOW = timedelta(hours=72)


def due(*, answered_at: datetime | None = None, refunded: bool = False, price_cents: int = 300,
        now: datetime = SENT + WINDOW) -> bool:
    return refund_due(sent_at=SENT, price_cents=price_cents, answered_at=answered_at, refunded=refunded,
                      now=now, window=WINDOW)


def test_an_unanswered_paid_message_is_refunded_once_the_window_has_passed() -> None:
    assert deadline(SENT, WINDOW) == SENT + WINDOW
    assert not due(now=SENT + WINDOW - timedelta(seconds=1))
    assert due(now=SENT + WINDOW)


def test_a_reply_inside_the_window_keeps_the_charge() -> None:
    assert not due(answered_at=SENT + timedelta(hours=1), now=SENT + 2 * WINDOW)


def test_a_late_reply_does_not_keep_the_charge() -> None:
    assert not answers(SENT, SENT + WINDOW, WINDOW)
    assert due(answered_at=SENT + WINDOW + timedelta(minutes=5), now=SENT + 2 * WINDOW)


def test_a_message_sent_after_the_reply_is_not_answered_by_it() -> None:
    assert not answers(SENT, SENT - timedelta(seconds=1), WINDOW)


def test_free_or_already_refunded_messages_are_never_refunded() -> None:
    assert not due(price_cents=0)
    assert not due(refunded=True)


@given(st.integers(0, 10 * 24 * 3600), st.one_of(st.none(), st.integers(-3600, 10 * 24 * 3600)))
def test_refund_is_due_exactly_when_past_deadline_and_not_answered_in_time(now_s: int, reply_s: int | None) -> None:
    now = SENT + timedelta(seconds=now_s)
    reply = None if reply_s is None else SENT + timedelta(seconds=reply_s)
    expected = now >= SENT + WINDOW and (reply is None or not (SENT <= reply < SENT + WINDOW))
    assert due(answered_at=reply, now=now) is expected
