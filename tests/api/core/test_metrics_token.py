"""/metrics is never open to anyone by default: off loopback without a token, serve generates one."""

from __future__ import annotations

import stat
from dataclasses import replace
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from api.core import metrics_token
from config import Settings, load_settings


def test_off_loopback_a_token_is_generated_once_and_kept_private(tmp_path: Path) -> None:
    settings = load_settings({"SOULSEER_HOST": "0.0.0.0", "SOULSEER_DATA_DIR": str(tmp_path)})
    first = metrics_token.effective(settings)
    assert first.metrics_token and len(first.metrics_token) >= 32
    path = tmp_path / metrics_token.FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert metrics_token.effective(settings).metrics_token == first.metrics_token  # the next start reuses it


def test_loopback_a_set_token_or_an_explicit_public_setting_generate_nothing(tmp_path: Path) -> None:
    for env in ({"SOULSEER_HOST": "127.0.0.1"}, {"SOULSEER_HOST": "::1"},
                {"SOULSEER_HOST": "0.0.0.0", "SOULSEER_METRICS_TOKEN": "a-token-the-operator-chose"},
                {"SOULSEER_HOST": "0.0.0.0", "SOULSEER_METRICS_PUBLIC": "true"}):
        settings = load_settings({**env, "SOULSEER_DATA_DIR": str(tmp_path)})
        assert metrics_token.effective(settings) == settings
    assert not (tmp_path / metrics_token.FILE_NAME).exists()


async def test_metrics_refuse_a_request_without_the_generated_token(settings: Settings, tmp_path: Path) -> None:
    public = metrics_token.effective(replace(settings, host="0.0.0.0", data_dir=tmp_path))
    async with TestClient(TestServer(create_app(public), host="127.0.0.1")) as http:
        assert (await http.get("/metrics")).status == 401
        ok = await http.get("/metrics", headers={"Authorization": f"Bearer {public.metrics_token}"})
        assert ok.status == 200 and "soulseer_billing_revenue_cents" in await ok.text()
