"""Accounts by e-mail: verifying the address, resetting a forgotten password, changing the address or the
password, and deleting the account (personal data erased, the ledger kept with the account anonymised).

Every link is signed, single-use and expiring (:mod:`api.accounts.email_links`); every mail goes through the
outbox in the transaction of its token (:mod:`api.core.mail`). A password-reset request answers the same
whether or not the address has an account, so it tells nobody which addresses are registered.
"""

from __future__ import annotations

import logging

import asyncpg
from aiohttp import web

from api.accounts.auth import LOGOUT_LISTENERS, authenticate, require
from api.accounts.email_links import LinkKey, issue, redeem
from api.accounts.keys import PASSWORDS
from api.cluster import CLUSTER
from api.cluster.limits import SharedUserAndAddressLimiter
from api.core import mail
from api.core import validation as v
from api.core.client_address import client_address
from api.core.errors import Conflict, Forbidden, TooManyRequests
from api.core.keys import DATABASE, SETTINGS
from api.core.openapi import operation

log = logging.getLogger(__name__)

LINKS = web.AppKey("email_links", LinkKey)
MAIL_LIMITER = web.AppKey("mail_limiter", SharedUserAndAddressLimiter)
# Mails one account (or address) may ask for in an hour: resets, resent verifications, address changes.
MAILS_PER_HOUR = 5


async def _limit(request: web.Request, who: str) -> None:
    wait = await request.app[MAIL_LIMITER].hit(who, client_address(request))
    if wait > 0:
        raise TooManyRequests("too many e-mails asked for; try again later",
                              headers={"Retry-After": str(int(wait) + 1)})


def _url(request: web.Request, path: str, token: str) -> str:
    return f"{request.app[SETTINGS].public_url}{path}?token={token}"


async def send_verification(request: web.Request, conn: asyncpg.Connection, user_id: str, email: str) -> None:
    """The verification link for ``email``, queued in the caller's transaction."""
    key = await request.app[LINKS].get(request.app)
    token = await issue(conn, key, user_id, "verify", email)
    await mail.enqueue_to_user(conn, user_id, "Confirm your e-mail address for SoulSeer",
                               f"Please confirm this address by opening:\n\n{_url(request, '/verify-email', token)}"
                               "\n\nThe link works once, for 7 days.")


def _sent(request: web.Request) -> None:
    request.app[mail.MAIL].wake()


async def _revoke_logins(request: web.Request, conn: asyncpg.Connection, user_id: str, *,
                         keep: str | None = None) -> None:
    revoked = await conn.fetch(
        "UPDATE auth_sessions SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL"
        " AND ($2::uuid IS NULL OR id <> $2) RETURNING id::text", user_id, keep)
    for row in revoked:
        for listener in request.app.get(LOGOUT_LISTENERS, []):
            listener(user_id, row["id"])


@operation(summary="Mail a new verification link to the signed-in user's address", roles=(), status=202,
           response="{sent}")
async def resend_verification(request: web.Request) -> web.Response:
    user = await require(request)
    await _limit(request, user.id)
    async with request.app[DATABASE].pool.acquire() as conn, conn.transaction():
        verified = await conn.fetchval("SELECT email_verified_at IS NOT NULL FROM users WHERE id = $1", user.id)
        if verified:
            raise Conflict("your address is verified already", code="already_verified")
        await send_verification(request, conn, user.id, user.email)
    _sent(request)
    return web.json_response({"sent": True}, status=202)


@operation(summary="Verify an address with the mailed link's token (no login needed)", request="{token}",
           response="{verified: true, email}")
async def verify_email(request: web.Request) -> web.Response:
    body = await v.read_json(request)
    key = await request.app[LINKS].get(request.app)
    async with request.app[DATABASE].pool.acquire() as conn, conn.transaction():
        row = await redeem(conn, key, body.get("token"), "verify")
        status = await conn.execute(
            "UPDATE users SET email_verified_at = coalesce(email_verified_at, now()) WHERE id = $1"
            " AND lower(email) = lower($2) AND deleted_at IS NULL", row["user_id"], row["email"])
    if status != "UPDATE 1":
        raise Conflict("this link was for an address the account no longer has", code="email_changed")
    log.info("e-mail verified", extra={"userId": row["user_id"]})
    return web.json_response({"verified": True, "email": row["email"]})


@operation(summary="Mail a password-reset link (the same answer whether or not the address has an account)",
           request="{email}", response="{sent: true}", status=202)
