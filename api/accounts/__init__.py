"""Accounts: who a user is and what they hold. Registration and login (sessions by cookie or bearer, CSRF,
roles), passwords, the login throttle, reader profiles, reader rates and availability, the wallet and the
Stripe webhooks that fill it.

The accounts routes: the mail outbox's worker, login, e-mail verification, password reset, address and password
changes and deletion, rates and availability, the wallet, Stripe webhooks, profiles.
"""

from api.accounts import email_routes, login, profiles, readers, stripe_webhooks, wallet
from api.core import mail
from api.core.setup import Setup

__all__ = ["setup"]

setup = Setup(mail, login, email_routes, readers, wallet, stripe_webhooks, profiles)
