"""When a client hears that a reader went online (pure, with hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from api.marketplace.alert_policy import ALERT_GAP, Interest, should_alert

NOW = datetime(2030, 6, 1, 12, tzinfo=UTC)
last = st.one_of(st.none(), st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=5)).map(
    lambda ago: NOW - ago))


@given(st.booleans(), st.booleans(), last)
def test_an_alert_goes_to_a_watcher_always_and_to_a_favourite_at_most_once_an_hour(
        favourite: bool, watching: bool, last_alerted: datetime | None) -> None:
    expected = watching or (favourite and (last_alerted is None or NOW - last_alerted >= ALERT_GAP))
    assert should_alert(Interest(favourite, watching, last_alerted), NOW) == expected


def test_the_hour_is_the_boundary() -> None:
    assert not should_alert(Interest(True, False, NOW - ALERT_GAP + timedelta(seconds=1)), NOW)
    assert should_alert(Interest(True, False, NOW - ALERT_GAP), NOW)
    assert not should_alert(Interest(False, False, None), NOW)
