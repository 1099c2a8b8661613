"""The client confirms every price it pays (docs/design.md, money rules).

Every paid request (a per-minute reading, a booking, a paid message, a gift) carries ``expectedCents``: the
price the client was shown (for a per-minute reading its rate per minute, otherwise the flat price). The price
is read again in the same database transaction that charges it, and :func:`confirm_price` refuses the request
when the two differ, so nobody is ever charged a price they did not see (a reader who raises a price between a
page load and a click gets the click refused, not paid).
"""

from __future__ import annotations

from billing.errors import PriceChanged


def dollars(cents: int) -> str:
    """``1234`` -> ``$12.34``: how a price is said to a person (integer arithmetic only, never a float)."""
    sign = "-" if cents < 0 else ""
    cents = abs(int(cents))
    return f"{sign}${cents // 100:,}.{cents % 100:02d}"


def confirm_price(expected_cents: int, price_cents: int, *, what: str, per: str = "") -> None:
    """Raise :class:`PriceChanged` unless ``expected_cents`` (what the client saw) is the price now.

    ``what`` names the thing bought for the message ("a chat reading with Luna"), ``per`` its unit ("/min").
    """
    if expected_cents != price_cents:
        raise PriceChanged(
            f"{what} now costs {dollars(price_cents)}{per}, not the {dollars(expected_cents)}{per} you were shown;"
            " nothing was charged. Check the new price and confirm it to continue",
            expected_cents=expected_cents, price_cents=price_cents)
