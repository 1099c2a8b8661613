"""A reader's payouts: connect a Stripe account (Stripe-hosted onboarding), see what is payable, be paid on
demand, read the earnings statement (JSON and CSV), and the /earnings page. The rules are billing's."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from aiohttp import web

from api.accounts.auth import AuthContext, User, csrf_ok, require
from api.core.errors import BadRequest
from api.core.keys import BILLING_METRICS, DATABASE, SETTINGS, STRIPE
from api.core.openapi import operation
from api.pages.rendering import page_auth, render
from billing import connect, payouts, statements
from config import Settings

log = logging.getLogger(__name__)

STATEMENT_DAYS = 31


def hold(settings: Settings) -> timedelta:
    return timedelta(days=settings.payout_hold_days)


async def _summary(request: web.Request, user: User) -> dict:
    pool = request.app[DATABASE].pool
    settings = request.app[SETTINGS]
    account = await connect.get(pool, user.id)
    return {"account": account.as_json() if account else None,
            "payableCents": await payouts.payable(pool, user.id, hold=hold(settings), now=datetime.now(UTC)),
            **await statements.totals(pool, user.id), "holdDays": settings.payout_hold_days,
            "minimumCents": settings.payout_minimum_cents, "intervalDays": settings.payout_interval_days,
            "payouts": [p.as_json() for p in await payouts.history(pool, user.id, limit=20)]}


@operation(summary="The reader's payout account, payable earnings and payouts", roles=("reader",),
           response="{account, payableCents, earningsCents, inTransitCents, paidOutCents, holdDays, minimumCents,"
                    " intervalDays, payouts}", tags=("payouts",))
async def summary(request: web.Request) -> web.Response:
    user = await require(request, "reader")
    return web.json_response(await _summary(request, user))


async def _onboarding_url(request: web.Request, user: User) -> str:
    """The reader's connected account (created once) and a fresh Stripe-hosted onboarding link for it."""
    pool = request.app[DATABASE].pool
    gateway = request.app[STRIPE]
    account = await connect.get(pool, user.id)
    if account is None:
        account_id = await gateway.create_connect_account(reader_id=user.id, email=user.email,
                                                          display_name=user.display_name)
        account = await connect.record(pool, reader_id=user.id, stripe_account_id=account_id)
    base = request.app[SETTINGS].public_url
    return await gateway.create_account_link(account_id=account.stripe_account_id,
                                             refresh_url=f"{base}/earnings/connect/refresh",
                                             return_url=f"{base}/earnings/connect/return")


@operation(summary="Create (once) the reader's Stripe connected account and an onboarding link",
           roles=("reader",), response="{onboardingUrl}", tags=("payouts",))
async def connect_account(request: web.Request) -> web.Response:
    user = await require(request, "reader")
    return web.json_response({"onboardingUrl": await _onboarding_url(request, user)})


@operation(summary="Pay the reader's payable earnings now (at least SOULSEER_PAYOUT_MINIMUM_CENTS)",
           roles=("reader",), response="{payout}", status=201, tags=("payouts",))
async def payout_now(request: web.Request) -> web.Response:
    user = await require(request, "reader")
    payout = await _pay(request, user)
    return web.json_response({"payout": payout.as_json()}, status=201)


async def _pay(request: web.Request, user: User) -> payouts.Payout:
    settings = request.app[SETTINGS]
    pool = request.app[DATABASE].pool
    metrics = request.app[BILLING_METRICS]
    payout, txn = await payouts.start(pool, user.id, trigger="on_demand", hold=hold(settings),
                                      minimum_cents=settings.payout_minimum_cents, now=datetime.now(UTC))
    metrics.recorded(txn)
    payout, step = await payouts.send(pool, request.app[STRIPE], payout)
    metrics.recorded(step)
    return payout


def _period(request: web.Request) -> tuple[datetime, datetime]:
    """``?from=`` and ``?to=`` (ISO dates or times, UTC); the last 31 days by default."""
    def parse(name: str, default: datetime) -> datetime:
        raw = request.query.get(name)
        if not raw:
            return default
        try:
            value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise BadRequest(f"{name} must be an ISO-8601 date or time", code="invalid_field", field=name) from None
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    until = parse("to", datetime.now(UTC) + timedelta(seconds=1))
    since = parse("from", until - timedelta(days=STATEMENT_DAYS))
    if since >= until or until - since > timedelta(days=366):
        raise BadRequest("the period is from before to, and at most a year", code="invalid_field", field="from")
    return since, until


