"""The sliding-window limiter: a token counts once, a refund gives a place back, user and address both count."""

from __future__ import annotations

from api.core.ratelimit import RateLimiter, UserAndAddressLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_hits_with_one_token_count_once_within_the_window() -> None:
    clock = Clock()
    limiter = RateLimiter(2, 10.0, clock=clock)
    assert [limiter.hit("k", token="r1") for _ in range(5)] == [0.0] * 5
    assert limiter.hit("k", token="r2") == 0.0
    assert limiter.hit("k", token="r3") > 0
    assert limiter.hit("k", token="r1") == 0.0, "a retry of a counted request is still allowed"
    clock.now += 10.0
    assert limiter.hit("k", token="r3") == 0.0


def test_a_refund_gives_the_place_back() -> None:
    limiter = RateLimiter(1, 10.0, clock=Clock())
    assert limiter.hit("k") == 0.0
    limiter.refund("k")
    assert limiter.hit("k") == 0.0 and limiter.hit("k") > 0


def test_a_request_refused_for_its_address_does_not_use_up_the_users_place() -> None:
    limiter = UserAndAddressLimiter(2, 2, 10.0, clock=Clock())
    assert limiter.hit("ann", "1.1.1.1") == 0.0
    assert limiter.hit("bob", "1.1.1.1") == 0.0
    assert limiter.hit("ann", "1.1.1.1") > 0  # the address is full
    assert limiter.hit("ann", "2.2.2.2") == 0.0, "ann's second place was not taken by the refusal"
    assert limiter.hit("ann", "3.3.3.3") > 0
