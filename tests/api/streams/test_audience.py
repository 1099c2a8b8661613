from __future__ import annotations

import pytest

from api.streams.audience import Audience, AudienceFull


def test_each_viewer_counts_once_however_many_tabs_they_open() -> None:
    audience = Audience(reader_id="reader", max_viewers=10)
    assert audience.join("c1", "ann") is True
    assert audience.join("c2", "ann") is False
    assert audience.join("c3", "bob") is True
    assert audience.viewer_count == 2
    assert audience.leave("c1") is False
    assert audience.viewer_count == 2
    assert audience.leave("c2") is True
    assert audience.viewer_count == 1


def test_the_reader_publishes_and_is_not_a_viewer() -> None:
    audience = Audience(reader_id="reader", max_viewers=10)
    assert audience.role_of("reader") == "publisher" and audience.role_of("ann") == "viewer"
    assert audience.join("p", "reader") is False
    assert audience.viewer_count == 0 and audience.publisher_connected
    assert audience.leave("p") is False
    assert not audience.publisher_connected


def test_a_full_stream_refuses_new_viewers_but_not_more_tabs_or_the_reader() -> None:
    audience = Audience(reader_id="reader", max_viewers=1)
    audience.join("c1", "ann")
    with pytest.raises(AudienceFull):
        audience.join("c2", "bob")
    audience.join("c3", "ann")
    audience.join("p", "reader")
    assert audience.viewer_count == 1 and len(audience) == 3


def test_joining_twice_or_leaving_unknown_connections_changes_nothing() -> None:
    audience = Audience(reader_id="reader", max_viewers=10)
    audience.join("c1", "ann")
    assert audience.join("c1", "ann") is False
    assert audience.leave("nope") is False
    assert audience.viewer_count == 1 and audience.connections() == ["c1"]
    assert audience.user_of("c1") == "ann" and audience.user_of("nope") is None
