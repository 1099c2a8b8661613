"""The ``soulseer`` console command: ``serve``, ``migrate``, ``create-admin`` and operator tools."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from aiohttp import web

from api.accounts.login import create_user
from api.accounts.passwords import hash_password
from api.app import create_app
from api.cli import credit, demo, ledger, supervisor
from api.cli.database import with_database
from api.core import logs, metrics_token
from api.core.database import Database
from api.core.errors import ApiError
from config import Settings, SettingsError, load_settings

log = logging.getLogger("soulseer")


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    try:
        count = supervisor.node_count(args.nodes)
    except ValueError as exc:
        print(f"soulseer: configuration error: {exc}", file=sys.stderr)
        return 2
    if count > 1:
        return supervisor.Supervisor(settings, count, demo=getattr(args, "demo", False)).run()
    settings = metrics_token.effective(settings)
    app = create_app(settings)
    if getattr(args, "demo", False):
        demo.install(app, announce=print)
    if settings.event_loop == "uvloop":
        try:
            import uvloop  # optional at run time: an extra (soulseer[uvloop])
        except ImportError:
            print("soulseer: SOULSEER_EVENT_LOOP=uvloop needs uvloop: pip install 'soulseer[uvloop]'", file=sys.stderr)
            return 2
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())  # run_app's loop is made by the policy
    log.info("starting", extra={"host": settings.host, "port": settings.port, "eventLoop": settings.event_loop,
                                "embeddedDatabase": settings.database_url is None})
    # run_app turns SIGINT/SIGTERM into a graceful shutdown that runs every clean-up (pool, embedded db).
    web.run_app(app, host=settings.host, port=settings.port, print=None, shutdown_timeout=10,
                reuse_port=settings.reuse_port or None)
    return 0


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    async def work(database: Database) -> int:
        print("database is up to date")
        return 0

    return asyncio.run(with_database(settings, work))


def _create_admin(settings: Settings, args: argparse.Namespace) -> int:

    password = os.environ.get("SOULSEER_ADMIN_PASSWORD") or getpass.getpass("Password for the admin: ")
    if len(password) < 12:
        print("error: an admin password needs at least 12 characters", file=sys.stderr)
        return 2

    async def work(database: Database) -> int:
        password_hash = await asyncio.to_thread(hash_password, password)
        async with database.pool.acquire() as conn:
            try:
                row = await create_user(conn, args.email.lower(), password_hash, args.display_name, "admin")
            except ApiError as exc:
                print(f"error: {exc.message}", file=sys.stderr)
                return 1
        print(f"admin {row['email']} created ({row['id']})")
        return 0

    return asyncio.run(with_database(settings, work))


Command = Callable[[Settings, argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="soulseer", description="Live, paid readings over WebRTC.")
    parser.add_argument("--data-dir", type=Path, help="embedded database folder (SOULSEER_DATA_DIR)")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the web server (and an embedded database without DATABASE_URL)")
    serve.add_argument("--host", help="listen address (SOULSEER_HOST)")
    serve.add_argument("--port", type=int, help="listen port (SOULSEER_PORT)")
    serve.add_argument("--demo", action="store_true",
                       help="create (idempotently) demo readers and a demo client with credit, and print their logins")
    serve.add_argument("--nodes", default="1", metavar="N|auto",
                       help="run N nodes on this machine sharing the port (auto: one per core); default 1")
    serve.set_defaults(run=_serve)

    sub.add_parser("migrate", help="apply database migrations (idempotent)").set_defaults(run=_migrate)

    admin = sub.add_parser("create-admin", help="create an admin account (password from "
                                                "SOULSEER_ADMIN_PASSWORD or a prompt)")
    admin.add_argument("email")
    admin.add_argument("--display-name", default="Admin")
    admin.set_defaults(run=_create_admin)

    for register in _EXTENSIONS:
        register(sub)
    return parser


# Sub-commands contributed by other modules (billing's ``credit``, ...): each adds its own parser.
_EXTENSIONS: list[Callable[[argparse._SubParsersAction], None]] = [credit.register, ledger.register]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"soulseer: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.data_dir is not None:
        settings = replace(settings, data_dir=args.data_dir)
    if getattr(args, "host", None):
        settings = replace(settings, host=args.host)
    if getattr(args, "port", None):
        if not 1 <= args.port <= 65535:
            print("soulseer: configuration error: --port must be between 1 and 65535", file=sys.stderr)
            return 2
        settings = replace(settings, port=args.port)
    if (getattr(args, "host", None) or getattr(args, "port", None)) and not os.environ.get("SOULSEER_PUBLIC_URL"):
        # The default public URL follows the address actually served (Checkout return URLs, the banner).
        settings = replace(settings, public_url=f"http://{settings.host}:{settings.port}")
    logs.configure(settings.log_level, settings.log_json, node=settings.node_name)
    command: Command = args.run
    return command(settings, args)
