"""Who may review a reading, and until when: pure rules, no I/O, the clock passed in.

A review is verified: only the reading's client, only once, only for a reading that ended after it really took
place (both parties were connected: it has a start) and that the client paid for and still has paid for. Paid
means the ledger holds money of the client's for it that was not given back: at least one charged minute of a
per-minute reading, or a scheduled reading's price not refunded in full. So a free reading, one refunded in
full (a reader's no-show, a goodwill refund of everything) and one never started can carry no review: reviews
cannot be bought with a free or refunded reading.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

MAX_STARS = 5
MAX_BODY_CHARS = 1000
EDIT_WINDOW = timedelta(days=7)


class Refusal(Enum):
    """Why a review cannot be written (each is the API's error code)."""

    NOT_YOURS = "not_your_reading"
    NOT_ENDED = "reading_not_ended"
    NEVER_STARTED = "reading_never_started"
    NOT_PAID = "reading_not_paid"
    ALREADY_REVIEWED = "already_reviewed"


EXPLAIN = {
    Refusal.NOT_YOURS: "only the client of a reading can review it",
    Refusal.NOT_ENDED: "a reading can be reviewed once it has ended",
    Refusal.NEVER_STARTED: "this reading never took place, so it cannot be reviewed",
    Refusal.NOT_PAID: "only a paid reading can be reviewed (this one was free or refunded)",
    Refusal.ALREADY_REVIEWED: "you have already reviewed this reading; you can edit your review instead",
}


@dataclass(frozen=True)
class ReadingFacts:
    """What the rule needs to know of a reading, for the user asking."""

    is_client: bool
    status: str
    started: bool
    paid_cents: int  # the client's money for it in the ledger, less what was given back
    reviewed: bool


def refusal(facts: ReadingFacts) -> Refusal | None:
    """None when the user may review the reading now, else why not."""
    if not facts.is_client:
        return Refusal.NOT_YOURS
    if facts.status != "ended":
        return Refusal.NOT_ENDED
    if not facts.started:
        return Refusal.NEVER_STARTED
    if facts.paid_cents <= 0:
        return Refusal.NOT_PAID
    if facts.reviewed:
        return Refusal.ALREADY_REVIEWED
    return None


def editable_until(created_at: datetime) -> datetime:
    return created_at + EDIT_WINDOW


def can_edit(created_at: datetime, now: datetime, *, hidden: bool) -> bool:
    """A review can be changed by its author for 7 days, unless an operator hid it."""
    return not hidden and now < editable_until(created_at)


def can_reply(existing_reply: str | None, *, hidden: bool) -> bool:
    """The reader answers a review once; the answer stands (no edits), and a hidden review takes none."""
    return existing_reply is None and not hidden
