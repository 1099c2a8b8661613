"""A reader's profile page, ``/readers/{reader_id}``: open to everyone (visitors are asked to log in only when
they press a button). The reader sees their own page as clients do, with a photo form and reply boxes."""

from __future__ import annotations

import uuid

from aiohttp import web

from api.accounts.auth import authenticate
from api.marketplace import profile
from api.pages.rendering import render

# The booking flow's page for a reader (its slots, their price and the cancellation policy before paying).
BOOKING_PATH = "/readers/{reader_id}/book"


async def reader_page(request: web.Request) -> web.Response:
    auth = await authenticate(request)
    try:
        reader_id = str(uuid.UUID(request.match_info["reader_id"]))
    except ValueError:
        return await render(request, "not_found.html", auth, script="layout", status=404)
    viewer = auth.user if auth is not None else None
    found = await profile.load(request.app, reader_id, viewer)
    if found is None:
        return await render(request, "not_found.html", auth, script="layout", status=404)
    own = viewer is not None and viewer.id == reader_id
    return await render(request, "reader_profile.html", auth, script="reader", r=found, own=own,
                        booking_url=BOOKING_PATH.format(reader_id=reader_id),
                        data={"reader": {"id": reader_id, "displayName": found["displayName"],
                                         "status": found["status"], "interest": found["interest"]}, "own": own})


def setup(app: web.Application) -> None:
    app.router.add_get("/readers/{reader_id}", reader_page)
