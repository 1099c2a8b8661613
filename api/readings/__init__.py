"""Readings: paid 1:1 sessions. The pure state machine (states), the rows (store) and their leases, the runtime
of a running reading and the node's live readings, chat, REST, the readings channel of ``/ws``, scheduled
readings and reader slots, and a reader's availability following their sockets.

The readings routes and channel (after :func:`api.realtime.setup`; ``app[LIVE_READINGS]`` is set).
"""

from api.core.setup import Setup
from api.readings import availability_routes, online, reminders, routes, signaling, slots, upcoming

__all__ = ["setup"]

setup = Setup(routes, slots, availability_routes, upcoming, reminders, signaling, online)
