from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.streams.leaderboard import Gifter, Leaderboard

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_gifters_are_ranked_by_total_cents_given() -> None:
    board = Leaderboard()
    board.add("a", "Ann", 100, at(0))
    board.add("b", "Bob", 500, at(1))
    board.add("a", "Ann", 500, at(2))
    assert [(g["rank"], g["userId"], g["totalCents"], g["gifts"]) for g in board.public()] == [
        (1, "a", 600, 2), (2, "b", 500, 1)]


def test_on_a_tie_whoever_reached_the_total_first_stays_ahead() -> None:
    board = Leaderboard()
    board.add("late", "Late", 300, at(5))
    board.add("early", "Early", 300, at(1))
    assert [g.user_id for g in board.top()] == ["early", "late"]


def test_only_the_top_limit_are_shown() -> None:
    board = Leaderboard(limit=3)
    for i in range(10):
        board.add(f"u{i}", f"U{i}", 100 + i, at(i))
    assert [g.user_id for g in board.top()] == ["u9", "u8", "u7"]
    assert board.total_cents() == sum(100 + i for i in range(10))


def test_seeded_from_stored_totals_then_updated() -> None:
    board = Leaderboard([Gifter("a", "Ann", 1000, 3, at(0))])
    board.add("a", "Ann B.", 100, at(9))
    (top,) = board.top()
    assert (top.total_cents, top.gifts, top.display_name, top.last_at) == (1100, 4, "Ann B.", at(9))


def test_a_gift_must_be_worth_something() -> None:
    with pytest.raises(ValueError):
        Leaderboard().add("a", "Ann", 0, at(0))


@given(st.lists(st.tuples(st.sampled_from("abcdef"), st.integers(1, 10_000)), max_size=60))
def test_totals_add_up_and_the_ranking_never_increases(gifts: list[tuple[str, int]]) -> None:
    board = Leaderboard(limit=100)
    for i, (user, cents) in enumerate(gifts):
        board.add(user, user.upper(), cents, at(i))
    top = board.top()
    assert sum(g.total_cents for g in top) == sum(c for _, c in gifts) == board.total_cents()
    assert all(x.total_cents >= y.total_cents for x, y in pairwise(top))
