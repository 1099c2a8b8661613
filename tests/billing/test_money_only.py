"""billing/ is about money: a reading's lifecycle (its row's creation and its status) is written only by the
readings side, through its state machine (api/readings/store.py with api/readings/states.py)."""

from __future__ import annotations

import re
from pathlib import Path

from api.readings.states import Mode, State, initial_state

BILLING = Path(__file__).resolve().parents[2] / "billing"
CREATES_A_READING = re.compile(r"INSERT\s+INTO\s+rtc_sessions", re.I)
WRITES_A_STATUS = re.compile(r"UPDATE\s+rtc_sessions\s+SET\b[^\"']*?\bstatus\s*=", re.I)


def test_billing_never_creates_a_reading_nor_writes_its_status() -> None:
    for path in sorted(BILLING.rglob("*.py")):
        source = path.read_text()
        assert not CREATES_A_READING.search(source), f"{path} creates a reading"
        assert not WRITES_A_STATUS.search(source), f"{path} writes a reading's status"


def test_a_reading_is_created_in_the_state_its_mode_starts_in() -> None:
    assert initial_state(Mode.PER_MINUTE) is State.REQUESTED
    assert initial_state("scheduled") is State.ACCEPTED  # booked and paid at once
