"""Premium messages: threads between a client and a reader, paid per message by the client (replies are free),
the rule for when an unanswered message is refunded, and the sweeper that refunds them.

The messages routes and the refund sweeper.
"""

from api.core.setup import Setup
from api.messages import refund_sweeper, routes

__all__ = ["setup"]

setup = Setup(routes, refund_sweeper)
