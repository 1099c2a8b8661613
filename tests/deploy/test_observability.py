"""The Grafana dashboard and the Prometheus alert rules in deploy/ name only series SoulSeer really exports:
the names are read from a running app's /metrics (every family is listed there, used or not), a node of a
cluster (on a real Redis), so that the ``soulseer_cluster_*`` series are there too."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from config import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "soulseer.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
# Series Prometheus makes itself, not SoulSeer.
PROMETHEUS_OWN = {"up"}
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
            "summary": ("_sum", "_count", "_created"), "gauge": ("",), "untyped": ("",)}


def _named_in(expression: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that start a selector (not functions, labels, keywords)."""
    without_strings = re.sub(r'"[^"]*"', '""', expression)
    without_labels = re.sub(r"\{[^}]*\}", "", without_strings)
    without_groupings = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", without_labels)
    names = set(re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", without_groupings))
    keywords = {"and", "or", "unless", "bool", "offset", "le", "inf", "nan"}
    return {n for n in names if n.lower() not in keywords and not re.fullmatch(r"\d+[smhdwy]?", n)}


def _dashboard_expressions() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [t["expr"] for p in panels for t in p.get("targets", [])]


def _alert_expressions() -> list[str]:
    return re.findall(r"^\s*expr:\s*(.+?)\s*$", ALERTS.read_text(), flags=re.MULTILINE)


async def _exported(client: TestClient) -> set[str]:
    response = await client.get("/metrics")
    assert response.status == 200
    series = set(PROMETHEUS_OWN)
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", await response.text(), flags=re.MULTILINE):
        base = name.removesuffix("_total") if kind == "counter" else name  # the text format names counters x_total
        series |= {base + suffix for suffix in SUFFIXES[kind]}
    return series


@pytest.fixture
async def node(cluster_settings: Settings) -> AsyncIterator[TestClient]:
    """The app as a node of a cluster."""
    async with TestClient(TestServer(create_app(cluster_settings), host="127.0.0.1")) as test_client:
        yield test_client


async def test_the_dashboard_names_only_exported_metrics(node: TestClient) -> None:
    client = node
    exported = await _exported(client)
    expressions = _dashboard_expressions()
    assert len(expressions) >= 20
    unknown = {name for e in expressions for name in _named_in(e)} - exported
    assert unknown == set(), f"the dashboard names metrics SoulSeer does not export: {sorted(unknown)}"


async def test_the_alert_rules_name_only_exported_metrics(node: TestClient) -> None:
    client = node
    exported = await _exported(client)
    expressions = _alert_expressions()
    assert len(expressions) == ALERTS.read_text().count("- alert:")
    unknown = {name for e in expressions for name in _named_in(e)} - exported
    assert unknown == set(), f"the alert rules name metrics SoulSeer does not export: {sorted(unknown)}"


def test_the_dashboard_and_alerts_cover_the_relay_readings_money_and_the_cluster() -> None:
    rows = {p["title"] for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] == "row"}
    assert rows == {"Relay", "Readings", "Money", "Cluster"}
    groups = set(re.findall(r"^\s*- name:\s*(\S+)", ALERTS.read_text(), flags=re.MULTILINE))
    assert groups == {"soulseer-relay", "soulseer-readings", "soulseer-money", "soulseer-cluster"}


def test_the_name_check_itself_sees_a_made_up_metric() -> None:
    assert _named_in('sum by (kind) (rate(soulseer_made_up_total{kind="x"}[5m])) > 0') == {"soulseer_made_up_total"}
    assert _named_in("histogram_quantile(0.95, sum by (le) (rate(a_bucket[5m])))") == {"a_bucket"}
