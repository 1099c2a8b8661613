"""One time format leaves the server: ISO-8601 UTC with a ``Z``, to the millisecond (api/core/times.py)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

from aiohttp.test_utils import TestClient

from api.core.times import iso, now_iso
from tests.api.users import quick_user

FORMAT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def test_a_time_is_said_in_utc_with_z_to_the_millisecond() -> None:
    paris = timezone(timedelta(hours=1))
    assert iso(datetime(2026, 1, 2, 4, 4, 5, 678901, tzinfo=paris)) == "2026-01-02T03:04:05.678Z"
    assert iso(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05.000Z"
    assert iso(None) is None
    assert FORMAT.match(now_iso())


async def test_stream_times_are_in_the_one_format(client: TestClient) -> None:
    _, rh = await quick_user(client, "reader")
    resp = await client.post("/api/streams", json={"title": "Times"}, headers=rh)
    assert resp.status == 201
    stream = (await resp.json())["stream"]
    assert FORMAT.match(stream["startedAt"]), stream["startedAt"]
    ended = await (await client.post(f"/api/streams/{stream['id']}/end", headers=rh)).json()
    assert FORMAT.match(ended["stream"]["endedAt"]), ended
