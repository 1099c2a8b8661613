"""Generated ``/ws`` messages of every known type, with garbage fields, in any order, from a reading's two
participants and a stream's viewer: never an ``internal`` error, every socket still answers, and when it is all
over no relay peer is left (issue 11, point 13).

One app serves every example; a reading (video) and a live stream are made again whenever an example ended
them. Offers are mutations of a real browser-like offer; candidates are built from their grammar with hostile
parts. Every candidate address that the relay could *use* is loopback: the relay sends ICE checks to what it
uses, and a test sends traffic to this machine only.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from hypothesis import event, given
from hypothesis import strategies as st

from api.readings.live import LIVE_READINGS
from config import Settings
from tests.api.fuzzing import announce, fuzz, huge_int_text, json_values, nested, odd_numbers, odd_text
from tests.reading_steps import Party, Signal, accepted_session, quick_user, reader_and_client, running_app
from tests.reading_steps import wait_for as wait_until
from tests.relay.endpoints import Endpoint

pytestmark = pytest.mark.slow

WHO = ("client", "reader", "viewer")

# Addresses: loopback (usable), and kinds the relay refuses or never uses; no other usable address.
_addresses = st.sampled_from([
    "127.0.0.1", "127.0.0.53", "::1", "0.0.0.0", "::", "224.0.0.251", "ff02::fb", "255.255.255.255", "240.0.0.1",
    "0.1.2.3", "169.254.169.254", "fe80::1", "::ffff:0.0.0.0", "999.1.1.1", "evil.example", "", "1.2.3",
    "127.0.0.1\u0000", "\ud800",
])
_candidate_text = st.one_of(
    st.builds(
        lambda foundation, component, protocol, priority, address, port, typ, extra:
        f"candidate:{foundation} {component} {protocol} {priority} {address} {port} typ {typ}{extra}",
        st.sampled_from(["1", "842163049", "", "x" * 40, "f\u00f6o"]),
        st.sampled_from(["1", "2", "0", "257", "-1", "x"]),
        st.sampled_from(["udp", "UDP", "tcp", "sctp", ""]),
        st.sampled_from(["2122260223", "0", "4294967296", "-5", "1e3"]) | odd_numbers.map(str),
        _addresses,
        st.sampled_from(["54321", "1", "0", "65535", "65536", "-1", "x"]) | st.integers().map(str),
        st.sampled_from(["host", "srflx", "prflx", "relay", "bogus"]),
        st.sampled_from(["", " generation 0", " raddr 0.0.0.0 rport 0", " raddr", " rport x", " tcptype active",
                         " rport " + "9" * 5000, " ufrag ab network-cost 10"]),
    ),
    odd_text,
)
_candidate = st.one_of(
    st.none(), json_values, odd_text,
    st.fixed_dictionaries({"candidate": _candidate_text},
                          optional={"sdpMid": st.sampled_from(["0", "1", "x", "m" * 70]) | json_values,
                                    "sdpMLineIndex": st.integers(-3, 70) | st.sampled_from(["x", True, 1.5, None])
                                    | json_values}),
)


def _mutated_offers(base: str) -> st.SearchStrategy[str]:
    lines = base.splitlines()
    m_lines = [i for i, line in enumerate(lines) if line.startswith("m=")]

    def setup(role: str) -> str:
        return base.replace("a=setup:actpass", f"a=setup:{role}")

    def payload_types(index: int, pts: list[str]) -> str:
        out = list(lines)
        out[index] = " ".join(out[index].split()[:3] + pts)
        return "\r\n".join(out) + "\r\n"

    def edit(drops: list[int], inserts: list[tuple[int, str]]) -> str:
        out = [line for i, line in enumerate(lines) if i not in set(drops)]
        for at, text in inserts:
            out.insert(min(at, len(out)), text)
        return "\r\n".join(out) + "\r\n"

    garbage_line = st.one_of(
        _candidate_text.map(lambda c: "a=candidate:" + c.removeprefix("candidate:")),
        st.sampled_from(["a=setup:holdconn", "a=fmtp:99 apt=1", "a=rtpmap:96", "a=ssrc:", "a=fingerprint:sha-256",
                         "c=IN IP9 x", "m=video 9 UDP/TLS/RTP/SAVPF 96", "m=audio 99999 RTP/AVP 0", "a=extmap:x y",
                         "a=ssrc-group:FID x", "a=mid:" + "m" * 500, "a=sendrecv", "a=end-of-candidates"]),
        odd_text.map(lambda t: "a=" + t[:200]),
    )
    return _pick(
        st.just(base),
        st.sampled_from(["holdconn", "active", "passive", "", "ACTPASS"]).map(setup),
        st.tuples(st.sampled_from(m_lines),
                  st.lists(st.integers(-5, 300).map(str) | st.sampled_from(["x", "96", "111"]), max_size=40)
                  | st.integers(100, 8000).map(lambda n: [str(i) for i in range(n)])).map(lambda a: payload_types(*a)),
        st.tuples(st.lists(st.integers(0, len(lines) - 1), max_size=6),
                  st.lists(st.tuples(st.integers(0, len(lines)), garbage_line), max_size=4)).map(lambda a: edit(*a)),
        st.integers(0, len(base)).map(lambda n: base[:n]),
        st.integers(1, 12).map(lambda n: base + "".join(f"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:x{i}\r\n"
                                                        for i in range(n))),
        odd_text,
    )


def _pick(*choices: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """One of ``choices``, each about as likely (``one_of`` leans to its first branch as it simplifies)."""
    return st.sampled_from(choices).flatmap(lambda chosen: chosen)


def _messages(ids: dict[str, str], offer: str) -> st.SearchStrategy[str]:
    target_ids = st.sampled_from([ids["session"], ids["stream"], "00000000-0000-4000-8000-000000000000"]) | odd_text
    typed = _pick(
        st.builds(lambda s: {"type": "join", "sessionId": s}, st.sampled_from([ids["session"]]) | target_ids),
        st.builds(lambda s: {"type": "join", "streamId": s}, st.sampled_from([ids["stream"]]) | target_ids),
        st.builds(lambda s: {"type": "offer", "sdp": s}, _pick(_mutated_offers(offer), json_values)),
        st.builds(lambda c: {"type": "ice-candidate", "candidate": c}, _candidate),
        st.builds(lambda t: {"type": "chat-message", "text": t}, odd_text | json_values),
        st.sampled_from([{"type": "end-session"}, {"type": "leave"}, {"type": "ping"}, {"type": "end-stream"}]),
        st.builds(lambda t, extra: {"type": t, **extra}, odd_text | json_values,
                  st.dictionaries(odd_text, json_values, max_size=3)),
    )
    extras = _pick(st.just({}), st.just({}), st.just({}), st.dictionaries(odd_text, json_values, max_size=2))
    known = st.builds(lambda m, extra: {**extra, **m}, typed, extras).map(json.dumps)
    return _pick(
        known, known, known, known, known, known, json_values.map(json.dumps),
        nested().map(lambda n: '{"type": "ping", "x": ' + n + "}"),
        huge_int_text().map(lambda n: '{"type": "join", "sessionId": ' + n + "}"),
        # Raw text frames: a lone surrogate has no UTF-8, so it cannot be in a text frame at all.
        odd_text.map(lambda t: t[:2000].encode("utf-8", "replace").decode("utf-8")),
    )


class Scene:
    """A reading and a stream, their three people and their sockets, kept alive across examples."""

    def __init__(self, http: TestClient, pool: asyncpg.Pool, offer: str) -> None:
        self.http = http
        self.pool = pool
        self.offer = offer
        self.parties: dict[str, Party] = {}
        self.sockets: dict[str, Signal] = {}
        self.ids: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"Scene({self.ids})"

    async def start(self) -> None:
        reader, client = await reader_and_client(self.http, self.pool, balance=1_000_000)
        self.parties = {"client": client, "reader": reader, "viewer": await quick_user(self.pool, "client")}

    async def refresh(self) -> None:
        """A reading still accepted or active, a stream still live, and a new socket for each party (a socket
        of its own per example: the per-socket flood limit of 60 messages in 2 s is not what is fuzzed here)."""
        status = await self.pool.fetchval("SELECT status FROM rtc_sessions WHERE id = $1", self.ids.get("session"))
        if status not in ("accepted", "active"):
            await wait_until(self._reader_free, timeout=10)
            self.ids["session"] = await accepted_session(self.http, self.parties["reader"], self.parties["client"],
                                                         "video")
        live = await self.pool.fetchval("SELECT status FROM streams WHERE id = $1", self.ids.get("stream"))
        if live != "live":
            resp = await self.http.post("/api/streams", headers=self.parties["reader"].headers, json={"title": "Fuzz"})
            assert resp.status == 201, await resp.text()
            self.ids["stream"] = (await resp.json())["stream"]["id"]
        await self.close()
        self.sockets = {who: await Signal.open(self.http, self.parties[who]) for who in WHO}

    async def _reader_free(self) -> bool:
        status = await self.pool.fetchval("SELECT status FROM reader_availability WHERE reader_id = $1",
                                          self.parties["reader"].id)
        return status == "online"

    async def close(self) -> None:
        for socket in self.sockets.values():
            await socket.close()


@pytest.fixture
async def scene(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[Scene]:
    endpoint = Endpoint("fuzz")
    offer = await endpoint.offer()
    await endpoint.close()  # its peer is gone: ICE toward it never completes
    async with running_app(settings, reading_chat_rate_limit=10_000) as http:
        scene = Scene(http, pool, offer)
        await scene.start()
        yield scene
        await scene.close()
        registry = http.app[LIVE_READINGS].relay.registry

        async def no_peer_left() -> bool:  # every socket closed: no participant, no peer connection in the relay
            return registry.get_sample_value("soulseer_relay_peers") == 0 and \
                registry.get_sample_value("soulseer_relay_participants") == 0

        await wait_until(no_peer_left, timeout=15)


@fuzz(max_examples=60)
@given(data=st.data())
async def test_no_generated_message_sequence_gets_internal_or_silences_a_socket(scene: Scene, data: Any) -> None:
    seed_line = announce("/ws fuzz")
    await scene.refresh()
    # Mostly start from where the messages matter: the two participants in the reading, the viewer on the stream.
    prelude = [(who, json.dumps(message)) for who, message in (
        ("client", {"type": "join", "sessionId": scene.ids["session"]}),
        ("reader", data.draw(st.sampled_from([{"type": "join", "sessionId": scene.ids["session"]},
                                              {"type": "join", "streamId": scene.ids["stream"]}]))),
        ("viewer", {"type": "join", "streamId": scene.ids["stream"]})) if data.draw(st.integers(0, 3))]
    steps = prelude + data.draw(st.lists(st.tuples(st.sampled_from(WHO), _messages(scene.ids, scene.offer)),
                                         min_size=1, max_size=8))
    for who, raw in steps:
        await scene.sockets[who].ws.send_str(raw)
        event(f"sent {_type_of(raw)}")
    for who in WHO:  # every socket still answers, after whatever came before
        socket = scene.sockets[who]
        await socket.send("ping")
        try:
            await socket.expect("pong", timeout=20)
        except (TimeoutError, ConnectionError) as exc:
            raise AssertionError(f"{who}'s socket went silent ({exc!r}); it saw {socket.seen[-5:]} ({seed_line})") \
                from exc
    if any(m.get("type") == "answer" for socket in scene.sockets.values() for m in socket.seen):
        event("answered an offer")
    errors = [m for socket in scene.sockets.values() for m in socket.seen if m.get("type") == "error"]
    for error in errors:
        event(f"error {error.get('code')}")
    assert all(isinstance(e.get("code"), str) and e.get("message") for e in errors), (errors, seed_line)
    assert all(e["code"] != "internal" for e in errors), (errors, seed_line)


def _type_of(raw: str) -> str:
    try:
        message = json.loads(raw)
    except (ValueError, RecursionError):
        return "junk"
    kind = message.get("type") if isinstance(message, dict) else None
    return kind if kind in ("join", "offer", "ice-candidate", "chat-message", "end-session", "leave", "ping",
                            "end-stream") else "other"
