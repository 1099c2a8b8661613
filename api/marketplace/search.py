"""Finding a reader: the home page's filters (specialty, reading type, price range, online now, rating), its
sorts (recommended, rating, price, newest) and pages, and ``GET /api/readers``, the same search over REST.

One statement per page of results, whatever the filters: the cards' rates, profile, photo version, rating and
the total come back together (no query per card). A card's rating is one row of ``reader_ratings``, kept in
step with the reviews by a trigger (migration 0010), never an aggregate over the reviews. bench/search.py
measures it with 10,000 readers and 1,000,000 reviews.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiohttp import web

from api.accounts.auth import require
from api.accounts.readers import rates_json
from api.core.errors import Invalid
from api.core.keys import DATABASE
from api.core.openapi import operation
from api.marketplace.photos import photo_url

READING_TYPES = ("chat", "audio", "video")
SORTS = ("recommended", "rating", "price", "newest")
PER_PAGE = 24
MAX_PAGE = 500
MAX_CENTS = 100_000

# Fixed SQL fragments, chosen by name: nothing a visitor sends is ever spliced into the statement.
_PRICE = {None: "least(nullif(r.chat_cents, 0), nullif(r.audio_cents, 0), nullif(r.video_cents, 0))",
          "chat": "nullif(r.chat_cents, 0)", "audio": "nullif(r.audio_cents, 0)", "video": "nullif(r.video_cents, 0)"}
_ORDER = {
    "recommended": "CASE a.status WHEN 'online' THEN 0 WHEN 'busy' THEN 1 ELSE 2 END,"
                   " rt.rating DESC NULLS LAST, rt.reviews DESC NULLS LAST, u.display_name, u.id",
    "rating": "rt.rating DESC NULLS LAST, rt.reviews DESC NULLS LAST, u.id",
    "price": "price_cents ASC NULLS LAST, u.id",
    "newest": "u.created_at DESC, u.id",
}


@dataclass(frozen=True)
class ReaderQuery:
    """What a client asked the home page for. Prices are per minute, in cents, for ``reading_type`` (for the
    cheapest kind the reader offers when no type is chosen)."""

    specialty: str | None = None
    reading_type: str | None = None
    min_cents: int | None = None
    max_cents: int | None = None
    online: bool = False
    min_rating: int | None = None
    sort: str = "recommended"
    page: int = 1
    per_page: int = PER_PAGE

    @property
    def filtered(self) -> bool:
        return self != ReaderQuery(sort=self.sort, page=self.page, per_page=self.per_page)

    def params(self, **change: Any) -> dict[str, str]:
        """This query as URL parameters (the defaults left out), with ``change`` applied: for links and pagers."""
        values = {"specialty": self.specialty, "type": self.reading_type, "minCents": self.min_cents,
                  "maxCents": self.max_cents, "online": "1" if self.online else None, "rating": self.min_rating,
                  "sort": None if self.sort == "recommended" else self.sort,
                  "page": None if self.page == 1 else self.page}
        values.update(change)
        if values.get("page") == 1:
            values["page"] = None
        return {k: str(v) for k, v in values.items() if v not in (None, "")}


def _int(query: Mapping[str, str], name: str, low: int, high: int) -> int | None:
    raw = query.get(name, "").strip()
    if not raw:
        return None
    if not raw.isascii() or not raw.isdigit():
        raise Invalid(f"{name} must be a whole number", field=name)
    value = int(raw)
    if not low <= value <= high:
        raise Invalid(f"{name} must be between {low} and {high}", field=name)
    return value


def parse(query: Mapping[str, str]) -> ReaderQuery:
    """A search from URL parameters (``specialty, type, minCents, maxCents, online, rating, sort, page``);
    a 422 naming the parameter when one is wrong."""
    specialty = " ".join(query.get("specialty", "").split())[:40] or None
    if specialty is not None and "\x00" in specialty:
        raise Invalid("specialty must not contain NUL characters", field="specialty")
    reading_type = query.get("type") or None
    if reading_type is not None and reading_type not in READING_TYPES:
        raise Invalid(f"type must be one of {', '.join(READING_TYPES)}", field="type")
    sort = query.get("sort") or "recommended"
    if sort not in SORTS:
        raise Invalid(f"sort must be one of {', '.join(SORTS)}", field="sort")
    min_cents = _int(query, "minCents", 0, MAX_CENTS)
    max_cents = _int(query, "maxCents", 0, MAX_CENTS)
    if min_cents is not None and max_cents is not None and min_cents > max_cents:
        raise Invalid("minCents must not be above maxCents", field="minCents")
    return ReaderQuery(specialty=specialty, reading_type=reading_type, min_cents=min_cents, max_cents=max_cents,
                       online=query.get("online", "").lower() in {"1", "true", "yes", "on"},
                       min_rating=_int(query, "rating", 1, 5), sort=sort, page=_int(query, "page", 1, MAX_PAGE) or 1)


_CARD_COLUMNS = """
u.id, u.display_name, u.created_at, a.status, r.chat_cents, r.audio_cents, r.video_cents, r.flat_15_cents,
r.flat_30_cents, r.flat_45_cents, r.flat_60_cents, r.message_cents, coalesce(p.bio, '') AS bio,
coalesce(p.specialties, '{}') AS specialties, coalesce(p.languages, '{}') AS languages, ph.version AS photo_version,
coalesce(rt.reviews, 0) AS reviews, rt.rating"""
_CARD_FROM = """
FROM users u JOIN reader_availability a ON a.reader_id = u.id JOIN reader_rates r ON r.reader_id = u.id
LEFT JOIN reader_profiles p ON p.reader_id = u.id LEFT JOIN reader_photos ph ON ph.reader_id = u.id
LEFT JOIN reader_ratings rt ON rt.reader_id = u.id"""


def statement(query: ReaderQuery) -> tuple[str, list[Any]]:
    """The one SQL statement for a page of results, and its arguments.

    Filtering, counting and sorting run over narrow rows (ids, status, rates, rating); only the page's readers
    are then joined with their profile and photo (a late lookup), so a wide bio never rides through the sort.
    """
    price = _PRICE[query.reading_type]
    where = ["u.role = 'reader'", "u.suspended_at IS NULL"]
    args: list[Any] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    profile_join = ""
    if query.specialty:
        profile_join = "JOIN reader_profiles p ON p.reader_id = u.id"
        where.append(f"lower_labels(p.specialties) @> ARRAY[lower({arg(query.specialty)})]")
    if query.reading_type:
        where.append(f"{price} IS NOT NULL")
    if query.min_cents is not None:
        where.append(f"{price} >= {arg(query.min_cents)}")
    if query.max_cents is not None:
        where.append(f"{price} <= {arg(query.max_cents)}")
    if query.online:
        where.append("a.status = 'online'")
    if query.min_rating is not None:
        where.append(f"rt.rating >= {arg(query.min_rating)}")
    limit, offset = arg(query.per_page), arg((query.page - 1) * query.per_page)
    order = _ORDER[query.sort].replace("price_cents", price)
    # The count is a window over every match; the sort under LIMIT is a top-N heap over narrow rows. The page's
    # positions are numbered from that sorted output (row_number over the ordered subquery keeps its order).
    found = (f"SELECT u.id AS found_id, {price} AS price_cents, count(*) OVER () AS total"  # noqa: S608
             " FROM users u JOIN reader_availability a ON a.reader_id = u.id JOIN reader_rates r ON r.reader_id = u.id"
             f" LEFT JOIN reader_ratings rt ON rt.reader_id = u.id {profile_join}"
             f" WHERE {' AND '.join(where)} ORDER BY {order} LIMIT {limit} OFFSET {offset}")
    sql = (f"SELECT {_CARD_COLUMNS}, f.price_cents, f.total"  # noqa: S608
           f" FROM (SELECT page.*, row_number() OVER () AS position FROM ({found}) AS page) AS f"
           f" JOIN users u ON u.id = f.found_id {_CARD_FROM.split('FROM users u', 1)[1]} ORDER BY f.position")
    return sql, args


def card(row: asyncpg.Record) -> dict[str, Any]:
    """A reader as a card shows them (and ``GET /api/readers`` returns them)."""
    reader_id = str(row["id"])
    return {"id": reader_id, "displayName": row["display_name"], "status": row["status"], "bio": row["bio"],
            "specialties": list(row["specialties"]), "languages": list(row["languages"]), "rates": rates_json(row),
            "photoUrl": photo_url(reader_id, row["photo_version"]),
            "rating": float(row["rating"]) if row["rating"] is not None else None, "reviewCount": row["reviews"],
            "profileUrl": f"/readers/{reader_id}"}


@dataclass(frozen=True)
class Results:
    readers: list[dict[str, Any]]
    total: int
    query: ReaderQuery

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.query.per_page))


async def search(db: asyncpg.Pool | asyncpg.Connection, query: ReaderQuery) -> Results:
    sql, args = statement(query)
    rows = await db.fetch(sql, *args)
    total = int(rows[0]["total"]) if rows else 0
    if not rows and query.page > 1:  # past the last page: say how many there are all the same
        total = int(await db.fetchval(*_count(query)) or 0)
    return Results(readers=[card(r) for r in rows], total=total, query=query)


def _count(query: ReaderQuery) -> list[Any]:
    sql, args = statement(ReaderQuery(**{**query.__dict__, "page": 1, "per_page": 1}))
    return [f"SELECT coalesce(max(total), 0) FROM ({sql}) AS found", *args]  # noqa: S608


async def one_card(db: asyncpg.Pool | asyncpg.Connection, reader_id: str) -> asyncpg.Record | None:
    """One reader's card row (the profile page's header), or None when there is no such reader."""
    return await db.fetchrow(  # type: ignore[no-any-return]
        f"SELECT {_CARD_COLUMNS} {_CARD_FROM} WHERE u.id = $1 AND u.role = 'reader'", reader_id)


async def cards_of(db: asyncpg.Pool | asyncpg.Connection, reader_ids: list[str]) -> list[dict[str, Any]]:
    """Several readers' cards in one statement, in the order given."""
    rows = await db.fetch(f"SELECT {_CARD_COLUMNS} {_CARD_FROM}"
                          " WHERE u.id = ANY($1::uuid[]) AND u.role = 'reader'", reader_ids)
    found = {str(r["id"]): card(r) for r in rows}
    return [found[i] for i in reader_ids if i in found]