async def request_reset(request: web.Request) -> web.Response:
    body = await v.read_json(request)
    email = v.email(body)
    await _limit(request, f"reset:{email}")
    pool = request.app[DATABASE].pool
    async with pool.acquire() as conn, conn.transaction():
        user = await conn.fetchrow("SELECT id::text, email FROM users WHERE lower(email) = $1 AND deleted_at IS NULL"
                                   " AND suspended_at IS NULL", email)
        if user is not None:
            key = await request.app[LINKS].get(request.app)
            token = await issue(conn, key, user["id"], "reset", user["email"])
            await mail.enqueue_to_user(
                conn, user["id"], "Reset your SoulSeer password",
                f"Someone (we hope you) asked to reset your password. Choose a new one here:\n\n"
                f"{_url(request, '/reset-password', token)}\n\nThe link works once, for an hour. If you did not"
                " ask, ignore this mail: your password stays as it is.")
            log.info("password reset mailed", extra={"userId": user["id"], "address": client_address(request)})
    _sent(request)
    return web.json_response({"sent": True}, status=202)


@operation(summary="Set a new password with the reset link's token; every login of the account ends",
           request="{token, password}", response="{reset: true}")
async def confirm_reset(request: web.Request) -> web.Response:
    body = await v.read_json(request)
    password = v.password(body)
    password_hash = await request.app[PASSWORDS].hash(password)
    key = await request.app[LINKS].get(request.app)
    async with request.app[DATABASE].pool.acquire() as conn, conn.transaction():
        row = await redeem(conn, key, body.get("token"), "reset")
        await conn.execute("UPDATE users SET password_hash = $2, email_verified_at = coalesce(email_verified_at,"
                           " now()) WHERE id = $1 AND deleted_at IS NULL", row["user_id"], password_hash)
        await _revoke_logins(request, conn, row["user_id"])
        await mail.enqueue_to_user(conn, row["user_id"], "Your SoulSeer password was changed",
                                   "Your password was reset and every device was signed out. If this was not you,"
                                   " reset it again at once and contact support.")
    _sent(request)
    log.info("password reset", extra={"userId": row["user_id"]})
    return web.json_response({"reset": True})


async def _check_password(request: web.Request, user_id: str, password: object) -> None:
    stored = await request.app[DATABASE].pool.fetchval("SELECT password_hash FROM users WHERE id = $1", user_id)
    if not isinstance(password, str) or not await request.app[PASSWORDS].verify(stored, password[:200]):
        raise Forbidden("your current password is not right", code="wrong_password", field="currentPassword")


@operation(summary="Change the password (the current one needed); the account's other logins end",
           roles=(), request="{currentPassword, newPassword}", response="{changed: true}")
async def change_password(request: web.Request) -> web.Response:
    user = await require(request)
    context = await authenticate(request)
    assert context is not None
    body = await v.read_json(request)
    new = v.password(body, "newPassword", email=user.email)
    await _check_password(request, user.id, body.get("currentPassword"))
    password_hash = await request.app[PASSWORDS].hash(new)
    async with request.app[DATABASE].pool.acquire() as conn, conn.transaction():
        await conn.execute("UPDATE users SET password_hash = $2 WHERE id = $1", user.id, password_hash)
        await _revoke_logins(request, conn, user.id, keep=context.login_id)
        await mail.enqueue_to_user(conn, user.id, "Your SoulSeer password was changed",
                                   "Your password was changed and your other devices were signed out.")
    _sent(request)
    return web.json_response({"changed": True})


@operation(summary="Change the e-mail address: a confirmation link goes to the new one (the password needed)",
           roles=(), request="{newEmail, currentPassword}", response="{sent: true}", status=202)
async def change_email(request: web.Request) -> web.Response:
    user = await require(request)
    body = await v.read_json(request)
    new = v.email(body, "newEmail")
    await _limit(request, user.id)
    await _check_password(request, user.id, body.get("currentPassword"))
    pool = request.app[DATABASE].pool
    async with pool.acquire() as conn, conn.transaction():
        if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM users WHERE lower(email) = $1)", new):
            raise Conflict("an account with this email already exists", code="email_taken", field="newEmail")
        key = await request.app[LINKS].get(request.app)
        token = await issue(conn, key, user.id, "change", new)
        await mail.enqueue(conn, new, "Confirm your new SoulSeer address",
                           f"Hello {user.display_name},\n\nTo make this your SoulSeer address, open:\n\n"
                           f"{_url(request, '/confirm-email', token)}\n\nThe link works once, for 24 hours.\n")
        await mail.enqueue_to_user(conn, user.id, "Your SoulSeer address is being changed",
                                   f"Someone signed in as you asked to change your address to {new}. Nothing"
                                   " changes until the link mailed there is opened. If this was not you, change"
                                   " your password.")
    _sent(request)
    return web.json_response({"sent": True}, status=202)


@operation(summary="Confirm a new address with the mailed link's token (no login needed)", request="{token}",
           response="{changed: true, email}")
async def confirm_email(request: web.Request) -> web.Response:
    body = await v.read_json(request)
    key = await request.app[LINKS].get(request.app)
    try:
        async with request.app[DATABASE].pool.acquire() as conn, conn.transaction():
            row = await redeem(conn, key, body.get("token"), "change")
            await conn.execute("UPDATE users SET email = $2, email_verified_at = now() WHERE id = $1"
                               " AND deleted_at IS NULL", row["user_id"], row["email"])
    except asyncpg.UniqueViolationError:
        raise Conflict("an account with this email already exists", code="email_taken") from None
    log.info("e-mail changed", extra={"userId": row["user_id"]})
    return web.json_response({"changed": True, "email": row["email"]})


