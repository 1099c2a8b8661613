"""``soulseer serve --demo``: demo readers online with rates and profiles, a demo client with credit, once."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.request

import asyncpg
import pytest

from api.cli import demo
from tests.api.cli.test_main import SOULSEER, _env, _free_port


async def test_seeding_twice_makes_the_accounts_once_and_credits_once(pool: asyncpg.Pool) -> None:
    first = await demo.seed(pool)
    second = await demo.seed(pool)
    assert first == second
    assert [login.role for login in first] == ["reader", "reader", "reader", "client"]
    readers = await pool.fetch(
        "SELECT u.display_name, a.status, r.video_cents, p.specialties FROM users u"
        " JOIN reader_availability a ON a.reader_id = u.id JOIN reader_rates r ON r.reader_id = u.id"
        " JOIN reader_profiles p ON p.reader_id = u.id WHERE u.role = 'reader' ORDER BY u.display_name")
    assert [(r["display_name"], r["status"]) for r in readers] == [
        ("Luna Hart", "online"), ("Orion Vale", "online"), ("Sage Okafor", "online")]
    assert all(r["video_cents"] > 0 and r["specialties"] for r in readers)
    balance = await pool.fetchval(
        "SELECT b.balance_cents FROM client_balances b JOIN users u ON u.id = b.client_id WHERE u.email = $1",
        demo.CLIENT_EMAIL)
    assert balance == demo.CLIENT_CREDIT_CENTS


def test_the_banner_says_where_to_go_and_how_to_sign_in() -> None:
    text = demo.banner([demo.DemoLogin("client", demo.CLIENT_EMAIL, demo.CLIENT_NAME)], "http://127.0.0.1:8080")
    assert "http://127.0.0.1:8080" in text and demo.DEMO_PASSWORD in text and demo.CLIENT_EMAIL in text


@pytest.mark.slow
def test_serve_demo_prints_the_logins_and_they_work(database_url: str) -> None:
    port = _free_port()
    proc = subprocess.Popen([*SOULSEER, "serve", "--demo", "--port", str(port)],
                            env=_env(DATABASE_URL=database_url, SOULSEER_LOG_JSON="false"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Sign in as the client" in line:
                break
        output = "".join(lines)
        assert f"SoulSeer demo at http://127.0.0.1:{port}" in output, output
        assert demo.CLIENT_EMAIL in output and "luna@demo.soulseer.test" in output
        home = ""
        while time.monotonic() < deadline and not home:
            try:  # the banner is printed as the server starts listening
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
                    home = resp.read().decode()
            except OSError:
                time.sleep(0.1)
        assert "Luna Hart" in home and "3 readers online" in home
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/auth/login", method="POST", headers={"Content-Type": "application/json"},
            data=json.dumps({"email": demo.CLIENT_EMAIL, "password": demo.DEMO_PASSWORD}).encode())
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert json.loads(resp.read())["user"]["role"] == "client"
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
