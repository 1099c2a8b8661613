"""Pages over HTTP: security headers everywhere, logins required, nothing a visitor types runs as code."""

from __future__ import annotations

import re

import pytest
from aiohttp.test_utils import TestClient

from api.pages.login import safe_next
from tests.api.helpers import login, register


async def test_every_response_carries_a_strict_content_security_policy(client: TestClient) -> None:
    for path in ("/", "/login", "/static/js/reading-client.js", "/static/css/soulseer.css", "/healthz", "/nope"):
        resp = await client.get(path)
        policy = resp.headers.get("Content-Security-Policy", "")
        assert "script-src 'self'" in policy, path
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy, path
        assert "frame-ancestors 'none'" in policy, path
        assert resp.headers["X-Content-Type-Options"] == "nosniff"


async def test_pages_have_no_inline_script_or_event_handlers(client: TestClient) -> None:
    pages = []
    for role, paths in (("reader", ("/dashboard", "/history", "/notifications")), ("client", ("/", "/wallet"))):
        client.session.cookie_jar.clear()
        user = await register(client, role, name="Nova")
        await login(client, user["email"])
        pages += [await (await client.get(path)).text() for path in paths]
    client.session.cookie_jar.clear()
    pages += [await (await client.get(path)).text() for path in ("/", "/login", "/register")]
    for path, html in enumerate(pages):
        scripts = re.findall(r"<script\b([^>]*)>", html)
        assert scripts, path
        for attributes in scripts:
            assert 'type="module" src="/static/' in attributes or 'type="application/json"' in attributes, path
        assert not re.search(r"\son[a-z]+\s*=", html), path
        assert "style=" not in html, path


@pytest.mark.parametrize("path", ["/wallet", "/dashboard", "/history", "/notifications",
                                  "/readings/3b0eedfd-ebf7-4c3d-a326-0e2db460f0fc"])
async def test_a_visitor_is_sent_to_log_in_and_back(client: TestClient, path: str) -> None:
    resp = await client.get(path, allow_redirects=False)
    assert resp.status == 302
    assert resp.headers["Location"] == f"/login?next={path}"


async def test_each_role_is_sent_to_its_own_home(client: TestClient) -> None:
    reader = await register(client, "reader")
    await login(client, reader["email"])
    resp = await client.get("/wallet", allow_redirects=False)
    assert (resp.status, resp.headers["Location"]) == (302, "/dashboard")
    resp = await client.get("/", allow_redirects=False)
    assert (resp.status, resp.headers["Location"]) == (302, "/dashboard")
    client.session.cookie_jar.clear()
    clientele = await register(client, "client")
    await login(client, clientele["email"])
    resp = await client.get("/dashboard", allow_redirects=False)
    assert (resp.status, resp.headers["Location"]) == (302, "/")


async def test_a_display_name_with_markup_is_escaped_everywhere(client: TestClient) -> None:
    name = '</script><script>alert(1)</script>"\'<b>'
    user = await register(client, "reader", name=name)
    session = await login(client, user["email"])
    html = await (await client.get("/dashboard")).text()
    assert "<script>alert(1)" not in html
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in html
    # In the JSON data block too: no "</script>" can close it early.
    data = html.split('<script type="application/json" id="page-data">', 1)[1].split("</script>", 1)[0]
    assert "<" not in data and "alert(1)" in data
    assert f'<meta name="csrf-token" content="{session["csrfToken"]}">' in html


async def test_someone_elses_reading_is_not_found(client: TestClient) -> None:
    user = await register(client, "client")
    await login(client, user["email"])
    resp = await client.get("/readings/3b0eedfd-ebf7-4c3d-a326-0e2db460f0fc")
    assert resp.status == 404
    assert "We couldn't find that page" in await resp.text()
    assert (await client.get("/readings/not-a-uuid")).status == 404


def test_only_paths_on_this_site_are_followed_after_login() -> None:
    assert safe_next("/wallet?x=1") == "/wallet?x=1"
    assert safe_next("/readings/3b0eedfd-ebf7-4c3d-a326-0e2db460f0fc#chat") == \
        "/readings/3b0eedfd-ebf7-4c3d-a326-0e2db460f0fc#chat"
    for bad in ("https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:alert(1)", "", None):
        assert safe_next(bad, "/") == "/"


# What a browser's URL parser strips or rewrites: each of these would leave the site once it got to it.
BROWSER_REWRITTEN = ["/\t/evil.example/x", "/\n/evil.example/x", "/\r/evil.example/x", "\t//evil.example/x",
                     " //evil.example/x", "/\x00/evil.example", "//\tevil.example", "/\u3000/evil.example",
                     "/\u2028/evil.example", "/\x85/evil.example", "https:evil.example", "///evil.example",
                     "\\\\evil.example", "/ /evil.example"]


@pytest.mark.parametrize("bad", BROWSER_REWRITTEN)
def test_a_next_a_browser_would_rewrite_into_another_site_is_refused(bad: str) -> None:
    assert safe_next(bad, "/home") == "/home"


async def test_login_and_register_pages_never_redirect_off_site(client: TestClient) -> None:
    """The issue's exploit: ``/login?next=/%09/evil.example/x`` answered ``302 Location: //evil.example/x``."""
    for path in ("/login", "/register"):
        html = await (await client.get(f"{path}?next=/%09/evil.example/x")).text()
        data = html.split('<script type="application/json" id="page-data">', 1)[1].split("</script>", 1)[0]
        assert '"next": ""' in data.replace('":""', '": ""'), (path, data)
    user = await register(client, "client")
    await login(client, user["email"])
    for query in ("/%09/evil.example/x", "/%0a/evil.example/x", "%09//evil.example/x", "/%5Cevil.example"):
        resp = await client.get(f"/login?next={query}", allow_redirects=False)
        assert (resp.status, resp.headers["Location"]) == (302, "/"), query
    resp = await client.get("/login?next=/wallet", allow_redirects=False)
    assert (resp.status, resp.headers["Location"]) == (302, "/wallet")
