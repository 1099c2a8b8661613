"""The home page's reader search with 10,000 readers and 1,000,000 reviews, on the embedded PostgreSQL.

Seeds a scratch database (the embedded pgserver in a temporary folder, or a scratch database on
``--database-url``'s server, dropped at the end): ``--readers`` readers (a tenth online, some busy) with
rates, specialties, languages and ratings, ``--clients`` clients, and ``--reviews`` ended readings each
with its review. The reviews are inserted with the rating trigger off and ``reader_ratings`` filled by one
aggregate afterwards (what the trigger would have written, a million times faster); then ANALYZE.

Then times each query the home page and the profile page run, ``--runs`` times each, and prints p50, p95
and p99 in milliseconds, and each one's p95 relative to the baseline measured in the same run: the home
query as it was before the search (``api.accounts.readers.reader_cards``: every reader, online first, no
ratings, no filters). The target is p95 < 50 ms for the home query (the default search: one statement for
the page of cards with the total, plus the count of readers online).

    python bench/search.py --help
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api.accounts.readers import reader_cards
from api.core.database import EmbeddedPostgres
from api.core.migrations import migrate
from api.marketplace import reviews, search
from api.marketplace.search import ReaderQuery
from bench.scratch import create_database, drop_database
from billing import slots

SPECIALTIES = ["Tarot", "Astrology", "Dream work", "Love & relationships", "Career", "Mediumship", "Numerology",
               "Crystals", "Reiki", "Angel cards", "Palmistry", "Runes", "Past lives", "Chakras", "Pets",
               "Grief", "Spirit guides", "Aura", "Oracle cards", "Meditation"]
LANGUAGES = ["English", "Español", "Français", "Deutsch", "Português", "Italiano"]
HOME_ONLINE = ("SELECT count(*) FROM reader_availability a JOIN users u ON u.id = a.reader_id"
               " WHERE a.status = 'online' AND u.role = 'reader' AND u.suspended_at IS NULL")


async def seed(conn: asyncpg.Connection, readers: int, clients: int, review_count: int) -> None:
    await migrate(conn)
    await conn.execute(
        "INSERT INTO users (email, password_hash, display_name, role, created_at)"
        " SELECT 'reader' || n || '@bench.test', 'x', 'Reader ' || n, 'reader', now() - n * interval '1 hour'"
        " FROM generate_series(1, $1) n", readers)
    await conn.execute(
        "INSERT INTO users (email, password_hash, display_name, role)"
        " SELECT 'client' || n || '@bench.test', 'x', 'Client ' || n, 'client' FROM generate_series(1, $1) n", clients)
    await conn.execute(
        "INSERT INTO reader_availability (reader_id, status, chosen_status)"
        " SELECT id, s, CASE WHEN s = 'busy' THEN 'online' ELSE s END FROM (SELECT id, CASE WHEN random() < 0.1 THEN"
        " 'online' WHEN random() < 0.03 THEN 'busy' ELSE 'offline' END AS s FROM users WHERE role = 'reader') r")
    await conn.execute(
        "INSERT INTO reader_rates (reader_id, chat_cents, audio_cents, video_cents, flat_30_cents, message_cents)"
        " SELECT id, 50 + (random() * 400)::int, CASE WHEN random() < 0.7 THEN 100 + (random() * 400)::int ELSE 0 END,"
        " CASE WHEN random() < 0.5 THEN 150 + (random() * 500)::int ELSE 0 END, 2000 + (random() * 6000)::int,"
        " (random() * 300)::int FROM users WHERE role = 'reader'")
    await conn.execute(
        "INSERT INTO reader_profiles (reader_id, bio, specialties, languages)"
        " SELECT id, 'Readings with care since ' || (1980 + (random() * 40)::int) || '.',"
        " ARRAY[($1::text[])[1 + floor(random() * 20)::int], ($1::text[])[1 + floor(random() * 20)::int]],"
        " ARRAY[($2::text[])[1 + floor(random() * 6)::int]] FROM users WHERE role = 'reader'", SPECIALTIES, LANGUAGES)
    # Each review needs its reading (one review per reading): ended readings, then their reviews.
    await conn.execute("ALTER TABLE reviews DISABLE TRIGGER reviews_rating")
    await conn.execute(
        "CREATE TEMP TABLE ids AS SELECT row_number() OVER () - 1 AS n, id FROM users WHERE role = $1", "reader")
    await conn.execute(
        "CREATE TEMP TABLE cids AS SELECT row_number() OVER () - 1 AS n, id FROM users WHERE role = $1", "client")
    chunk = 200_000
    for start in range(0, review_count, chunk):
        count = min(chunk, review_count - start)
        await conn.execute(
            "WITH s AS (INSERT INTO rtc_sessions (client_id, reader_id, session_type, status, rate_cents, requested_at,"
            " started_at, ended_at, charged_cents, billable_seconds)"
            " SELECT c.id, r.id, 'chat', 'ended', 199, t, t, t + interval '10 minutes', 1990, 600"
            " FROM (SELECT g, now() - (g % 700) * interval '1 day' - (g % 997) * interval '1 minute' AS t"
            "       FROM generate_series($1::bigint, $2::bigint) g) x"
            " JOIN ids r ON r.n = (x.g * 7919) % $3 JOIN cids c ON c.n = x.g % $4"
            " RETURNING id, client_id, reader_id, requested_at)"
            " INSERT INTO reviews (session_id, client_id, reader_id, stars, body, created_at)"
            " SELECT id, client_id, reader_id, 1 + (random() * 4)::int, 'A thoughtful reading.', requested_at FROM s",
            start, start + count - 1, readers, clients)
        print(f"  {start + count:,} reviews", file=sys.stderr)
    await conn.execute(
        "INSERT INTO reader_ratings (reader_id, reviews, stars_total) SELECT reader_id, count(*), sum(stars)"
        " FROM reviews WHERE hidden_at IS NULL GROUP BY reader_id")
    await conn.execute("ALTER TABLE reviews ENABLE TRIGGER reviews_rating")
    # Vacuumed as well as analyzed: otherwise autovacuum wakes up on the fresh million rows mid-measurement.
    await conn.execute("VACUUM ANALYZE")


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def timed(runs: int, calls: list[Callable[[], Awaitable[object]]]) -> list[list[float]]:
    """Each call ``runs`` times, round robin (so a burst of load on the shared machine hits them all alike)."""
    for call in calls * 5:  # warm the plan cache and the buffers
        await call()
    samples: list[list[float]] = [[] for _ in calls]
    for _ in range(runs):
        for call, mine in zip(calls, samples, strict=True):
            started = time.perf_counter()
            await call()
            mine.append((time.perf_counter() - started) * 1000)
    return samples


async def measure(pool: asyncpg.Pool, runs: int) -> None:
    hot_reader = str(await pool.fetchval("SELECT reader_id FROM reader_ratings ORDER BY reviews DESC LIMIT 1"))

    async def home(query: ReaderQuery) -> None:
        await search.search(pool, query)
        await pool.fetchval(HOME_ONLINE)

    async def profile() -> None:
        await search.one_card(pool, hot_reader)
        await reviews.page_of(pool, hot_reader)
        await slots.list_slots(pool, hot_reader, open_only=True, limit=24)

    cases: list[tuple[str, Callable[[], Awaitable[object]]]] = [
        ("baseline: the old home query (reader_cards)", lambda: reader_cards(pool, include_offline=True, limit=200)),
        ("home: default (online first, rating)", lambda: home(ReaderQuery())),
        ("home: online now, chat", lambda: home(ReaderQuery(online=True, reading_type="chat"))),
        ("home: specialty Tarot", lambda: home(ReaderQuery(specialty="tarot"))),
        ("home: $1-$3/min, by price", lambda: home(ReaderQuery(min_cents=100, max_cents=300, sort="price"))),
        ("home: 4+ stars, by rating", lambda: home(ReaderQuery(min_rating=4, sort="rating"))),
        ("home: newest, page 50", lambda: home(ReaderQuery(sort="newest", page=50))),
        ("home: specialties filter list (cached 60 s)", lambda: search.specialties_in_use(pool)),
        ("profile: card, reviews, slots (busiest reader)", profile),
    ]
    results = list(zip([name for name, _ in cases], await timed(runs, [call for _, call in cases]), strict=True))
    base = percentile(results[0][1], 0.95)
    print(f"\n{'query':<48} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'p95/base':>9}")
    for name, samples in results:
        p95 = percentile(samples, 0.95)
        print(f"{name:<48} {statistics.median(samples):8.2f} {p95:8.2f} {percentile(samples, 0.99):8.2f}"
              f" {p95 / base:9.2f}")
    default_p95 = percentile(results[1][1], 0.95)
    print(f"\nhome query p95 {default_p95:.2f} ms: {'meets' if default_p95 < 50 else 'MISSES'} the 50 ms target")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readers", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=2_000)
    parser.add_argument("--reviews", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=300, help="timed runs of each query")
    parser.add_argument("--database-url", help="a server to make a scratch database on (default: embedded pgserver)")
    args = parser.parse_args()
    embedded = None
    scratch = f"bench_search_{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="soulseer-bench-") as folder:
        if args.database_url:
            admin_url = args.database_url
        else:
            embedded = EmbeddedPostgres(Path(folder))
            admin_url = await embedded.start()
        url = await create_database(admin_url, scratch, migrated=False)  # seed() migrates it
        try:
            started = time.perf_counter()
            conn = await asyncpg.connect(url)
            try:
                await seed(conn, args.readers, args.clients, args.reviews)
            finally:
                await conn.close()
            print(f"seeded {args.readers:,} readers and {args.reviews:,} reviews in "
                  f"{time.perf_counter() - started:.0f} s", file=sys.stderr)
            pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
            try:
                await measure(pool, args.runs)
            finally:
                await pool.close()
        finally:
            await drop_database(admin_url, scratch)
            if embedded is not None:
                await embedded.stop()


if __name__ == "__main__":
    asyncio.run(main())
