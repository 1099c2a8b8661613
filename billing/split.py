"""The 70/30 split of every charge between the reader and the platform, in integer cents."""

from __future__ import annotations

READER_PERCENT = 70


def split(cents: int) -> tuple[int, int]:
    """``(reader_cents, platform_cents)``: the reader's 70 % rounded down, the platform the remainder.

    Rounding down for the reader and giving the platform the rest makes the two parts sum to ``cents``
    exactly, so no cent is created or lost.
    """
    if isinstance(cents, bool) or not isinstance(cents, int):
        raise TypeError("cents must be an int")
    if cents < 0:
        raise ValueError("cents must not be negative")
    reader = cents * READER_PERCENT // 100
    return reader, cents - reader
