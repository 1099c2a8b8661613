"""The marketplace: how a client chooses a reader and comes back to them. Reader profiles and photos, verified
reviews, favourites and online alerts, search, and tips after a reading (docs/marketplace.md)."""

from __future__ import annotations

from api.core.setup import Setup
from api.marketplace import favourites, online_alerts, photos, profile, reviews, search, tips

__all__ = ["setup"]

# search's /api/readers before profile's /api/readers/{readerId}; photos' page route before any /readers page.
setup = Setup(photos, search, reviews, profile, favourites, online_alerts, tips)