@operation(summary="The reader's earnings statement: one line per reading, gift or message", roles=("reader",),
           query={"from": "ISO-8601 start (default: 31 days ago)", "to": "ISO-8601 end (default: now)"},
           response="{lines: [{at, kind, ref, grossCents, refundedCents, earnedCents}], totals}", tags=("payouts",))
async def statement(request: web.Request) -> web.Response:
    user = await require(request, "reader")
    since, until = _period(request)
    pool = request.app[DATABASE].pool
    lines = await statements.lines(pool, user.id, since=since, until=until)
    totals = await statements.totals(pool, user.id)
    return web.json_response({"lines": [line.as_json() for line in lines], "totals": totals})


@operation(summary="The earnings statement as CSV", roles=("reader",), response="text/csv", tags=("payouts",))
async def statement_csv(request: web.Request) -> web.Response:
    user = await require(request, "reader")
    since, until = _period(request)
    lines = await statements.lines(request.app[DATABASE].pool, user.id, since=since, until=until)
    return web.Response(text=statements.to_csv(lines), content_type="text/csv", headers={
        "Content-Disposition": f'attachment; filename="soulseer-earnings-{since:%Y%m%d}-{until:%Y%m%d}.csv"',
        "Cache-Control": "no-store"})


# -- pages -------------------------------------------------------------------------------------------------

async def earnings_page(request: web.Request) -> web.Response:
    auth = await page_auth(request, "reader")
    since, until = _period(request)
    lines = await statements.lines(request.app[DATABASE].pool, auth.user.id, since=since, until=until)
    return await render(request, "earnings.html", auth, script="earnings", summary=await _summary(request, auth.user),
                        lines=lines, notice=request.query.get("notice", ""),
                        payouts_enabled=request.app[SETTINGS].stripe_secret_key is not None)


async def _form_write(request: web.Request) -> AuthContext:
    """A page form's write: the reader's cookie login and the CSRF token from the form."""
    auth = await page_auth(request, "reader")
    form = await request.post()
    token = form.get("csrf")
    if not csrf_ok(request, auth, token if isinstance(token, str) else None):
        raise web.HTTPForbidden(text="missing or wrong CSRF token")
    return auth


async def connect_form(request: web.Request) -> web.Response:
    """The form's post, without JavaScript or before it loaded: a page that goes on to Stripe's onboarding.

    Not a redirect: the pages' CSP (``form-action 'self'``, api/core/csp.py) also covers the redirects of a form's
    navigation, so a 303 to Stripe was blocked and the reader's click did nothing. A link (and a meta refresh) is
    an ordinary navigation.
    """
    auth = await _form_write(request)
    return await render(request, "earnings_connect.html", auth, script="earnings",
                        onboarding_url=await _onboarding_url(request, auth.user))


async def connect_refresh(request: web.Request) -> web.Response:
    """Stripe's link expired or was used: a fresh one (a GET Stripe redirects to; it creates no account)."""
    auth = await page_auth(request, "reader")
    if await connect.get(request.app[DATABASE].pool, auth.user.id) is None:
        raise web.HTTPSeeOther("/earnings")
    raise web.HTTPSeeOther(await _onboarding_url(request, auth.user))


async def connect_return(request: web.Request) -> web.Response:
    """Back from onboarding: ask Stripe for the account's status now, then show the earnings page."""
    auth = await page_auth(request, "reader")
    pool = request.app[DATABASE].pool
    account = await connect.get(pool, auth.user.id)
    if account is not None:
        status = await request.app[STRIPE].transfers_status(account.stripe_account_id)
        await connect.set_status(pool, account.stripe_account_id, transfers_status=status)
    raise web.HTTPSeeOther("/earnings?notice=connected")


async def payout_form(request: web.Request) -> web.Response:
    auth = await _form_write(request)
    await _pay(request, auth.user)
    raise web.HTTPSeeOther("/earnings?notice=paid")


def setup(app: web.Application) -> None:
    app.router.add_get("/api/payouts", summary)
    app.router.add_post("/api/payouts", payout_now)
    app.router.add_post("/api/payouts/account", connect_account)
    app.router.add_get("/api/earnings/statement", statement)
    app.router.add_get("/api/earnings/statement.csv", statement_csv)
    app.router.add_get("/earnings", earnings_page)
    app.router.add_post("/earnings/connect", connect_form)
    app.router.add_get("/earnings/connect/refresh", connect_refresh)
    app.router.add_get("/earnings/connect/return", connect_return)
    app.router.add_post("/earnings/payout", payout_form)
