"""Reader profiles: the bio, specialties and languages clients see, and the auto-accept choice.

``GET|POST /api/webrtc/reader/profile`` (reader). The profile row is optional: a reader without one shows
an empty bio and no specialties, so nothing else has to create it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiohttp import web

from api.accounts.auth import require
from api.core import validation as v
from api.core.errors import Invalid
from api.core.keys import DATABASE
from api.core.openapi import operation

log = logging.getLogger(__name__)

MAX_SPECIALTIES = 8
MAX_SPECIALTY_LEN = 40
MAX_BIO_LEN = 1000


@dataclass(frozen=True)
class Profile:
    """What a reader tells clients about themselves."""

    bio: str
    specialties: tuple[str, ...]
    auto_accept: bool
    languages: tuple[str, ...] = ()

    def public(self) -> dict[str, Any]:
        return {"bio": self.bio, "specialties": list(self.specialties), "languages": list(self.languages),
                "autoAccept": self.auto_accept}


EMPTY = Profile(bio="", specialties=(), auto_accept=False)


def specialties(body: dict[str, Any], name: str = "specialties") -> tuple[str, ...]:
    """A short list of short labels; accepts a list or one comma-separated string (what a text field sends)."""
    raw = body.get(name, [])
    if isinstance(raw, str):
        raw = raw.split(",")
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        raise Invalid(f"{name} must be a list of strings", field=name)
    labels: list[str] = []
    for item in raw:
        label = " ".join(item.split())
        if not label:
            continue
        if len(label) > MAX_SPECIALTY_LEN:
            raise Invalid(f"each specialty must be at most {MAX_SPECIALTY_LEN} characters", field=name)
        if label.lower() not in (seen.lower() for seen in labels):
            labels.append(label)
    if len(labels) > MAX_SPECIALTIES:
        raise Invalid(f"at most {MAX_SPECIALTIES} specialties", field=name)
    return tuple(labels)


def parse(body: dict[str, Any], current: Profile) -> Profile:
    """A new profile from a request body; fields left out keep their current value."""
    bio = current.bio
    if "bio" in body:
        bio = v.text(body, "bio", min_len=0, max_len=MAX_BIO_LEN)
    labels = specialties(body) if "specialties" in body else current.specialties
    languages = specialties(body, "languages") if "languages" in body else current.languages
    auto_accept = current.auto_accept
    if "autoAccept" in body:
        if not isinstance(body["autoAccept"], bool):
            raise Invalid("autoAccept must be true or false", field="autoAccept")
        auto_accept = body["autoAccept"]
    return Profile(bio=bio, specialties=labels, auto_accept=auto_accept, languages=languages)


async def load(conn: asyncpg.Connection | asyncpg.Pool, reader_id: str) -> Profile:
    row = await conn.fetchrow(
        "SELECT bio, specialties, languages, auto_accept FROM reader_profiles WHERE reader_id = $1", reader_id
    )
    if row is None:
        return EMPTY
    return Profile(bio=row["bio"], specialties=tuple(row["specialties"]), auto_accept=row["auto_accept"],
                   languages=tuple(row["languages"]))


async def save(conn: asyncpg.Connection | asyncpg.Pool, reader_id: str, profile: Profile) -> None:
    await conn.execute(
        "INSERT INTO reader_profiles (reader_id, bio, specialties, auto_accept, languages) VALUES ($1, $2, $3, $4, $5)"
        " ON CONFLICT (reader_id) DO UPDATE SET bio = $2, specialties = $3, auto_accept = $4, languages = $5,"
        " updated_at = now()",
        reader_id, profile.bio, list(profile.specialties), profile.auto_accept, list(profile.languages),
    )


PROFILE_SHAPE = "{profile: {bio, specialties: [string], languages: [string], autoAccept}}"


@operation(summary="The reader's own profile (bio, specialties, languages, auto-accept)", roles=("reader",),
           response=PROFILE_SHAPE)
async def get_profile(request: web.Request) -> web.Response:
    user = await require(request, "reader")
    profile = await load(request.app[DATABASE].pool, user.id)
    return web.json_response({"profile": profile.public()})


@operation(summary="Set the reader's profile (fields left out keep their value)", roles=("reader",),
           request="{bio?, specialties?: [string] | \"a, b\", languages?: [string] | \"a, b\", autoAccept?: boolean}",
           response=PROFILE_SHAPE)
async def update_profile(request: web.Request) -> web.Response:
    user = await require(request, "reader")
    body = await v.read_json(request)
    pool = request.app[DATABASE].pool
    async with pool.acquire() as conn, conn.transaction():
        current = await load(conn, user.id)
        profile = parse(body, current)
        await save(conn, user.id, profile)
    log.info("reader profile saved", extra={"userId": user.id})
    return web.json_response({"profile": profile.public()})


def setup(app: web.Application) -> None:
    app.router.add_get("/api/webrtc/reader/profile", get_profile)
    app.router.add_post("/api/webrtc/reader/profile", update_profile)
