"""The relay's exception family: every refusal the signaling layer may show a user.

Each error carries a stable machine-readable ``code`` that ``api/`` maps to the signaling
``error`` message in one place; the message is for logs and humans.
"""

from __future__ import annotations


class RelayError(Exception):
    """Base of every error the relay raises on purpose."""

    code: str = "relay_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.code


class CapacityError(RelayError):
    """A configured cap refuses a new participant (the node, a stream or a room is full)."""

    code = "relay_full"


class RelayFullError(CapacityError):
    code = "relay_full"


class RelayBusyError(CapacityError):
    """The relay's process is at its CPU limit: one more participant would degrade everyone's media."""

    code = "relay_busy"


class StreamFullError(CapacityError):
    code = "stream_full"


class RoomFullError(CapacityError):
    code = "room_full"


class UnknownRoomError(RelayError):
    code = "unknown_room"


class UnknownStreamError(RelayError):
    code = "unknown_stream"


class UnknownParticipantError(RelayError):
    code = "unknown_participant"


class PublisherExistsError(RelayError):
    """A stream already has a different publisher."""

    code = "publisher_exists"


class BadSdpError(RelayError):
    """An offer that cannot be parsed or negotiated."""

    code = "bad_sdp"


class BadCandidateError(RelayError):
    code = "bad_candidate"


class BadIceServerError(RelayError):
    code = "bad_ice_server"


class RelayClosedError(RelayError):
    code = "relay_closed"
