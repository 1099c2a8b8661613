"""The premium-message refund rule (pure): a paid client message the reader does not answer in time is refunded.

"In time" is a window after the message was sent (``SOULSEER_MESSAGE_REFUND_AFTER_SECONDS``, 72 h by default).
The reader answers by writing any message in the thread after it; one reply answers every paid message that
came before it and is still inside its window. A late reply does not save the charge: the client paid for an
answer within the window. A refund happens at most once (its ledger key is unique per message).
"""

from __future__ import annotations

from datetime import datetime, timedelta


def deadline(sent_at: datetime, window: timedelta) -> datetime:
    """The moment after which an unanswered paid message is owed back."""
    return sent_at + window


def answers(sent_at: datetime, reply_at: datetime, window: timedelta) -> bool:
    """Whether a reader's reply at ``reply_at`` answers a message sent at ``sent_at`` in time."""
    return sent_at <= reply_at < deadline(sent_at, window)


def refund_due(*, sent_at: datetime, price_cents: int, answered_at: datetime | None, refunded: bool,
               now: datetime, window: timedelta) -> bool:
    """Whether the sweeper should refund this message now."""
    if price_cents <= 0 or refunded or now < deadline(sent_at, window):
        return False
    return answered_at is None or not answers(sent_at, answered_at, window)