async def specialties_in_use(db: asyncpg.Pool | asyncpg.Connection, limit: int = 40) -> list[str]:
    """The specialties readers list most, for the filter's suggestions."""
    rows = await db.fetch(
        "SELECT min(s) AS label FROM reader_profiles p, unnest(p.specialties) AS s"
        " GROUP BY lower(s) ORDER BY count(*) DESC, lower(s) LIMIT $1", limit)
    return [r["label"] for r in rows]


QUERY_DOC = {"specialty": "a specialty (any case)", "type": "chat, audio or video: offered, and the price's kind",
             "minCents": "lowest per-minute price", "maxCents": "highest per-minute price",
             "online": "1: online now only", "rating": "lowest average rating, 1..5",
             "sort": "recommended (online first), rating, price or newest", "page": f"1..{MAX_PAGE}"}


@operation(summary="Search readers: filters, sort and pages (what the home page shows)", roles=(),
           query=QUERY_DOC, response=f"{{readers: [{{id, displayName, status, bio, specialties, languages, rates, "
           f"photoUrl, rating, reviewCount, profileUrl}}], total, page, pages, perPage ({PER_PAGE})}}",
           tags=("readers",))
async def search_readers(request: web.Request) -> web.Response:
    await require(request)
    found = await search(request.app[DATABASE].pool, parse(request.query))
    return web.json_response({"readers": found.readers, "total": found.total, "page": found.query.page,
                              "pages": found.pages, "perPage": found.query.per_page})


def setup(app: web.Application) -> None:
    app.router.add_get("/api/readers", search_readers)
