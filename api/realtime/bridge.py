"""The signal bridge: a browser's ``/ws`` lands on any node, and its messages for a room homed on another node go
to that node over the cluster's bus; the replies come back the same way. The browser then peers with the home
node's relay and never notices: the ``/ws`` contract is unchanged.

Two sides, LiveKit's signal relay in our terms (``pkg/routing``: the node holding the participant's signal
connection forwards requests to the room's node and receives its responses on its own channel):

- **edge** (the node holding the browser's socket): a :class:`BridgedChannel` in front of a feature's channel
  decides, on ``join``, where the room lives. Here: the feature's own channel takes it, as on one node. Elsewhere:
  the socket is seated on the bridge (:class:`BridgeSeat`) and this ``join``, and every later message of the
  socket, is published to the home (``bridge-in``), in order, one after the other.
- **home** (the node holding the room): each bridged socket is a :class:`api.realtime.socket.SignalingSocket`
  of its own, whose wire (:class:`BridgeWire`) publishes what it is sent back to the edge (``bridge-out``). Its
  messages go through :func:`api.realtime.transport.handle_text` like a local socket's, so the feature's channel
  runs exactly the code it runs for a browser connected here (the login re-checked, the room joined, offers
  answered by this node's relay, the reading's pushes).

When a side disappears the other finds out within about two seconds (a node killed drops its bus subscription
at once: ``PUBSUB NUMSUB``, checked every second, twice in a row) or at its next message (``PUBLISH`` reaches no
one): a home that lost its edge leaves the socket's seat (a disconnect, like a closed socket); an edge that lost
its home closes the browser's socket with 1012 ("service restart"), and the browser reconnects and joins again,
to the room's new home (docs/cluster.md, "When a node dies").

Unless the seat can be carried over: a home may leave the edge a *resume token* for a socket's seat
(:func:`keep_resumable`: a stream viewer whose media another node's relay serves, which outlives the home). An
edge that loses the home of such a seat (it died, or it is stopping and closes its bridged sockets) does not close
the socket: it sends the socket's ``join`` again, with the token, to the room's new home (or its own channel, if
the room is placed here now), which seats the socket as it was, without a ``joined`` (the browser keeps its socket
and its peer connection and notices nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from api.accounts.auth import AuthContext, User
from api.cluster.bus import MessageBus
from api.cluster.link import ClusterUnavailable
from api.cluster.node import ClusterNode
from api.realtime import transport
from api.realtime.socket import Channel, SignalingError, SignalingSocket

log = logging.getLogger(__name__)

BRIDGE_IN, BRIDGE_OUT = "bridge-in", "bridge-out"
CLOSE_MOVED = 1012  # "service restart": the browser's client reconnects and joins again
WATCH_SECONDS = 1.0
# A node that is alive but not subscribed right now (Redis restarted) is subscribed again within this.
RESUBSCRIBE_GRACE = 2.0
MAX_INBOX = 512  # messages waiting for one bridged socket's turn (the edge's per-socket flood limit is far below)

# Where a ``join`` should go: the home node's id; None or this node: here. ``gone``: nodes known to have stopped.
HomeOf = Callable[[SignalingSocket, dict[str, Any], frozenset[str]], Awaitable[str | None]]


@dataclass
class BridgeSeat:
    """What an edge socket holds while its room lives on another node."""

    home: str
    join: int  # which of the socket's bridged joins this is (a late "unseated" of an earlier one is ignored)
    message: dict[str, Any]  # the socket's join (sent again with ``resume`` if the home dies)
    sending: bool = True  # its join is on its way (the home is not judged gone meanwhile: the join decides)
    resume: dict[str, Any] | None = None  # the home's resume token for the seat (keep_resumable), if any


async def deliver(bus: MessageBus, node_id: str, kind: str, body: dict[str, Any]) -> bool:
    """Publish to one node; if nobody received it, wait up to ``RESUBSCRIBE_GRACE`` seconds for that node to be
    subscribed again (Redis just restarted) and publish once more. False: the node is not listening."""
    if await bus.send(node_id, kind, body):
        return True
    deadline = asyncio.get_running_loop().time() + RESUBSCRIBE_GRACE
    while asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.2)
        if (await bus.listening([node_id]))[node_id]:
            return await bus.send(node_id, kind, body)
    return False


class BridgeWire:
    """The wire of a socket bridged to this node: what it is sent goes back to the edge holding the browser."""

    def __init__(self, bus: MessageBus, edge: str, socket_id: str) -> None:
        self._bus = bus
        self._edge = edge
        self._socket_id = socket_id
        self._closed = False
        self._close_code: int | None = None
        # This node is stopping (drain, shutdown): a seat with a resume token is carried over by the edge, as when
        # this node dies, rather than closed; and the feature lets go of nothing the seat takes along (its media).
        self.stopping = False

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def close_code(self) -> int | None:
        return self._close_code

    async def send_str(self, data: str, compress: int | None = None) -> None:
        # A push that cannot be delivered (Redis away, or the edge not subscribed for a moment) is dropped, as a
        # push to a browser whose connection is down would be; the watcher decides whether the edge is gone.
        with contextlib.suppress(ClusterUnavailable):
            if not await deliver(self._bus, self._edge, BRIDGE_OUT, {"s": self._socket_id, "t": data}):
                log.debug("bridged push not delivered", extra={"edge": self._edge})

    async def close(self, *, code: int = 1000, message: bytes = b"", drain: bool = True) -> bool:
        if self._closed:
            return False
        self._closed, self._close_code = True, code
        body: dict[str, Any] = {"s": self._socket_id, "close": code, "reason": message.decode(errors="replace")}
        if self.stopping:
            body["stopping"] = True
        with contextlib.suppress(ClusterUnavailable):
            await self._bus.send(self._edge, BRIDGE_OUT, body)
        return True


def carried_over(socket: SignalingSocket) -> bool:
    """Whether ``socket`` (bridged here) is let go because this node stops: its edge carries its seat over if this
    node left a resume token for it (:func:`keep_resumable`), so what the seat takes along must not be let go here."""
    return isinstance(socket.ws, BridgeWire) and socket.ws.stopping


def keep_resumable(socket: SignalingSocket, token: dict[str, Any] | None) -> None:
    """Leave the node holding ``socket`` (bridged here) what it needs to seat the socket again on the room's next
    home should this node die (None: nothing, the seat dies with this node). A browser's own socket here dies with
    this node: nothing to do."""
    bridge = socket.app.get(SIGNAL_BRIDGE)
    if bridge is not None and socket.bridged_from is not None:
        bridge.resumable(socket, token)


@dataclass
class _Remote:
    """A socket bridged here: the socket the feature sees, and its messages waiting their turn."""

    edge: str
    socket: SignalingSocket
    inbox: asyncio.Queue[tuple[int, str, dict[str, Any] | None] | None] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None
    join: int = 0


class SignalBridge:
    """Both sides of the bridge on one node (see the module docstring)."""

    def __init__(self, app: web.Application, node: ClusterNode) -> None:
        self._app = app
        self._node = node
        self._bus = node.bus
        self._edge: dict[str, SignalingSocket] = {}  # socket id -> a socket here whose room is elsewhere
        # Every socket here that joined a room on another node, and those nodes: what they send it is delivered
        # (seated there or not: a "left" or an error comes after the seat is gone), and they hear when it closes.
        self._bridged: dict[str, SignalingSocket] = {}
        self._bridged_to: dict[str, set[str]] = {}
        self._remotes: dict[tuple[str, str], _Remote] = {}  # (edge node, socket id) -> a socket bridged here
        self._joins = 0
        self._suspect: set[str] = set()  # nodes found not listening once (twice in a row: gone)
        self._watch: asyncio.Task[None] | None = None
        self._replies: set[asyncio.Task[bool]] = set()
        self._resuming: set[asyncio.Task[None]] = set()
        self._bus.on(BRIDGE_IN, self._arrived)
        self._bus.on(BRIDGE_OUT, self._returned)
        app[transport.CLOSED_LISTENERS].append(self._closed)

    @property
    def node_id(self) -> str:
        return self._node.node_id

    async def start(self) -> None:
        self._watch = asyncio.create_task(self._watch_peers(), name="signal bridge watch")

    async def close(self) -> None:
        """Stop watching; the sockets bridged here leave their seats and their edges are told to move on."""
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        for task in list(self._resuming):
            task.cancel()
        await asyncio.gather(*self._resuming, return_exceptions=True)
        await self.release_remotes()

    async def release_remotes(self) -> None:
        """Every socket bridged here: tell its edge to reconnect elsewhere (1012), then leave its seat."""
        remotes = list(self._remotes.values())
        for remote in remotes:
            if isinstance(remote.socket.ws, BridgeWire):
                remote.socket.ws.stopping = True
            remote.socket.close_soon(CLOSE_MOVED, "this server is stopping; join again")
            remote.inbox.put_nowait(None)
        await asyncio.gather(*(r.task for r in remotes if r.task is not None), return_exceptions=True)

    def counts(self) -> tuple[int, int]:
        """(edge seats here, sockets bridged here)."""
        return len(self._edge), len(self._remotes)

    # -- edge side ---------------------------------------------------------------------------------------

    async def join(self, socket: SignalingSocket, channel: BridgedChannel, home: str,
                   message: dict[str, Any], *, resume: dict[str, Any] | None = None) -> bool:
        """Seat ``socket`` on the bridge to ``home`` and send it the ``join`` (``resume``: carrying the seat over
        from a home that died, see the module docstring); False if ``home`` is not listening."""
        self._joins += 1
        socket.seat_in(channel, BridgeSeat(home, self._joins, message))
        self._edge[socket.id] = socket
        self._bridged[socket.id] = socket
        self._bridged_to.setdefault(socket.id, set()).add(home)
        context = socket.context
        who = {"user": {"id": context.user.id, "email": context.user.email, "displayName": context.user.display_name,
                        "role": context.user.role},
               "login": context.login_id, "via": context.via, "address": socket.address}
        body = {"s": socket.id, "op": "join", "j": self._joins, "who": who, "t": json.dumps(message)}
        if resume is not None:
            body["resume"] = resume
        delivered = await deliver(self._bus, home, BRIDGE_IN, body)
        seat = socket.seat
        if isinstance(seat, BridgeSeat):
            seat.sending = False
        if not delivered:
            self._forget_edge(socket)
        self._gauge()
        return delivered

    async def forward(self, socket: SignalingSocket, message: dict[str, Any]) -> None:
        """A message of a socket seated on the bridge, to its room's node."""
        seat = socket.seat
        assert isinstance(seat, BridgeSeat)
        delivered = await deliver(self._bus, seat.home, BRIDGE_IN, {"s": socket.id, "op": "text",
                                                                   "t": json.dumps(message)})
        if not delivered:
            self._home_gone(socket, seat.home)

    async def leave(self, socket: SignalingSocket) -> None:
        """The socket leaves its bridged seat (it closed, or joins something else)."""
        seat = self._forget_edge(socket)
        if seat is not None:
            self._bridged_to.get(socket.id, set()).discard(seat.home)
            with contextlib.suppress(ClusterUnavailable):
                await self._bus.send(seat.home, BRIDGE_IN, {"s": socket.id, "op": "close"})

    async def _closed(self, socket: SignalingSocket) -> None:
        """A socket here closed: every home it joined a room on lets go of its side (seated there or not)."""
        self._bridged.pop(socket.id, None)
        for home in self._bridged_to.pop(socket.id, ()):
            with contextlib.suppress(ClusterUnavailable):
                await self._bus.send(home, BRIDGE_IN, {"s": socket.id, "op": "close"})

    def _forget_edge(self, socket: SignalingSocket) -> BridgeSeat | None:
        seat = socket.seat if isinstance(socket.seat, BridgeSeat) else None
        if seat is not None:
            socket.unseat()
        self._edge.pop(socket.id, None)
        self._gauge()
        return seat

    def _home_gone(self, socket: SignalingSocket, home: str) -> None:
        channel = socket.channel
        seat = self._forget_edge(socket)
        if seat is not None and seat.resume is not None and isinstance(channel, BridgedChannel):
            log.warning("the node holding this socket's room is gone; its seat is carried over",
                        extra={"userId": socket.user_id, "home": home})
            task = asyncio.create_task(self._resume(socket, channel, seat, home), name=f"resume {socket.user_id}")
            self._resuming.add(task)
            task.add_done_callback(self._resuming.discard)
            return
        log.warning("the node holding this socket's room is gone; the browser will join again",
                    extra={"userId": socket.user_id, "home": home})
        socket.close_soon(CLOSE_MOVED, "the server holding this room went away; join again")

    async def _resume(self, socket: SignalingSocket, channel: BridgedChannel, seat: BridgeSeat, home: str) -> None:
        try:
            if await channel.resume(socket, seat.message, seat.resume or {}, frozenset({home})):
                log.info("seat carried over to the room's new home", extra={"userId": socket.user_id})
                return
        except SignalingError as exc:  # e.g. the stream ended meanwhile: the browser is told, as for its own join
            socket.error(exc.code, exc.message)
            return
        except Exception as exc:  # Redis away, no serving node, the database: the browser joins again instead
            log.warning("carrying a seat over failed", extra={"userId": socket.user_id, "error": str(exc)})
        if not socket.closed and socket.channel is None:
            socket.close_soon(CLOSE_MOVED, "the server holding this room went away; join again")

    def _returned(self, sender: str, body: dict[str, Any]) -> None:
        """``bridge-out``: what a home sends one of the sockets here."""
        socket = self._bridged.get(str(body.get("s")))
        if socket is None or sender not in self._bridged_to.get(socket.id, ()):
            return  # closed, or done with that node
        seat = socket.seat if isinstance(socket.seat, BridgeSeat) and socket.seat.home == sender else None
        if "t" in body:
            socket.send_raw(str(body["t"]))
        elif "close" in body:
            if seat is not None and seat.resume is not None and body.get("stopping"):
                self._home_gone(socket, sender)  # the home drains or shuts down: as if it died
                return
            if seat is not None:
                self._forget_edge(socket)
            socket.close_soon(int(body["close"]), str(body.get("reason", "")))
        elif body.get("unseated") and seat is not None and body.get("j") == seat.join:
            self._forget_edge(socket)
        elif "resume" in body and seat is not None and body.get("j") == seat.join:
            token = body["resume"]
            seat.resume = token if isinstance(token, dict) else None

    def resumable(self, socket: SignalingSocket, token: dict[str, Any] | None) -> None:
        """Home side of :func:`keep_resumable`: the token goes to the socket's edge, for its current join."""
        remote = self._remotes.get((socket.bridged_from or "", socket.id))
        if remote is None:
            return
        reply = asyncio.create_task(self._bus.send(remote.edge, BRIDGE_OUT,
                                                   {"s": socket.id, "resume": token, "j": remote.join}))
        self._replies.add(reply)
        reply.add_done_callback(self._sent)

    # -- home side ---------------------------------------------------------------------------------------

    def _arrived(self, sender: str, body: dict[str, Any]) -> None:
        """``bridge-in``: a message of a socket another node holds, for a room here."""
        key = (sender, str(body.get("s")))
        remote = self._remotes.get(key)
        op = body.get("op")
        if op == "close":
            if remote is not None:
                remote.inbox.put_nowait(None)
            return
        if remote is None:
            if op != "join":
                # We do not know this socket (this node dropped it while the edge still bridged it): start over.
                reply = asyncio.create_task(self._bus.send(sender, BRIDGE_OUT, {"s": key[1], "close": CLOSE_MOVED,
                                                                                "reason": "join again"}))
                self._replies.add(reply)
                reply.add_done_callback(self._sent)
                return
            remote = self._open(sender, key[1], body.get("who") or {})
        if remote.inbox.qsize() >= MAX_INBOX:
            log.warning("bridged socket flooding; closing it", extra={"userId": remote.socket.user_id})
            remote.socket.close_soon(CLOSE_MOVED, "too many messages")
            remote.inbox.put_nowait(None)
            return
        resume = body.get("resume") if op == "join" else None
        remote.inbox.put_nowait((int(body.get("j") or 0), str(body.get("t", "")),
                                 resume if isinstance(resume, dict) else None))

    def _sent(self, task: asyncio.Task[bool]) -> None:
        self._replies.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("bridge reply not sent: %s", task.exception())

    def _open(self, edge: str, socket_id: str, who: dict[str, Any]) -> _Remote:
        user = who.get("user") or {}
        context = AuthContext(user=User(id=str(user.get("id")), email=str(user.get("email")),
                                        display_name=str(user.get("displayName")), role=str(user.get("role"))),
                              login_id=str(who.get("login")), via=str(who.get("via")), csrf_token="")
        socket = SignalingSocket(BridgeWire(self._bus, edge, socket_id), context, self._app,
                                 str(who.get("address", "")), bridged_from=edge)
        socket.id = socket_id
        remote = _Remote(edge, socket)
        remote.task = asyncio.create_task(self._serve(remote), name=f"bridged socket {context.user.id}")
        self._remotes[(edge, socket_id)] = remote
        self._gauge()
        log.info("socket bridged here", extra={"userId": context.user.id, "edge": edge})
        return remote

    async def _serve(self, remote: _Remote) -> None:
        """The bridged socket's messages, one at a time, as the transport handles a local socket's."""
        socket = remote.socket
        try:
            while True:
                item = await remote.inbox.get()
                if item is None or socket.ws.closed:
                    break
                join, text, resume = item
                if join:
                    remote.join = join
                seated = socket.channel is not None
                socket.resume = resume
                try:
                    await transport.handle_text(socket, text)
                finally:
                    socket.resume = None
                if socket.channel is None and (seated or join):
                    await socket.flush()  # what it was sent before ("left", an error) reaches the edge first
                    with contextlib.suppress(ClusterUnavailable):
                        await self._bus.send(remote.edge, BRIDGE_OUT, {"s": socket.id, "unseated": True,
                                                                       "j": remote.join})
        except Exception:
            log.exception("bridged socket failed", extra={"userId": socket.user_id})
        finally:
            self._remotes.pop((remote.edge, socket.id), None)
            self._gauge()
            if socket.channel is not None:
                try:
                    await socket.channel.leave(socket)
                except Exception:
                    log.exception("leaving a bridged seat failed", extra={"userId": socket.user_id})
            await socket.finish()

    # -- both sides: who is still there ------------------------------------------------------------------

    async def _watch_peers(self) -> None:
        while True:
            await asyncio.sleep(WATCH_SECONDS)
            try:
                await self._check_peers()
            except ClusterUnavailable:
                self._suspect.clear()  # nothing is known while Redis is away; nobody is dropped for it
            except Exception:
                log.exception("signal bridge watch failed")

    async def _check_peers(self) -> None:
        homes = {s.seat.home for s in self._edge.values() if isinstance(s.seat, BridgeSeat)}
        edges = {r.edge for r in self._remotes.values()}
        peers = sorted(homes | edges)
        if not peers or not self._bus.subscribed.is_set():
            return
        listening = await self._bus.listening(peers)
        silent = {p for p, up in listening.items() if not up}
        gone, self._suspect = silent & self._suspect, silent - self._suspect
        for node_id in gone:
            for socket in [s for s in self._edge.values() if isinstance(s.seat, BridgeSeat)
                           and s.seat.home == node_id and not s.seat.sending]:
                self._home_gone(socket, node_id)
            for remote in [r for r in self._remotes.values() if r.edge == node_id]:
                log.info("the node holding a bridged socket is gone", extra={"userId": remote.socket.user_id,
                                                                               "edge": node_id})
                remote.inbox.put_nowait(None)

    def _gauge(self) -> None:
        self._node.metrics.bridged_sockets.labels("edge").set(len(self._edge))
        self._node.metrics.bridged_sockets.labels("home").set(len(self._remotes))


