"""Login throttling slows guessing down and cannot be used to lock the owner out of their own account."""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import replace

from aiohttp.test_utils import TestClient

from api.accounts.login_throttle import LoginThrottle
from config import Settings
from tests.api.helpers import PASSWORD, register
from tests.reading_steps import running_app


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _fail(throttle: LoginThrottle, email: str, address: str, *, familiar: bool = False) -> float:
    wait = await throttle.begin(email, address, familiar=familiar)
    if wait == 0:
        await throttle.finish(email, address, familiar=familiar, succeeded=False)
    return wait


async def test_failures_of_one_account_at_one_address_back_off_doubling_up_to_the_cap() -> None:
    clock = Clock()
    throttle = LoginThrottle(per_minute=1000, backoff_after=3, max_backoff=8, clock=clock)
    assert [await _fail(throttle, "a@x", "1.1.1.1") for _ in range(3)] == [0, 0, 0]
    waits = []
    for _ in range(6):
        wait = await throttle.begin("a@x", "1.1.1.1", familiar=False)
        assert wait > 0
        waits.append(wait)
        clock.now += wait
        assert await _fail(throttle, "a@x", "1.1.1.1") == 0
    assert waits == [1, 2, 4, 8, 8, 8]
    assert await _fail(throttle, "a@x", "2.2.2.2") == 0, "another address has its own backoff"
    clock.now += 8
    assert await throttle.begin("a@x", "1.1.1.1", familiar=False) == 0
    await throttle.finish("a@x", "1.1.1.1", familiar=False, succeeded=True)
    assert [await _fail(throttle, "a@x", "1.1.1.1") for _ in range(3)] == [0, 0, 0], "a success starts afresh"


async def test_concurrent_attempts_count_before_their_passwords_are_checked() -> None:
    throttle = LoginThrottle(per_minute=1000, backoff_after=3, max_backoff=60, clock=Clock())
    started = [await throttle.begin("a@x", "1.1.1.1", familiar=True) for _ in range(10)]
    assert started[:3] == [0, 0, 0] and all(w > 0 for w in started[3:])


async def test_an_attempt_never_checked_counts_neither_way() -> None:
    throttle = LoginThrottle(per_minute=1, backoff_after=1, max_backoff=60, clock=Clock())
    for _ in range(3):
        assert await throttle.begin("a@x", "1.1.1.1", familiar=False) == 0
        await throttle.cancel("a@x", "1.1.1.1", familiar=False)
    assert await _fail(throttle, "a@x", "1.1.1.1") == 0


async def test_unfamiliar_failures_never_stop_a_login_from_a_familiar_address() -> None:
    throttle = LoginThrottle(per_minute=5, backoff_after=100, max_backoff=60, clock=Clock())
    for n in range(20):
        await _fail(throttle, f"nobody-{n}@x", "1.1.1.1")  # nonexistent emails, from the owner's address
        await _fail(throttle, "owner@x", f"6.6.6.{n}")  # the owner's email, from elsewhere
    assert await throttle.begin("stranger@x", "1.1.1.1", familiar=False) > 0, "the address's unfamiliar bucket is full"
    assert await throttle.begin("owner@x", "9.9.9.9", familiar=False) > 0, "so is the account's"
    assert await throttle.begin("owner@x", "1.1.1.1", familiar=True) == 0


def _trusting_localhost(settings: Settings) -> Settings:
    return replace(settings, trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),))


async def _login(http: TestClient, email: str, password: str, address: str) -> int:
    resp = await http.post("/api/auth/login", json={"email": email, "password": password},
                           headers={"X-Forwarded-For": address})
    return resp.status


async def test_failed_logins_for_nonexistent_emails_do_not_lock_out_a_correct_login(settings: Settings) -> None:
    async with running_app(_trusting_localhost(settings)) as http:
        user = await register(http)
        assert await _login(http, user["email"], PASSWORD, "198.51.100.7") == 200
        for n in range(3 * settings.login_attempts_per_minute):
            await _login(http, f"nobody-{n}@example.test", "wrong-password", "198.51.100.7")
        assert await _login(http, user["email"], PASSWORD, "198.51.100.7") == 200


async def test_nobody_elsewhere_can_lock_the_owner_out_of_their_account(settings: Settings) -> None:
    async with running_app(_trusting_localhost(settings)) as http:
        user = await register(http)
        assert await _login(http, user["email"], PASSWORD, "198.51.100.7") == 200
        statuses = [await _login(http, user["email"], f"guess-{n}", f"203.0.113.{n % 3}") for n in range(30)]
        assert 429 in statuses, "the guesses were slowed down"
        assert await _login(http, user["email"], PASSWORD, "198.51.100.7") == 200


async def test_a_burst_of_concurrent_guesses_checks_only_the_free_attempts(settings: Settings) -> None:
    async with running_app(settings) as http:
        user = await register(http)
        statuses = await asyncio.gather(*(_login(http, user["email"], f"guess-{n}", "ignored") for n in range(12)))
        assert statuses.count(401) == settings.login_backoff_after
        assert statuses.count(429) == 12 - settings.login_backoff_after


async def test_x_forwarded_for_from_an_untrusted_peer_does_not_escape_the_throttle(settings: Settings) -> None:
    async with running_app(settings) as http:  # no SOULSEER_TRUSTED_PROXIES: the header is anyone's to write
        user = await register(http)
        statuses = [await _login(http, user["email"], f"guess-{n}", f"203.0.113.{n}") for n in range(8)]
        assert statuses[:5] == [401] * 5 and 429 in statuses[5:]
