"""Random message sequences against a live server: it never crashes, never leaks a relay peer, always answers."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.readings.live import LIVE_READINGS
from tests.reading_steps import Signal, accepted_session, reader_and_client, wait_for
from tests.relay.endpoints import Endpoint

pytestmark = pytest.mark.slow

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def _messages(session_ids: st.SearchStrategy[str], sdp: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    typed = st.one_of(
        st.builds(lambda s: {"type": "join", "sessionId": s}, session_ids),
        st.builds(lambda s: {"type": "offer", "sdp": s}, sdp),
        st.builds(lambda c: {"type": "ice-candidate", "candidate": c},
                  st.none() | _json_values | st.fixed_dictionaries(
                      {"candidate": st.text(max_size=60), "sdpMid": st.sampled_from(["0", "1", "x"]),
                       "sdpMLineIndex": st.integers(-2, 70)})),
        st.builds(lambda t: {"type": "chat-message", "text": t}, _json_values | st.text(max_size=300)),
        st.just({"type": "end-session"}),
        st.just({"type": "leave"}),
        st.just({"type": "ping"}),
        st.builds(lambda t, extra: {"type": t, **extra}, st.text(max_size=12),
                  st.dictionaries(st.text(max_size=8), _json_values, max_size=2)),
    )
    return st.one_of(typed.map(json.dumps), _json_values.map(json.dumps), st.text(max_size=200))


@pytest.fixture
async def offer_sdp() -> str:
    """A real browser-like offer (audio, video, data channel); its peer is closed, so ICE never completes."""
    endpoint = Endpoint("hypothesis")
    sdp = await endpoint.offer()
    await endpoint.close()
    return sdp


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=st.data())
async def test_random_message_sequences_never_crash_leak_or_go_silent(client: TestClient, pool: asyncpg.Pool,
                                                                      offer_sdp: str, data: Any) -> None:
    live = client.app[LIVE_READINGS]
    relay = live.relay
    reader, customer = await reader_and_client(client, pool)
    session_type = data.draw(st.sampled_from(["chat", "video"]))
    session_id = await accepted_session(client, reader, customer, session_type)
    other = "00000000-0000-4000-8000-000000000000"
    steps = data.draw(st.lists(st.tuples(st.sampled_from(["client", "reader"]),
                                         _messages(st.sampled_from([session_id, other, "x"]),
                                                   st.sampled_from([offer_sdp, "v=0", ""]) | st.text(max_size=50))),
                               min_size=1, max_size=8))
    sockets = {"client": await Signal.open(client, customer), "reader": await Signal.open(client, reader)}
    try:
        for who, raw in steps:
            await sockets[who].ws.send_str(raw)
        for ws in sockets.values():  # still answering after whatever came before
            await ws.send("ping")
            await ws.expect("pong", timeout=10)
        errors = [m for ws in sockets.values() for m in ws.seen if m.get("type") == "error"]
        assert all(isinstance(e.get("code"), str) and e.get("message") for e in errors)
        assert all(e["code"] != "internal" for e in errors), errors
    finally:
        for ws in sockets.values():
            await ws.close()
    await client.post(f"/api/webrtc/session/{session_id}/end", headers=reader.headers)

    async def back_to_baseline() -> bool:
        no_peers = all(relay.participant_state(f"{session_id}:{r}") is None for r in ("client", "reader"))
        return no_peers and live.get(session_id) is None

    await wait_for(back_to_baseline, timeout=10)
    assert (await client.get("/healthz")).status == 200


async def test_a_socket_that_offered_and_vanished_leaves_no_peer(client: TestClient, pool: asyncpg.Pool,
                                                                 offer_sdp: str) -> None:
    relay = client.app[LIVE_READINGS].relay
    reader, customer = await reader_and_client(client, pool)
    session_id = await accepted_session(client, reader, customer, "video")
    ws = await Signal.open(client, customer)
    await ws.join(session_id)
    await ws.send("offer", sdp=offer_sdp)
    assert (await ws.expect("answer"))["sdp"].startswith("v=0")
    assert relay.participant_state(f"{session_id}:client") is not None
    await ws.close()

    async def gone() -> bool:
        return relay.participant_state(f"{session_id}:client") is None

    await wait_for(gone)
