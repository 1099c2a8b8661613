"""The reading life cycle: every legal move, and every illegal one refused with a reason."""

from __future__ import annotations

import itertools

import pytest

from api.readings.states import (
    FINAL,
    Actor,
    Event,
    IllegalTransition,
    Mode,
    State,
    allowed_events,
    transition,
)

LEGAL = {
    # (state, event, actor, mode) -> next
    (State.REQUESTED, Event.ACCEPT, Actor.READER, Mode.PER_MINUTE): State.ACCEPTED,
    (State.REQUESTED, Event.DECLINE, Actor.READER, Mode.PER_MINUTE): State.DECLINED,
    (State.REQUESTED, Event.CANCEL, Actor.CLIENT, Mode.PER_MINUTE): State.CANCELLED,
    (State.REQUESTED, Event.EXPIRE, Actor.SYSTEM, Mode.PER_MINUTE): State.EXPIRED,
    (State.ACCEPTED, Event.START, Actor.SYSTEM, Mode.PER_MINUTE): State.ACTIVE,
    (State.ACCEPTED, Event.END, Actor.CLIENT, Mode.PER_MINUTE): State.ENDED,
    (State.ACCEPTED, Event.END, Actor.READER, Mode.PER_MINUTE): State.ENDED,
    (State.ACCEPTED, Event.END, Actor.SYSTEM, Mode.PER_MINUTE): State.ENDED,
    (State.ACTIVE, Event.END, Actor.CLIENT, Mode.PER_MINUTE): State.ENDED,
    (State.ACTIVE, Event.END, Actor.READER, Mode.PER_MINUTE): State.ENDED,
    (State.ACTIVE, Event.END, Actor.SYSTEM, Mode.PER_MINUTE): State.ENDED,
}
# Scheduled readings follow the same rules, and a booked (accepted) one can be cancelled by its client.
LEGAL |= {(s, e, a, Mode.SCHEDULED): n for (s, e, a, _), n in LEGAL.items()}
LEGAL[(State.ACCEPTED, Event.CANCEL, Actor.CLIENT, Mode.SCHEDULED)] = State.CANCELLED

ALL = list(itertools.product(State, Event, Actor, Mode))


def test_the_happy_path_runs_requested_accepted_active_ended() -> None:
    state = State.REQUESTED
    state = transition(state, Event.ACCEPT, Actor.READER)
    assert state is State.ACCEPTED
    state = transition(state, Event.START, Actor.SYSTEM)
    assert state is State.ACTIVE
    assert transition(state, Event.END, Actor.CLIENT) is State.ENDED


@pytest.mark.parametrize(("state", "event", "actor", "mode"), list(LEGAL))
def test_every_legal_transition_lands_where_the_design_says(state: State, event: Event, actor: Actor,
                                                            mode: Mode) -> None:
    assert transition(state, event, actor, mode) is LEGAL[(state, event, actor, mode)]


@pytest.mark.parametrize(("state", "event", "actor", "mode"), [c for c in ALL if c not in LEGAL])
def test_every_other_transition_is_refused_with_a_code_and_leaves_the_state(state: State, event: Event,
                                                                            actor: Actor, mode: Mode) -> None:
    before = state
    with pytest.raises(IllegalTransition) as caught:
        transition(state, event, actor, mode)
    error = caught.value
    assert error.code in {"wrong_state", "not_allowed", "reading_closed"}
    assert error.message and error.state is before and error.event is event
    assert state is before


@pytest.mark.parametrize("state", sorted(FINAL))
def test_a_finished_reading_accepts_nothing(state: State) -> None:
    for event, actor, mode in itertools.product(Event, Actor, Mode):
        with pytest.raises(IllegalTransition) as caught:
            transition(state, event, actor, mode)
        assert caught.value.code == "reading_closed"


def test_a_client_cannot_accept_and_says_who_can() -> None:
    with pytest.raises(IllegalTransition) as caught:
        transition(State.REQUESTED, Event.ACCEPT, Actor.CLIENT)
    assert caught.value.code == "not_allowed"
    assert "reader" in caught.value.message


def test_a_reader_cannot_cancel_a_request_it_can_only_decline() -> None:
    with pytest.raises(IllegalTransition):
        transition(State.REQUESTED, Event.CANCEL, Actor.READER)
    assert transition(State.REQUESTED, Event.DECLINE, Actor.READER) is State.DECLINED


def test_a_per_minute_reading_cannot_be_cancelled_once_accepted() -> None:
    with pytest.raises(IllegalTransition) as caught:
        transition(State.ACCEPTED, Event.CANCEL, Actor.CLIENT, Mode.PER_MINUTE)
    assert caught.value.code == "wrong_state"


def test_an_active_reading_cannot_expire_or_start_again() -> None:
    for event in (Event.EXPIRE, Event.START, Event.ACCEPT):
        with pytest.raises(IllegalTransition):
            transition(State.ACTIVE, event, Actor.SYSTEM)


def test_strings_are_accepted_like_the_database_stores_them() -> None:
    assert transition("requested", "accept", "reader", "per_minute") == "accepted"


def test_unknown_names_are_rejected_before_any_rule() -> None:
    with pytest.raises(ValueError):
        transition("paused", "accept", "reader")


def test_allowed_events_lists_what_an_actor_can_do() -> None:
    assert allowed_events(State.REQUESTED, Actor.READER) == {Event.ACCEPT, Event.DECLINE}
    assert allowed_events(State.REQUESTED, Actor.CLIENT) == {Event.CANCEL}
    assert allowed_events(State.ACCEPTED, Actor.CLIENT, Mode.SCHEDULED) == {Event.CANCEL, Event.END}
    assert allowed_events(State.ENDED, Actor.SYSTEM) == frozenset()
