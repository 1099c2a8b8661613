"""Routing inside one room or stream: which subscriber tracks each source feeds.

A router holds the sources (participant, kind) and the current subscriber track of each
(participant, kind), and keeps them wired by one rule, ``feeds(publisher, subscriber)``. Rooms feed
every participant from the other; a stream feeds every viewer from its publisher. Whichever side
arrives first, the wiring is made when the other appears, so a subscriber who joins before the
publisher starts receiving the moment the publisher's media flows, without renegotiation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from relay.forwarder import Source, SubscriberTrack

logger = logging.getLogger(__name__)

Feeds = Callable[[str, str], bool]
SourceFactory = Callable[[str, str], Source]


class Router:
    """Sources and subscriber tracks of one room or stream, wired by ``feeds``.

    :param scope: the room or stream id.
    :param feeds: ``feeds(publisher_id, subscriber_id)`` says whether a publisher's media goes to a
        subscriber.
    :param make_source: builds the :class:`Source` for (participant id, kind).
    """

    def __init__(self, scope: str, feeds: Feeds, make_source: SourceFactory) -> None:
        self.scope = scope
        self._feeds = feeds
        self._make_source = make_source
        self.sources: dict[tuple[str, str], Source] = {}
        self.tracks: dict[tuple[str, str], SubscriberTrack] = {}

    def source(self, participant_id: str, kind: str) -> Source:
        """The participant's source of ``kind``, created (and wired) on first use."""
        key = (participant_id, kind)
        source = self.sources.get(key)
        if source is None:
            source = self._make_source(participant_id, kind)
            self.sources[key] = source
            for (subscriber, track_kind), track in self.tracks.items():
                if track_kind == kind and self._feeds(participant_id, subscriber):
                    source.subscribe(track)
        return source

    def add_track(self, track: SubscriberTrack) -> None:
        """Make ``track`` the participant's subscriber track of its kind, fed by matching sources."""
        self.tracks[(track.owner, track.kind)] = track
        for (publisher, kind), source in self.sources.items():
            if kind == track.kind and self._feeds(publisher, track.owner):
                source.subscribe(track)

    def remove_track(self, track: SubscriberTrack) -> None:
        key = (track.owner, track.kind)
        if self.tracks.get(key) is track:
            del self.tracks[key]
        if track.source is not None:
            track.source.unsubscribe(track)

    def rewire(self) -> None:
        """Re-apply ``feeds`` after the rule's inputs changed (e.g. a stream's publisher)."""
        for track in self.tracks.values():
            if track.source is not None and not self._feeds(track.source.owner, track.owner):
                track.source.unsubscribe(track)
        for (publisher, kind), source in self.sources.items():
            for (subscriber, track_kind), track in self.tracks.items():
                if track_kind == kind and track.source is None and self._feeds(publisher, subscriber):
                    source.subscribe(track)

    def hand_over(self, old_owner: str, new_owner: str) -> None:
        """``old_owner``'s sources carry ``new_owner``'s media from now on (an edge's pull handed to the stream's
        publisher, now publishing here): same sources, so their subscribers keep one outgoing timeline."""
        for kind in [k for owner, k in self.sources if owner == old_owner]:
            source = self.sources.pop((old_owner, kind))
            source.pass_to(new_owner)
            self.sources[(new_owner, kind)] = source

    async def remove_participant(self, participant_id: str) -> None:
        """Forget a participant's sources and tracks (it left for good)."""
        for key in [k for k in self.tracks if k[0] == participant_id]:
            self.remove_track(self.tracks[key])
        for key in [k for k in self.sources if k[0] == participant_id]:
            await self.sources.pop(key).close()

    async def close(self) -> None:
        for track in list(self.tracks.values()):
            self.remove_track(track)
        for source in self.sources.values():
            await source.close()
        self.sources.clear()
