"""How values read on pages: money in cents, durations, initials, avatar colours, notification sentences."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.pages.format import _NOTIFICATION_TEXT, avatar_hue, duration, initials, money, notification
from api.realtime.notifications import KINDS, store


def test_money_is_dollars_and_cents_from_integer_cents() -> None:
    assert [money(c) for c in (0, 5, 199, 123456, -250)] == ["$0.00", "$0.05", "$1.99", "$1,234.56", "-$2.50"]


@given(st.integers(min_value=-10**12, max_value=10**12))
def test_money_round_trips_every_cent(cents: int) -> None:
    text = money(cents).replace("$", "").replace(",", "")
    sign = -1 if text.startswith("-") else 1
    dollars, part = text.lstrip("-").split(".")
    assert sign * (int(dollars) * 100 + int(part)) == cents


def test_durations_read_like_a_clock() -> None:
    assert [duration(s) for s in (0, 9, 75, 3725, None)] == ["0:00", "0:09", "1:15", "1:02:05", "0:00"]


def test_initials_take_the_first_and_last_words() -> None:
    assert [initials(n) for n in ("Luna Hart", "sage", "Mary Ann Evans", "  ", "<script>")] == [
        "LH", "S", "ME", "?", "?"]


def test_an_avatar_keeps_its_colour() -> None:
    assert avatar_hue("a") == avatar_hue("a")
    assert {avatar_hue(str(i)) for i in range(200)} == set(range(8))


def test_a_notification_reads_as_a_sentence_and_links_to_its_reading() -> None:
    session = {"id": "3b0eedfd-ebf7-4c3d-a326-0e2db460f0fc", "clientName": "Ada", "sessionType": "video"}
    text, link = notification("session-requested", {"session": session, **session})
    assert text == "Ada requested a video reading."
    assert link == "/readings/3b0eedfd-ebf7-4c3d-a326-0e2db460f0fc"
    assert notification("something-new", {}) == ("Something new.", None)


def test_every_notification_kind_reads_as_a_sentence_and_no_page_text_names_an_unsent_kind() -> None:
    assert set(_NOTIFICATION_TEXT) == KINDS
    text, _ = notification("session-booked", {"session": {"clientName": "Ada", "sessionType": "video"}})
    assert text == "Ada booked a video reading."


async def test_storing_an_unknown_notification_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown notification kind"):
        await store(None, "u", "funds-added", {})  # type: ignore[arg-type]
