"""A stream: a live broadcast, one publisher and many viewers."""

from __future__ import annotations

from relay.errors import PublisherExistsError, StreamFullError
from relay.router import Router, SourceFactory


class Stream:
    """A live broadcast's media: the publisher's audio and video fanned out to every viewer.

    Viewers may arrive before the publisher (or while it reconnects); they receive its media as
    soon as it flows.

    :param stream_id: the stream id.
    :param make_source: builds the publisher's source of a kind.
    :param max_viewers: viewers admitted before :class:`StreamFullError`.
    """

    def __init__(self, stream_id: str, *, make_source: SourceFactory, max_viewers: int) -> None:
        self.id = stream_id
        self.max_viewers = max_viewers
        self.publisher: str | None = None
        self.viewers: set[str] = set()
        self.router = Router(
            stream_id,
            lambda publisher, subscriber: publisher == self.publisher and subscriber != publisher,
            make_source,
        )

    def __repr__(self) -> str:
        return f"Stream({self.id}, publisher={self.publisher}, viewers={len(self.viewers)})"

    def admit_publisher(self, participant_id: str) -> None:
        if self.publisher is not None and self.publisher != participant_id:
            raise PublisherExistsError(f"stream {self.id} is published by another participant")
        if participant_id in self.viewers:
            self.viewers.discard(participant_id)
        self.publisher = participant_id
        self.router.rewire()

    def admit_viewer(self, participant_id: str) -> None:
        if participant_id == self.publisher:
            raise PublisherExistsError(f"participant {participant_id} publishes stream {self.id}")
        if participant_id not in self.viewers and len(self.viewers) >= self.max_viewers:
            raise StreamFullError(f"stream {self.id} has {len(self.viewers)} viewers, the maximum")
        self.viewers.add(participant_id)

    def hand_over(self, puller_id: str, publisher_id: str) -> None:
        """This relay's pull of the stream ends because its publisher now publishes here: the viewers stay on the
        pull's sources, which the publisher feeds once it publishes (:meth:`admit_publisher`)."""
        if self.publisher == puller_id:
            self.publisher = None
        self.router.hand_over(puller_id, publisher_id)

    async def remove(self, participant_id: str) -> None:
        if participant_id == self.publisher:
            self.publisher = None
        self.viewers.discard(participant_id)
        await self.router.remove_participant(participant_id)

    @property
    def empty(self) -> bool:
        return self.publisher is None and not self.viewers

    async def close(self) -> None:
        self.publisher = None
        self.viewers.clear()
        await self.router.close()
