"""Reading request bodies: JSON objects whose fields are checked one by one, each error naming its field."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Collection
from typing import Any, overload

from aiohttp import web

from api.core.errors import BadRequest, Invalid, NotFound, PayloadTooLarge

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")


# Request bodies and signaling messages are flat objects (two levels at most today); a deeper document is
# refused before anything walks it, so no handler ever recurses on what a client nests.
MAX_JSON_DEPTH = 16
# Query-string integers are ids, cursors and page sizes: PostgreSQL bigint at most.
MAX_QUERY_INT = 2**63 - 1
_QUERY_INT = re.compile(r"^[+-]?[0-9]{1,19}$")


def parse_json(raw: bytes | str, *, what: str = "request body") -> Any:
    """Decode JSON that a client sent, refusing what no handler should ever see.

    400 (``malformed_json``) for what is not JSON (numbers too long for Python's int conversion too),
    400 (``too_deep``) for nesting beyond :data:`MAX_JSON_DEPTH`, and 422 (``invalid``, naming the field)
    for a string or key holding a lone surrogate (``"\\ud800"``: valid JSON, but no UTF-8 for it, so the
    database and every encoder would fail on it) or a NUL character (PostgreSQL text cannot hold one).
    """
    try:
        value = json.loads(raw)
    except RecursionError:
        raise BadRequest(f"{what} is nested too deeply (limit {MAX_JSON_DEPTH})", code="too_deep") from None
    except ValueError:  # JSONDecodeError, undecodable bytes, an integer of more than 4300 digits
        raise BadRequest(f"{what} is not valid JSON", code="malformed_json") from None
    check_tree(value, what=what)
    return value


def check_tree(value: Any, *, what: str = "request body") -> None:
    """Walk decoded JSON without recursion: the depth limit, and every string and key well-formed."""
    stack: list[tuple[Any, str, int]] = [(value, "", 1)]
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, str):
            _check_string(node, path or what)
        elif isinstance(node, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise BadRequest(f"{what} is nested too deeply (limit {MAX_JSON_DEPTH})", code="too_deep")
            if isinstance(node, dict):
                for key, item in node.items():
                    name = f"{path}.{_printable(key)}" if path else _printable(key)
                    _check_string(key, name)
                    stack.append((item, name, depth + 1))
            else:
                stack.extend((item, f"{path or what}[{i}]", depth + 1) for i, item in enumerate(node))


def _printable(key: str) -> str:
    """A key as it can be named in an error message (a lone surrogate escaped)."""
    return key.encode("utf-8", "backslashreplace").decode("utf-8")[:64]


def _check_string(value: str, field: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise Invalid(f"{field} is not valid Unicode (a lone surrogate)", field=field) from None
    if "\x00" in value:
        raise Invalid(f"{field} must not contain NUL characters", field=field)


async def read_json(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object, or a 4xx that says what is wrong with it (see :func:`parse_json`)."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge("request body is too large") from None
    if not raw:
        raise BadRequest("request body must be a JSON object", code="malformed_json")
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object", code="malformed_json")
    return body


@overload
def query_int(request: web.Request, name: str, *, default: int, low: int = 0, high: int = MAX_QUERY_INT) -> int: ...
@overload
def query_int(request: web.Request, name: str, *, default: None = None, low: int = 0,
              high: int = MAX_QUERY_INT) -> int | None: ...
def query_int(request: web.Request, name: str, *, default: int | None = None, low: int = 0,
              high: int = MAX_QUERY_INT) -> int | None:
    """An integer query parameter within [low, high] (``default`` when absent), or a 422 naming it.

    Only plain ASCII digits are taken (``int()`` would also read "1_000" and other scripts' digits), and
    never more than fit a PostgreSQL bigint, so no cursor can overflow a query.
    """
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not _QUERY_INT.match(raw):
        raise Invalid(f"{name} must be an integer", field=name)
    value = int(raw)
    if not low <= value <= high:
        raise Invalid(f"{name} must be between {low} and {high}", field=name)
    return value


_DOLLARS = re.compile(r"^\$?\s*([0-9]{1,3}(?:,[0-9]{3}){1,2}|[0-9]{1,9})(?:\.([0-9]{1,2}))?$")


def dollars(raw: str) -> int | None:
    """A form's amount in dollars ("12", "12.5", "$12.50") as integer cents; None unless it is one. Only plain
    ASCII digits, at most two decimals and nine integer digits: no float ever touches the amount."""
    match = _DOLLARS.match(raw.strip())
    if match is None:
        return None
    whole, part = match.groups()
    return int(whole.replace(",", "")) * 100 + int((part or "0").ljust(2, "0"))


def query_text(request: web.Request, name: str, *, max_len: int = 100) -> str:
    """A free-text query parameter (a search box), cut to ``max_len``; "" when absent. A NUL is refused
    here rather than left to PostgreSQL, whose text cannot hold one (it failed the search as a 500)."""
    value = request.query.get(name, "")[:max_len]
    if "\x00" in value:
        raise Invalid(f"{name} must not contain NUL characters", field=name)
    return value


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


def canonical_uuid(raw: Any) -> str | None:
    """``raw`` as a canonical UUID string, or None if it is not one (for signaling, which answers in its own words)."""
    if not isinstance(raw, str) or len(raw) > 64:
        return None
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        return None


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
