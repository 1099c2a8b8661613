"""``/metrics`` is never open to anyone by default: it shows revenue. Off loopback, without
``SOULSEER_METRICS_TOKEN`` (and unless ``SOULSEER_METRICS_PUBLIC`` says so), ``serve`` generates a token once,
keeps it in ``<data dir>/metrics-token`` (mode 0600, reused on the next start) and logs where it is. We chose
this over refusing to start: a fresh deployment comes up protected, and the operator finds the token where the
log says to point Prometheus at it."""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import replace

from config import Settings

log = logging.getLogger(__name__)

FILE_NAME = "metrics-token"


def effective(settings: Settings) -> Settings:
    """The settings with the token ``/metrics`` will need (unchanged when one is set or none is needed)."""
    if settings.metrics_token or settings.metrics_public or settings.on_loopback:
        return settings
    path = settings.data_dir / FILE_NAME
    token = path.read_text().strip() if path.exists() else ""
    if len(token) < 16:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        token = secrets.token_urlsafe(32)
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(token + "\n")
    log.warning("/metrics needs a bearer token; it is in the file named here",
                extra={"metricsTokenFile": str(path.resolve())})
    return replace(settings, metrics_token=token)