# Personal data a deleted account leaves behind, erased in one transaction. The ledger, the readings and the
# account row (anonymised) stay: money records are kept, and readings are the other party's history too.
_ERASE = (
    "DELETE FROM auth_sessions WHERE user_id = $1",
    "DELETE FROM notifications WHERE user_id = $1",
    "DELETE FROM email_tokens WHERE user_id = $1",
    "DELETE FROM reader_profiles WHERE reader_id = $1",
    "DELETE FROM reader_weekly_hours WHERE reader_id = $1",
    "DELETE FROM reader_schedule_exceptions WHERE reader_id = $1",
    "DELETE FROM reader_schedules WHERE reader_id = $1",
    "DELETE FROM reader_slots WHERE reader_id = $1 AND session_id IS NULL",
    "UPDATE reader_availability SET status = 'offline', chosen_status = 'offline' WHERE reader_id = $1",
    "UPDATE reader_rates SET chat_cents = 0, audio_cents = 0, video_cents = 0, flat_15_cents = 0, flat_30_cents = 0,"
    " flat_45_cents = 0, flat_60_cents = 0, message_cents = 0 WHERE reader_id = $1",
    "DELETE FROM reader_photos WHERE reader_id = $1",
    "DELETE FROM favourites WHERE client_id = $1 OR reader_id = $1",
    "DELETE FROM online_watches WHERE client_id = $1 OR reader_id = $1",
    "DELETE FROM online_alerts WHERE client_id = $1 OR reader_id = $1",
    "DELETE FROM reader_online_events WHERE reader_id = $1",
    # A review's stars stay (the reading happened and was paid); the words a person wrote go.
    "UPDATE reviews SET body = '' WHERE client_id = $1",
    "UPDATE reviews SET reply = NULL, replied_at = NULL WHERE reader_id = $1",
    "UPDATE messages SET body = '[deleted]' WHERE sender_id = $1",
    "UPDATE reading_messages SET body = '[deleted]' WHERE sender_id = $1",
    "DELETE FROM mail_outbox WHERE sent_at IS NULL AND lower(to_address) = (SELECT lower(email) FROM users"
    " WHERE id = $1)",
    "UPDATE users SET email = 'deleted-' || id::text || '@deleted.invalid', display_name = 'Deleted user',"
    " password_hash = '!', email_verified_at = NULL, deleted_at = now() WHERE id = $1",
)


@operation(summary="Delete the account: personal data erased, the ledger kept with the account anonymised",
           roles=("client", "reader"), request="{currentPassword}", response="{deleted: true}")
async def delete_account(request: web.Request) -> web.Response:
    user = await require(request, "client", "reader")
    body = await v.read_json(request)
    await _check_password(request, user.id, body.get("currentPassword"))
    async with request.app[DATABASE].pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", user.id)
        if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM rtc_sessions WHERE (client_id = $1 OR reader_id = $1)"
                               " AND status IN ('requested', 'accepted', 'active'))", user.id):
            raise Conflict("you have a reading requested, booked or under way; cancel or finish it first",
                           code="reading_open")
        balance = await conn.fetchval("SELECT balance_cents FROM client_balances WHERE client_id = $1 FOR UPDATE",
                                      user.id)
        if balance:
            raise Conflict("your wallet still holds money; withdraw it first", code="balance_not_empty")
        email = user.email
        await _revoke_logins(request, conn, user.id)
        for statement in _ERASE:
            await conn.execute(statement, user.id)
        await mail.enqueue(conn, email, "Your SoulSeer account was deleted",
                           "Your account and its personal data were deleted. Records of payments are kept, without"
                           " your name or address, as the law requires.\n\n-- SoulSeer\n")
    _sent(request)
    log.info("account deleted", extra={"userId": user.id})
    response = web.json_response({"deleted": True})
    response.del_cookie("soulseer_session", path="/")
    return response


def setup(app: web.Application) -> None:
    app[LINKS] = LinkKey()
    app[MAIL_LIMITER] = SharedUserAndAddressLimiter("mails", MAILS_PER_HOUR, 4 * MAILS_PER_HOUR, 3600.0,
                                                    node=app.get(CLUSTER))
    app.router.add_post("/api/auth/verify-email", verify_email)
    app.router.add_post("/api/auth/password-reset", request_reset)
    app.router.add_post("/api/auth/password-reset/confirm", confirm_reset)
    app.router.add_post("/api/auth/confirm-email", confirm_email)
    app.router.add_post("/api/account/verification", resend_verification)
    app.router.add_post("/api/account/password", change_password)
    app.router.add_post("/api/account/email", change_email)
    app.router.add_post("/api/account/delete", delete_account)
