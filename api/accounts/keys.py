"""Typed keys for the accounts feature's objects on the application (set up by :mod:`api.accounts.login`)."""

from __future__ import annotations

from aiohttp import web

from api.accounts.login_throttle import LoginThrottle
from api.accounts.passwords import PasswordWork
from api.cluster.limits import SharedRateLimiter

LOGIN_THROTTLE = web.AppKey("login_throttle", LoginThrottle)
REGISTRATION_LIMITER = web.AppKey("registration_limiter", SharedRateLimiter)
PASSWORDS = web.AppKey("passwords", PasswordWork)
