"""Reader photos: a reader uploads one (``POST /api/webrtc/reader/photo``, the image as the request body) or
removes it; anyone fetches it at ``/readers/{readerId}/photo``. A reader without a photo shows their initials.

The photo's URL carries its version, so a page can cache it for a year (``immutable``); the bare URL is
cached for five minutes and revalidated by its ``ETag``.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg
from aiohttp import web

from api.accounts.auth import require
from api.cluster import CLUSTER
from api.cluster.limits import SharedUserAndAddressLimiter
from api.core.client_address import client_address
from api.core.errors import Invalid, NotFound, PayloadTooLarge, TooManyRequests
from api.core.keys import DATABASE
from api.core.openapi import operation
from api.core.validation import path_uuid
from api.marketplace.photo_image import MAX_UPLOAD_BYTES, PhotoRejected, process

log = logging.getLogger(__name__)

PHOTO_LIMITER = web.AppKey("photo_limiter", SharedUserAndAddressLimiter)
UPLOADS_PER_HOUR = 20
FOREVER = "public, max-age=31536000, immutable"
BRIEFLY = "public, max-age=300, must-revalidate"
_READ_CHUNK = 64 * 1024


def photo_url(reader_id: str, version: str | None) -> str | None:
    """Where a page finds a reader's photo (None: show the initials)."""
    return f"/readers/{reader_id}/photo?v={version}" if version else None


async def _body(request: web.Request) -> bytes:
    """The upload, read in chunks up to the limit (the app's JSON limit is far smaller than a photo)."""
    if request.content_length is not None and request.content_length > MAX_UPLOAD_BYTES:
        raise PayloadTooLarge(f"a photo must be at most {MAX_UPLOAD_BYTES // (1024 * 1024)} MB")
    data = bytearray()
    while chunk := await request.content.read(_READ_CHUNK):
        data += chunk
        if len(data) > MAX_UPLOAD_BYTES:
            raise PayloadTooLarge(f"a photo must be at most {MAX_UPLOAD_BYTES // (1024 * 1024)} MB")
    return bytes(data)


@operation(summary="Upload the reader's photo (the image itself as the body: JPEG, PNG, WebP or GIF, up to 5 MB)",
           roles=("reader",), request="raw image bytes (Content-Type image/*)",
           response="{photoUrl}; 422 invalid_image, 413 payload_too_large", status=201, tags=("profiles",))
async def upload(request: web.Request) -> web.Response:
    user = await require(request, "reader")
    wait = await request.app[PHOTO_LIMITER].hit(user.id, client_address(request))
    if wait > 0:
        raise TooManyRequests("too many photo uploads; try again later", headers={"Retry-After": str(int(wait) + 1)})
    if not request.content_type.startswith("image/"):
        raise Invalid("send the image itself, with an image/* Content-Type", code="invalid_image", field="photo")
    data = await _body(request)
    try:
        photo = await asyncio.to_thread(process, data)
    except PhotoRejected as exc:
        raise Invalid(str(exc), code="invalid_image", field="photo") from None
    await request.app[DATABASE].pool.execute(
        "INSERT INTO reader_photos (reader_id, image, content_type, version, width, height)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (reader_id) DO UPDATE SET image = $2, content_type = $3,"
        " version = $4, width = $5, height = $6, updated_at = now()",
        user.id, photo.image, photo.content_type, photo.version, photo.width, photo.height)
    log.info("reader photo saved", extra={"userId": user.id, "bytes": len(photo.image), "uploadBytes": len(data)})
    return web.json_response({"photoUrl": photo_url(user.id, photo.version)}, status=201)


@operation(summary="Remove the reader's photo (their initials show instead)", roles=("reader",), status=204,
           tags=("profiles",))
async def remove(request: web.Request) -> web.Response:
    user = await require(request, "reader")
    await request.app[DATABASE].pool.execute("DELETE FROM reader_photos WHERE reader_id = $1", user.id)
    return web.Response(status=204)


async def serve(request: web.Request) -> web.StreamResponse:
    """The photo's bytes, cached for good when asked for by its current version."""
    try:
        reader_id = path_uuid(request, "readerId")
    except NotFound:
        raise web.HTTPNotFound() from None
    row = await request.app[DATABASE].pool.fetchrow(
        "SELECT image, content_type, version FROM reader_photos WHERE reader_id = $1", reader_id)
    if row is None:
        raise web.HTTPNotFound()
    etag = f'"{row["version"]}"'
    cache = FOREVER if request.query.get("v") == row["version"] else BRIEFLY
    headers = {"ETag": etag, "Cache-Control": cache}
    if etag in [t.strip() for t in request.headers.get("If-None-Match", "").split(",")]:
        return web.Response(status=304, headers=headers)
    return web.Response(body=row["image"], content_type=row["content_type"], headers=headers)


async def version_of(db: asyncpg.Pool | asyncpg.Connection, reader_id: str) -> str | None:
    return await db.fetchval("SELECT version FROM reader_photos WHERE reader_id = $1", reader_id)  # type: ignore[no-any-return]


def setup(app: web.Application) -> None:
    app[PHOTO_LIMITER] = SharedUserAndAddressLimiter("photos", UPLOADS_PER_HOUR, 3 * UPLOADS_PER_HOUR, 3600.0,
                                                     node=app.get(CLUSTER))
    app.router.add_post("/api/webrtc/reader/photo", upload)
    app.router.add_delete("/api/webrtc/reader/photo", remove)
    app.router.add_get("/readers/{readerId}/photo", serve)
