"""Live streams: a reader broadcasts to many viewers. Who is on a stream (audience) and who gave most
(leaderboard), the hub that fans events out to sockets, the stream rows, REST, the streams channel of
``/ws``, the gift catalogue and sending gifts.

The streams routes and channel (after :func:`api.realtime.setup`).
"""

from api.core.setup import Setup
from api.streams import gift_catalogue, gift_sending, routes, signaling

__all__ = ["setup"]

setup = Setup(routes, gift_catalogue, gift_sending, signaling)
