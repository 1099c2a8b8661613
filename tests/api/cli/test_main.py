"""The ``soulseer`` command run as a user runs it: a real subprocess."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

SOULSEER = [sys.executable, "-m", "api.cli"]
ROOT = Path(__file__).resolve().parents[3]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "SOULSEER_PORT"}}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_bad_configuration_stops_start_up_with_one_line() -> None:
    result = subprocess.run([*SOULSEER, "migrate"], env=_env(SOULSEER_PORT="70000"), capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "soulseer: configuration error: SOULSEER_PORT: must be between 1 and 65535, got 70000"]


def test_migrate_is_idempotent(database_url: str) -> None:
    for _ in range(2):
        result = subprocess.run([*SOULSEER, "migrate"], env=_env(DATABASE_URL=database_url),
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert "up to date" in result.stdout


@pytest.mark.slow
def test_serve_on_embedded_postgres_answers_readyz_and_stops_cleanly(tmp_path: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen([*SOULSEER, "--data-dir", str(tmp_path / "data"), "serve", "--port", str(port)],
                            env=_env(SOULSEER_LOG_JSON="false"), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as resp:
                    status = resp.status
                    break
            except OSError:
                time.sleep(0.1)
        if status != 200:
            proc.kill()
            output, _ = proc.communicate(timeout=10)
            raise AssertionError(f"no /readyz 200 (exit code {proc.returncode}):\n{output[-4000:]}")
        assert (tmp_path / "data" / "pgdata" / "PG_VERSION").exists()
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, output
        assert "embedded postgresql stopped" in output
        # The embedded server is really gone: its pid file is removed on a clean stop.
        assert not (tmp_path / "data" / "pgdata" / "postmaster.pid").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