class BridgedChannel:
    """A feature's channel as the transport sees it in a cluster: a ``join`` for a room homed elsewhere goes over
    the bridge; anything else is the feature's own channel's (see the module docstring)."""

    def __init__(self, inner: Channel, bridge: SignalBridge, home_of: HomeOf) -> None:
        self.inner = inner
        self.field, self.noun, self.types = inner.field, inner.noun, inner.types
        self._bridge = bridge
        self._home_of = home_of

    async def join(self, socket: SignalingSocket, message: dict[str, Any]) -> None:
        if socket.bridged_from is not None:  # bridged to this node: the room is here
            await self.inner.join(socket, message)
            return
        gone: frozenset[str] = frozenset()
        for _ in range(3):
            home = await self._home_of(socket, message, gone)
            if home is None or home == self._bridge.node_id:
                if socket.channel is self:
                    await self.leave(socket)
                await self.inner.join(socket, message)
                return
            seat = socket.seat if socket.channel is self else None
            if isinstance(seat, BridgeSeat) and seat.home != home:
                await self.leave(socket)
            await socket.leave_other(self)
            if await self._bridge.join(socket, self, home, message):
                return
            gone = gone | {home}  # it stopped listening: the room is placed again, away from it
        raise ClusterUnavailable("the room's server keeps moving; try again in a moment")

    async def resume(self, socket: SignalingSocket, message: dict[str, Any], token: dict[str, Any],
                     gone: frozenset[str]) -> bool:
        """Seat ``socket`` again, its room's home gone: its ``join`` with the old home's ``token`` goes to the room's
        new home (placed away from ``gone``), or to the feature's own channel if that is here. True if seated."""
        for _ in range(3):
            if socket.closed:
                return False
            home = await self._home_of(socket, message, gone)
            if home is None or home == self._bridge.node_id:
                socket.resume = token
                try:
                    await self.inner.join(socket, message)
                finally:
                    socket.resume = None
                return socket.channel is not None
            if await self._bridge.join(socket, self, home, message, resume=token):
                return True
            gone = gone | {home}
        return False

    async def handle(self, socket: SignalingSocket, message: dict[str, Any]) -> None:
        await self._bridge.forward(socket, message)

    async def leave(self, socket: SignalingSocket) -> None:
        if socket.channel is self:
            await self._bridge.leave(socket)


SIGNAL_BRIDGE = web.AppKey("signal_bridge", SignalBridge)


def bridged(app: web.Application, channel: Channel, home_of: HomeOf) -> Channel:
    """``channel`` behind the bridge when this node is in a cluster; ``channel`` itself on one node."""
    bridge = app.get(SIGNAL_BRIDGE)
    return channel if bridge is None else BridgedChannel(channel, bridge, home_of)
