"""SoulSeer's media relay: forwards encoded WebRTC media between participants, never transcoding.

See the "Media relay" section of README.md for the design, and :class:`Relay` for the API the signaling layer uses.
"""

from relay.errors import (
    BadCandidateError,
    BadIceServerError,
    BadSdpError,
    CapacityError,
    PublisherExistsError,
    RelayBusyError,
    RelayClosedError,
    RelayError,
    RelayFullError,
    RoomFullError,
    StreamFullError,
    UnknownParticipantError,
    UnknownRoomError,
    UnknownStreamError,
)
from relay.relay import Relay

__all__ = [
    "BadCandidateError",
    "BadIceServerError",
    "BadSdpError",
    "CapacityError",
    "PublisherExistsError",
    "Relay",
    "RelayBusyError",
    "RelayClosedError",
    "RelayError",
    "RelayFullError",
    "RoomFullError",
    "StreamFullError",
    "UnknownParticipantError",
    "UnknownRoomError",
    "UnknownStreamError",
]
