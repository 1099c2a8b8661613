"""Paying for a gift from the catalogue, on a live stream (:mod:`api.streams.gift_sending`) or as a tip after a
reading (:mod:`api.marketplace.tips`): what the request carries, and the one ledger charge (kind ``gift``: 70%
reader, 30% platform) at the price the client confirmed, in the caller's transaction.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
from aiohttp import web

from api.core import validation as v
from api.core.errors import Conflict, Invalid, PaymentRequired
from billing import ledger
from billing.errors import InsufficientFunds
from billing.prices import confirm_price, dollars

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


@dataclass(frozen=True)
class GiftRequest:
    """A client's request to pay for a gift: which, the price they were shown, and the id that makes a retry the
    same payment."""

    gift_id: str
    expected_cents: int
    request_id: str


async def read_gift_request(request: web.Request) -> GiftRequest:
    """``{giftId, expectedCents, requestId}`` from the request's JSON body."""
    body = await v.read_json(request)
    gift_id = v.uuid_value(body.get("giftId"), "giftId")
    expected = v.cents(body, "expectedCents")
    assert expected is not None
    request_id = v.text(body, "requestId", max_len=64)
    if not _REQUEST_ID.match(request_id):
        raise Invalid("requestId must be 1 to 64 letters, digits or . _ : -", field="requestId")
    return GiftRequest(gift_id, expected, request_id)


def check_replay(first: asyncpg.Record, wanted: GiftRequest, *, place: str, place_id: str, what: str) -> None:
    """A retry (a ``requestId`` already paid, ``first``) must ask for the same gift in the same ``place`` (the row's
    column naming the stream or the reading); another request under the same id is refused."""
    if str(first[place]) != place_id or str(first["gift_id"]) != wanted.gift_id:
        raise Conflict(f"this requestId was already used for a different {what}", code="request_id_reused",
                       field="requestId")


@dataclass(frozen=True)
class GiftCharge:
    """A gift paid for: its name and price now, and the ledger transaction (a replay's when the key was used)."""

    name: str
    price_cents: int
    txn: ledger.Txn


async def charge_gift(conn: asyncpg.Connection, wanted: GiftRequest, *, client_id: str, reader_id: str, key: str,
                      ref: str, memo: Callable[[str], str]) -> GiftCharge:
    """Charge the client for the gift at its price now, refused unless that is the price they confirmed.

    :param key: the ledger idempotency key; ``memo`` makes the ledger memo of the gift's name.
    """
    gift = await conn.fetchrow("SELECT name, price_cents FROM gifts WHERE id = $1 AND active", wanted.gift_id)
    if gift is None:
        raise Invalid("no such gift in the catalogue", code="gift_not_found", field="giftId")
    name, price = gift["name"], gift["price_cents"]
    confirm_price(wanted.expected_cents, price, what=f"The gift {name}")
    try:
        txn = await ledger.charge(conn, client_id=client_id, reader_id=reader_id, cents=price, key=key, kind="gift",
                                  ref=ref, memo=memo(name))
    except InsufficientFunds:
        raise PaymentRequired(f"your balance does not cover {name} ({dollars(price)})") from None
    return GiftCharge(name, price, txn)
