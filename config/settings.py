"""SoulSeer's settings: read from the environment once, validated, immutable, passed down explicitly."""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


class SettingsError(ValueError):
    """A configuration value is unusable; the message names the variable so start-up can say it in one line."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


@dataclass(frozen=True)
class Settings:
    """Everything the process needs to know about its environment, validated at start-up."""

    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = "http://127.0.0.1:8080"
    secret_key: str = ""
    database_url: str | None = None
    data_dir: Path = Path(".soulseer-data")
    redis_url: str | None = None
    redis_prefix: str = "soulseer:"
    node_name: str | None = None
    reuse_port: bool = False
    ice_servers: tuple[Mapping[str, Any], ...] = ()
    turn_shared_secret: str | None = None
    turn_credential_ttl: int = 3600
    stripe_secret_key: str | None = None
    stripe_webhook_secret: str | None = None
    stripe_connect_webhook_secret: str | None = None
    stripe_api_base: str | None = None
    add_funds_min_cents: int = 500
    add_funds_max_cents: int = 50_000
    request_expiry_seconds: int = 60
    grace_seconds: int = 60
    away_after_seconds: int = 15
    reading_lease_seconds: int = 15
    schedule_early_join_seconds: int = 600
    reader_no_show_seconds: int = 600
    cancel_full_refund_hours: int = 24
    late_cancel_refund_percent: int = 0
    max_participants: int = 250
    max_viewers_per_stream: int = 1000
    max_relay_cpu_percent: int = 90
    reserved_reading_participants: int = 50
    connect_timeout_seconds: int = 30
    stream_participants_per_user: int = 3
    stream_participants_per_address: int = 12
    sockets_per_address: int = 64
    max_relay_loop_lag_ms: int = 30
    event_loop: str = "asyncio"
    relay_shed_lag_ms: int = 60
    login_attempts_per_minute: int = 10
    login_backoff_after: int = 5
    login_max_backoff_seconds: int = 900
    registrations_per_hour: int = 20
    password_hash_workers: int = 1
    password_hash_queue: int = 16
    add_funds_rate_limit: int = 5
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    log_level: str = "INFO"
    log_json: bool = True
    metrics_token: str | None = None
    metrics_public: bool = False
    payout_hold_days: int = 7
    payout_interval_days: int = 7
    payout_minimum_cents: int = 5_000
    withdrawal_min_cents: int = 500
    withdrawal_max_cents_per_day: int = 50_000
    withdrawal_rate_limit: int = 5
    message_refund_after_seconds: int = 72 * 3600
    message_sweep_interval_seconds: int = 60
    gift_rate_limit: int = 10
    stream_chat_rate_limit: int = 10
    reading_chat_rate_limit: int = 20
    ice_allow_private_candidates: bool = True
    reminder_sweep_interval_seconds: int = 30
    intro_free_minutes: int = 3
    intro_readers: int = 3
    smtp_url: str | None = None
    mail_from: str = "SoulSeer <no-reply@soulseer.invalid>"
    mail_sweep_interval_seconds: int = 5

    @property
    def on_loopback(self) -> bool:
        """The server listens on a loopback address only (a development machine, or behind a local proxy)."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def secure_cookies(self) -> bool:
        """Cookies get the Secure flag whenever the public URL is https."""
        return self.public_url.startswith("https://")


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(name, f"must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(name, f"must be between {low} and {high}, got {value}")
    return value


def _url(env: Mapping[str, str], name: str, schemes: tuple[str, ...]) -> str | None:
    raw = env.get(name)
    if not raw:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in schemes or not (parts.netloc or parts.path):
        raise SettingsError(name, f"must be a URL with scheme {' or '.join(schemes)}")
    return raw


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(name, f"must be true or false, got {raw!r}")


def _name(env: Mapping[str, str], name: str, default: str) -> str:
    """A short printable name (a key prefix, a node's name): letters, digits and ``-_.:``, at most 64."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if len(raw) > 64 or not all(c.isascii() and (c.isalnum() or c in "-_.:") for c in raw):
        raise SettingsError(name, "must be at most 64 letters, digits or -_.: characters")
    return raw


def _networks(env: Mapping[str, str], name: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """A comma-separated list of addresses or CIDR networks (``10.0.0.0/8, ::1``)."""
    networks = []
    for part in (env.get(name) or "").split(","):
        if part.strip():
            try:
                networks.append(ipaddress.ip_network(part.strip(), strict=False))
            except ValueError:
                raise SettingsError(name, f"{part.strip()!r} is not an IP address or network") from None
    return tuple(networks)


def _ice_servers(env: Mapping[str, str]) -> tuple[Mapping[str, Any], ...]:
    """ICE servers in the browser's RTCIceServer shape; empty by default so nothing reaches the internet."""
    servers: list[dict[str, Any]] = []
    raw = env.get("WEBRTC_ICE_SERVERS")
    if raw:
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise SettingsError("WEBRTC_ICE_SERVERS", f"is not valid JSON ({exc.msg})") from None
        if isinstance(parsed, dict):
            parsed = [parsed]
        if not isinstance(parsed, list):
            raise SettingsError("WEBRTC_ICE_SERVERS", "must be a JSON list of {urls, username?, credential?}")
        for entry in parsed:
            if isinstance(entry, str):
                entry = {"urls": entry}
            if not isinstance(entry, dict) or "urls" not in entry:
                raise SettingsError("WEBRTC_ICE_SERVERS", "every entry needs a 'urls' field")
            urls = entry["urls"] if isinstance(entry["urls"], list) else [entry["urls"]]
            if not urls or not all(
                isinstance(u, str) and u.split(":", 1)[0] in {"stun", "stuns", "turn", "turns"} for u in urls
            ):
                raise SettingsError("WEBRTC_ICE_SERVERS", "urls must start with stun:, stuns:, turn: or turns:")
            servers.append(dict(entry))
    turn = env.get("WEBRTC_TURN_SERVERS")
    if turn:
        urls = [u.strip() for u in turn.split(",") if u.strip()]
        if not all(u.split(":", 1)[0] in {"turn", "turns"} for u in urls):
            raise SettingsError("WEBRTC_TURN_SERVERS", "must be a comma-separated list of turn: or turns: URLs")
        turn_entry: dict[str, Any] = {"urls": urls}
        if env.get("WEBRTC_TURN_SERVERS_USERNAME"):
            turn_entry["username"] = env["WEBRTC_TURN_SERVERS_USERNAME"]
        if env.get("WEBRTC_TURN_SERVERS_PASSWORD"):
            turn_entry["credential"] = env["WEBRTC_TURN_SERVERS_PASSWORD"]
        servers.append(turn_entry)
    return tuple(servers)


def _mail_from(env: Mapping[str, str]) -> str:
    """The From of every mail: ``Name <address>`` or a bare address, one line."""
    raw = (env.get("SOULSEER_MAIL_FROM") or "SoulSeer <no-reply@soulseer.invalid>").strip()
    if "\n" in raw or "\r" in raw or "@" not in raw or len(raw) > 200:
        raise SettingsError("SOULSEER_MAIL_FROM", "must be one line with an e-mail address, like SoulSeer <a@b.c>")
    return raw


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the environment (``os.environ`` by default) into one :class:`Settings`."""
    env = os.environ if env is None else env
    port = _int(env, "SOULSEER_PORT", 8080, 1, 65535)
    host = env.get("SOULSEER_HOST") or "127.0.0.1"
    public_url = _url(env, "SOULSEER_PUBLIC_URL", ("http", "https")) or f"http://{host}:{port}"
    secret_key = env.get("SOULSEER_SECRET_KEY") or ""
    if secret_key and len(secret_key) < 16:
        raise SettingsError("SOULSEER_SECRET_KEY", "must be at least 16 characters")
    level = (env.get("SOULSEER_LOG_LEVEL") or "INFO").upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise SettingsError("SOULSEER_LOG_LEVEL", "must be DEBUG, INFO, WARNING or ERROR")
    event_loop = (env.get("SOULSEER_EVENT_LOOP") or "asyncio").lower()
    if event_loop not in {"asyncio", "uvloop"}:
        raise SettingsError("SOULSEER_EVENT_LOOP", "must be asyncio or uvloop")
    min_cents = _int(env, "SOULSEER_ADD_FUNDS_MIN_CENTS", 500, 50, 10_000_000)
    max_cents = _int(env, "SOULSEER_ADD_FUNDS_MAX_CENTS", 50_000, 50, 10_000_000)
    if max_cents < min_cents:
        raise SettingsError("SOULSEER_ADD_FUNDS_MAX_CENTS", "must not be below SOULSEER_ADD_FUNDS_MIN_CENTS")
    max_participants = _int(env, "SOULSEER_MAX_PARTICIPANTS", 250, 2, 100_000)
    reserved = _int(env, "SOULSEER_RESERVED_READING_PARTICIPANTS", max_participants // 5, 0, 100_000)
    if reserved >= max_participants:
        raise SettingsError("SOULSEER_RESERVED_READING_PARTICIPANTS", "must be below SOULSEER_MAX_PARTICIPANTS")
    return Settings(
        host=host,
        port=port,
        public_url=public_url.rstrip("/"),
        secret_key=secret_key,
        database_url=_url(env, "DATABASE_URL", ("postgres", "postgresql")),
        data_dir=Path(env.get("SOULSEER_DATA_DIR") or ".soulseer-data"),
        redis_url=_url(env, "REDIS_URL", ("redis", "rediss", "unix")),
        redis_prefix=_name(env, "SOULSEER_REDIS_PREFIX", "soulseer:"),
        node_name=_name(env, "SOULSEER_NODE_NAME", "") or None,
        reuse_port=_bool(env, "SOULSEER_REUSE_PORT", False),
        ice_servers=_ice_servers(env),
        turn_shared_secret=env.get("WEBRTC_TURN_SHARED_SECRET") or None,
        turn_credential_ttl=_int(env, "WEBRTC_TURN_CREDENTIAL_TTL", 3600, 60, 86_400),
        stripe_secret_key=env.get("STRIPE_SECRET_KEY") or None,
        stripe_webhook_secret=env.get("STRIPE_WEBHOOK_SIGNING_SECRET") or None,
        stripe_connect_webhook_secret=env.get("STRIPE_CONNECT_WEBHOOK_SIGNING_SECRET") or None,
        stripe_api_base=_url(env, "STRIPE_API_BASE", ("http", "https")),
        add_funds_min_cents=min_cents,
        add_funds_max_cents=max_cents,
        request_expiry_seconds=_int(env, "SOULSEER_REQUEST_EXPIRY_SECONDS", 60, 5, 3600),
        grace_seconds=_int(env, "SOULSEER_GRACE_SECONDS", 60, 1, 3600),
        away_after_seconds=_int(env, "SOULSEER_AWAY_AFTER_SECONDS", 15, 1, 3600),
        reading_lease_seconds=_int(env, "SOULSEER_READING_LEASE_SECONDS", 15, 3, 300),
        schedule_early_join_seconds=_int(env, "SOULSEER_SCHEDULE_EARLY_JOIN_SECONDS", 600, 0, 86_400),
        reader_no_show_seconds=_int(env, "SOULSEER_READER_NO_SHOW_SECONDS", 600, 60, 86_400),
        cancel_full_refund_hours=_int(env, "SOULSEER_CANCEL_FULL_REFUND_HOURS", 24, 0, 24 * 30),
        late_cancel_refund_percent=_int(env, "SOULSEER_LATE_CANCEL_REFUND_PERCENT", 0, 0, 100),
        max_participants=max_participants,
        reserved_reading_participants=reserved,
        connect_timeout_seconds=_int(env, "SOULSEER_CONNECT_TIMEOUT_SECONDS", 30, 1, 600),
        stream_participants_per_user=_int(env, "SOULSEER_STREAM_PARTICIPANTS_PER_USER", 3, 1, 1000),
        stream_participants_per_address=_int(env, "SOULSEER_STREAM_PARTICIPANTS_PER_ADDRESS", 12, 1, 100_000),
        sockets_per_address=_int(env, "SOULSEER_SOCKETS_PER_ADDRESS", 64, 1, 100_000),
        max_viewers_per_stream=_int(env, "SOULSEER_MAX_VIEWERS_PER_STREAM", 1000, 1, 100_000),
        max_relay_cpu_percent=_int(env, "SOULSEER_MAX_RELAY_CPU_PERCENT", 90, 0, 400),
        max_relay_loop_lag_ms=_int(env, "SOULSEER_MAX_RELAY_LOOP_LAG_MS", 30, 0, 10_000),
        relay_shed_lag_ms=_int(env, "SOULSEER_RELAY_SHED_LAG_MS", 60, 0, 10_000),
        event_loop=event_loop,
        login_attempts_per_minute=_int(env, "SOULSEER_LOGIN_ATTEMPTS_PER_MINUTE", 10, 1, 10_000),
        login_backoff_after=_int(env, "SOULSEER_LOGIN_BACKOFF_AFTER", 5, 1, 1000),
        login_max_backoff_seconds=_int(env, "SOULSEER_LOGIN_MAX_BACKOFF_SECONDS", 900, 1, 86_400),
        registrations_per_hour=_int(env, "SOULSEER_REGISTRATIONS_PER_HOUR", 20, 1, 100_000),
        password_hash_workers=_int(env, "SOULSEER_PASSWORD_HASH_WORKERS", 1, 1, 64),
        password_hash_queue=_int(env, "SOULSEER_PASSWORD_HASH_QUEUE", 16, 0, 10_000),
        add_funds_rate_limit=_int(env, "SOULSEER_ADD_FUNDS_RATE_LIMIT", 5, 1, 10_000),
        trusted_proxies=_networks(env, "SOULSEER_TRUSTED_PROXIES"),
        log_level=level,
        log_json=_bool(env, "SOULSEER_LOG_JSON", True),
        metrics_token=env.get("SOULSEER_METRICS_TOKEN") or None,
        metrics_public=_bool(env, "SOULSEER_METRICS_PUBLIC", False),
        payout_hold_days=_int(env, "SOULSEER_PAYOUT_HOLD_DAYS", 7, 0, 180),
        payout_interval_days=_int(env, "SOULSEER_PAYOUT_INTERVAL_DAYS", 7, 0, 90),
        payout_minimum_cents=_int(env, "SOULSEER_PAYOUT_MINIMUM_CENTS", 5_000, 100, 10_000_000),
        withdrawal_min_cents=_int(env, "SOULSEER_WITHDRAWAL_MIN_CENTS", 500, 50, 10_000_000),
        withdrawal_max_cents_per_day=_int(env, "SOULSEER_WITHDRAWAL_MAX_CENTS_PER_DAY", 50_000, 50, 100_000_000),
        withdrawal_rate_limit=_int(env, "SOULSEER_WITHDRAWAL_RATE_LIMIT", 5, 1, 10_000),
        message_refund_after_seconds=_int(env, "SOULSEER_MESSAGE_REFUND_AFTER_SECONDS", 72 * 3600, 60, 90 * 86_400),
        message_sweep_interval_seconds=_int(env, "SOULSEER_MESSAGE_SWEEP_INTERVAL_SECONDS", 60, 1, 86_400),
        gift_rate_limit=_int(env, "SOULSEER_GIFT_RATE_LIMIT", 10, 1, 10_000),
        stream_chat_rate_limit=_int(env, "SOULSEER_STREAM_CHAT_RATE_LIMIT", 10, 1, 10_000),
        reading_chat_rate_limit=_int(env, "SOULSEER_READING_CHAT_RATE_LIMIT", 20, 1, 10_000),
        ice_allow_private_candidates=_bool(env, "SOULSEER_ICE_ALLOW_PRIVATE_CANDIDATES", True),
        reminder_sweep_interval_seconds=_int(env, "SOULSEER_REMINDER_SWEEP_INTERVAL_SECONDS", 30, 1, 3600),
        intro_free_minutes=_int(env, "SOULSEER_INTRO_FREE_MINUTES", 3, 0, 60),
        intro_readers=_int(env, "SOULSEER_INTRO_READERS", 3, 0, 100),
        smtp_url=_url(env, "SOULSEER_SMTP_URL", ("smtp", "smtps")),
        mail_from=_mail_from(env),
        mail_sweep_interval_seconds=_int(env, "SOULSEER_MAIL_SWEEP_INTERVAL_SECONDS", 5, 1, 3600),
    )
