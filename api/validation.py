"""Reading request bodies: JSON objects whose fields are checked one by one, each error naming its field."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Collection
from typing import Any

from aiohttp import web

from api.errors import BadRequest, Invalid, PayloadTooLarge

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")


async def read_json(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object, or a 400 that says what is wrong with it."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge("request body is too large") from None
    if not raw:
        raise BadRequest("request body must be a JSON object", code="malformed_json")
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadRequest("request body is not valid JSON", code="malformed_json") from None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object", code="malformed_json")
    return body


def text(body: dict[str, Any], name: str, *, min_len: int = 1, max_len: int = 200,
         strip: bool = True) -> str:
    value = body.get(name)
    if value is None:
        raise Invalid(f"{name} is required", field=name)
    if not isinstance(value, str):
        raise Invalid(f"{name} must be a string", field=name)
    if strip:
        value = value.strip()
    if not min_len <= len(value) <= max_len:
        raise Invalid(f"{name} must be {min_len} to {max_len} characters", field=name)
    if "\x00" in value:
        raise Invalid(f"{name} must not contain NUL characters", field=name)
    return value


def email(body: dict[str, Any], name: str = "email") -> str:
    value = text(body, name, min_len=3, max_len=254)
    if not _EMAIL.match(value):
        raise Invalid(f"{name} is not a valid email address", field=name)
    return value.lower()


def choice(body: dict[str, Any], name: str, options: Collection[str]) -> str:
    value = body.get(name)
    if value is None:
        raise Invalid(f"{name} is required", field=name)
    if not isinstance(value, str) or value not in options:
        raise Invalid(f"{name} must be one of {', '.join(sorted(options))}", field=name)
    return value


def cents(body: dict[str, Any], name: str, *, low: int = 0, high: int = 10_000_000,
          required: bool = True) -> int | None:
    """An integer number of cents; floats, strings and booleans are refused so no money is ever rounded."""
    value = body.get(name)
    if value is None:
        if required:
            raise Invalid(f"{name} is required", field=name)
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(f"{name} must be an integer number of cents", field=name)
    if not low <= value <= high:
        raise Invalid(f"{name} must be between {low} and {high}", field=name)
    return value


def integer(body: dict[str, Any], name: str, *, options: Collection[int] | None = None,
            low: int | None = None, high: int | None = None) -> int:
    value = body.get(name)
    if value is None:
        raise Invalid(f"{name} is required", field=name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(f"{name} must be an integer", field=name)
    if options is not None and value not in options:
        raise Invalid(f"{name} must be one of {', '.join(map(str, sorted(options)))}", field=name)
    if (low is not None and value < low) or (high is not None and value > high):
        raise Invalid(f"{name} is out of range", field=name)
    return value


def uuid_value(raw: Any, name: str) -> str:
    """A canonical UUID string, or a 422 (body fields) naming the field."""
    if not isinstance(raw, str):
        raise Invalid(f"{name} must be a UUID string", field=name)
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise Invalid(f"{name} must be a UUID", field=name) from None


def path_uuid(request: web.Request, name: str) -> str:
    """A UUID from the URL path; anything else is simply not found."""
    from api.errors import NotFound

    try:
        return str(uuid.UUID(request.match_info[name]))
    except (KeyError, ValueError):
        raise NotFound(f"no such {name}") from None


# The most common passwords of at least 8 characters (breach-corpus top lists); refused outright.
_COMMON_PASSWORDS = frozenset({
    "password", "password1", "password12", "password123", "12345678", "123456789", "1234567890", "87654321",
    "qwertyui", "qwertyuiop", "qwerty123", "1q2w3e4r", "1qaz2wsx", "abcd1234", "abcdefgh", "iloveyou",
    "sunshine", "princess", "football", "baseball", "welcome1", "trustno1", "superman", "letmein1",
    "passw0rd", "zaq12wsx", "asdfghjk", "asdfasdf", "qwertyqwerty", "00000000", "11111111", "12341234",
})
MIN_PASSWORD_CHARS = 8
MIN_DISTINCT_PASSWORD_CHARS = 4


def password(body: dict[str, Any], name: str = "password", *, email: str | None = None) -> str:
    """A new password: 8 to 200 characters kept as typed, and not trivially guessable (whitespace only, fewer
    than 4 different characters, one of the most common passwords, or the account's email)."""
    value = text(body, name, min_len=MIN_PASSWORD_CHARS, max_len=200, strip=False)
    if not value.strip():
        raise Invalid(f"{name} must not be only spaces", field=name)
    if len(set(value)) < MIN_DISTINCT_PASSWORD_CHARS:
        raise Invalid(f"{name} needs at least {MIN_DISTINCT_PASSWORD_CHARS} different characters", field=name)
    if value.lower() in _COMMON_PASSWORDS or (email is not None and value.lower() == email.lower()):
        raise Invalid(f"{name} is too easy to guess; choose another", field=name)
    return value
