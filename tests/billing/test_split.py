"""The 70/30 split: the reader's share rounded down, the platform's the remainder, always summing exactly."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.split import split


@pytest.mark.parametrize(("cents", "expected"), [
    (0, (0, 0)), (1, (0, 1)), (2, (1, 1)), (3, (2, 1)), (10, (7, 3)), (99, (69, 30)), (100, (70, 30)),
    (333, (233, 100)), (199, (139, 60)),
])
def test_reader_gets_seventy_percent_rounded_down(cents: int, expected: tuple[int, int]) -> None:
    assert split(cents) == expected


@given(st.integers(min_value=0, max_value=10**12))
def test_parts_sum_to_the_charge_and_reader_share_is_floored(cents: int) -> None:
    reader, platform = split(cents)
    assert reader + platform == cents
    assert reader == cents * 7 // 10
    assert 0 <= reader <= platform * 7 // 3 + 3


def test_refuses_floats_and_negative_amounts() -> None:
    with pytest.raises(TypeError):
        split(1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        split(True)
    with pytest.raises(ValueError):
        split(-1)
