"""The reading's life cycle as a pure state machine: which event moves a reading from which state, and who sends it.

``requested → accepted → active → ended``, or ``requested → declined | cancelled | expired``. A scheduled
reading is booked straight into ``accepted`` (it was paid at booking) and its client may still cancel it
there. No I/O here: the REST handlers, the expiry sweep and the runtime ask :func:`transition` and then
write the answer to the database with a compare-and-set on the old state.
"""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    REQUESTED = "requested"
    ACCEPTED = "accepted"
    ACTIVE = "active"
    ENDED = "ended"
    DECLINED = "declined"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class Event(StrEnum):
    ACCEPT = "accept"
    DECLINE = "decline"
    CANCEL = "cancel"
    EXPIRE = "expire"
    START = "start"
    END = "end"


class Actor(StrEnum):
    CLIENT = "client"
    READER = "reader"
    SYSTEM = "system"


class Mode(StrEnum):
    PER_MINUTE = "per_minute"
    SCHEDULED = "scheduled"


# A reading is created in the state its mode starts in: a per-minute request waits for its reader; a booked
# (scheduled) reading was accepted, and paid, at booking.
_INITIAL = {Mode.PER_MINUTE: State.REQUESTED, Mode.SCHEDULED: State.ACCEPTED}


def initial_state(mode: Mode | str) -> State:
    """The state a new reading of ``mode`` is created in."""
    return _INITIAL[Mode(mode)]


FINAL = frozenset({State.ENDED, State.DECLINED, State.CANCELLED, State.EXPIRED})
# A reading in one of these holds its reader (and its client): see the partial unique indexes in 0003.
OPEN = frozenset({State.REQUESTED, State.ACCEPTED, State.ACTIVE})

# (state, event) -> (next state, who may send the event, which modes allow it)
_ANY_MODE = frozenset(Mode)
_RULES: dict[tuple[State, Event], tuple[State, frozenset[Actor], frozenset[Mode]]] = {
    (State.REQUESTED, Event.ACCEPT): (State.ACCEPTED, frozenset({Actor.READER}), _ANY_MODE),
    (State.REQUESTED, Event.DECLINE): (State.DECLINED, frozenset({Actor.READER}), _ANY_MODE),
    (State.REQUESTED, Event.CANCEL): (State.CANCELLED, frozenset({Actor.CLIENT}), _ANY_MODE),
    (State.REQUESTED, Event.EXPIRE): (State.EXPIRED, frozenset({Actor.SYSTEM}), _ANY_MODE),
    # A paid booking can be cancelled by its client until it starts (the refund policy decides how much back).
    (State.ACCEPTED, Event.CANCEL): (State.CANCELLED, frozenset({Actor.CLIENT}), frozenset({Mode.SCHEDULED})),
    (State.ACCEPTED, Event.START): (State.ACTIVE, frozenset({Actor.SYSTEM}), _ANY_MODE),
    # Accepted but never started: either party may give up, or the system ends it (no-show, join timeout).
    (State.ACCEPTED, Event.END): (State.ENDED, frozenset(Actor), _ANY_MODE),
    (State.ACTIVE, Event.END): (State.ENDED, frozenset(Actor), _ANY_MODE),
}


class IllegalTransition(Exception):
    """The event is not allowed in this state, for this actor or this mode; the reading is left as it was."""

    def __init__(self, code: str, message: str, *, state: State, event: Event) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.state = state
        self.event = event


def transition(state: State | str, event: Event | str, actor: Actor | str,
               mode: Mode | str = Mode.PER_MINUTE) -> State:
    """The state after ``event`` sent by ``actor``, or :class:`IllegalTransition` saying why not."""
    state, event, actor, mode = State(state), Event(event), Actor(actor), Mode(mode)
    rule = _RULES.get((state, event))
    if rule is None:
        if state in FINAL:
            raise IllegalTransition("reading_closed", f"the reading is already {state.value}",
                                    state=state, event=event)
        raise IllegalTransition("wrong_state", f"cannot {event.value} a reading that is {state.value}",
                                state=state, event=event)
    after, actors, modes = rule
    if mode not in modes:
        raise IllegalTransition("wrong_state", f"cannot {event.value} a {mode.value} reading that is "
                                f"{state.value}", state=state, event=event)
    if actor not in actors:
        allowed = " or ".join(sorted(a.value for a in actors))
        raise IllegalTransition("not_allowed", f"only the {allowed} can {event.value} this reading",
                                state=state, event=event)
    return after


def allowed_events(state: State | str, actor: Actor | str, mode: Mode | str = Mode.PER_MINUTE) -> frozenset[Event]:
    """Every event ``actor`` may send in ``state`` (what a UI can offer as buttons)."""
    state, actor, mode = State(state), Actor(actor), Mode(mode)
    return frozenset(
        event for (s, event), (_, actors, modes) in _RULES.items() if s == state and actor in actors and mode in modes
    )
