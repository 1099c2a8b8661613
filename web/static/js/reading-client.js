// SoulSeerClient (reading-client.js): one participant's side of a reading, as a plain ES module (no build step).
//
// The seed's hook surface: created with {sessionType, userId, autoAcceptCalls}; offers joinSession,
// leaveSession, toggleAudio, toggleVideo, sendChatMessage, localStream and remoteStreams; and reports what
// happens as DOM events (it is an EventTarget):
//   session-state  {status, billableSeconds, chargedCents, secondsLeft, balanceCents | earnedCents}
//   start-session  {session}          end-session {session, reason}
//   chat-message   {from, text, at, mine}
//   notification   {kind, ...}        incoming-request {sessionId, notification}   auto-accepted {session}
//   connection     {state, signaling, media}   state: connecting | connected | reconnecting | disconnected | closed
//   joined         {role, session}    local-stream {stream}   remote-stream {stream, track}
//   media-error    {kind: "camera" | "microphone", mode: "audio" | "chat", message}
//   error          {code, message}
//
// Media: one RTCPeerConnection to SoulSeer's relay. The browser always offers (sendrecv audio, plus video
// for a video reading; nothing for chat) and the relay answers; ICE servers come from the `joined` message.
// Signaling (WebSocket /ws, api/realtime/transport.py) reconnects by itself with backoff (./reconnect.js), and the peer connection
// is re-offered after an ICE failure, for as long as the server's grace period lasts.

import { trickleCandidates, waitForIceGathering } from "./ice.js";
import { FINAL_CLOSE_MESSAGE, finalClose, reconnectDelay } from "./reconnect.js";
import { closeLeaving, parseMessage, sendJson } from "./wire.js";

const ICE_GATHER_TIMEOUT_MS = 2500;
// Chrome reports `disconnected` on a brief loss and only `failed` after ~15-30 s; re-offer sooner than that.
const ICE_DISCONNECTED_GRACE_MS = 5000;
const MAX_CHAT_LENGTH = 2000;
// Notification kinds that concern a reading request (api/realtime/notifications.py KINDS).
const REQUEST_KIND = "session-requested";
// Errors that mean "join again": the reading moved to another server (a node drained or lost its lease); and,
// in answer to a join, the cluster's shared state did not answer for a moment (docs/cluster.md). The socket
// stays; the join is re-sent. (A chat message refused while Redis is away is only reported: media go on.)
const MOVED_CODE = "reading_moved";
const JOIN_RETRY_CODES = new Set(["cluster_unavailable", "no_serving_node"]);

export class SoulSeerClient extends EventTarget {
  constructor({ sessionType = "video", userId = null, autoAcceptCalls = false, graceSeconds = 60,
    signalingUrl = null, mediaDevices = globalThis.navigator?.mediaDevices } = {}) {
    super();
    if (!["chat", "audio", "video"].includes(sessionType)) throw new TypeError(`unknown sessionType ${sessionType}`);
    this.sessionType = sessionType;
    this.userId = userId;
    this.autoAcceptCalls = Boolean(autoAcceptCalls);
    this.graceSeconds = graceSeconds;
    this.signalingUrl = signalingUrl ?? defaultSignalingUrl();
    this.mediaDevices = mediaDevices;

    this.localStream = null;
    this.remoteStreams = [];
    // Every remote track in one stream, for a single <video> element.
    this.remoteStream = typeof MediaStream === "function" ? new MediaStream() : null;
    this.sessionId = null;
    this.session = null;
    this.role = null;
    this.audioEnabled = false;
    this.videoEnabled = false;
    this.sendingMode = sessionType;   // what we actually send after getUserMedia: video, audio or chat
    this.signalingState = "idle";     // idle | connecting | open | reconnecting | closed
    this.mediaState = sessionType === "chat" ? "none" : "new";

    this._ws = null;
    this._pc = null;
    this._pcGeneration = 0;
    this._iceServers = [];
    this._closing = false;
    this._ended = false;
    this._attempt = 0;
    this._reconnectTimer = null;
    this._rejoinTimer = null;
    this._lostSince = null;
    this._iceTimer = null;
    this._mediaReady = null;
    this._spare = null;         // a peer connection made before `joined` (see _prepareSpare)
    this._mediaDone = false;    // the camera and microphone were asked for, and answered
    this._handledRequests = new Set();
    this._lastConnection = null;
    this._joined = false;       // this socket has joined the reading (a `joined` arrived since it opened)
    this._recovering = false;   // connectivity was lost and is not fully back yet
  }

  // ---- public surface ----

  /** Open signaling without joining a reading (a reader's dashboard listens for requests this way). */
  connect() {
    if (!this._ws && !this._closing) this._openSocket();
  }

  /** Get ready to join before there is anything to join (a client waiting for the accept): the camera and
   * microphone now, and with the ICE servers the page gave, the first peer connection and its offer. */
  prepare({ iceServers = null } = {}) {
    if (this.sessionType !== "chat") this._mediaReady ??= this._acquireMedia();
    if (iceServers) this._prepareSpare(iceServers);
    return this._mediaReady ?? Promise.resolve();
  }

  /** Join a reading: the camera and microphone, the signaling socket and (given the ICE servers) the first
   * peer connection all at once, then `join`; `joined` is answered with the offer. */
  async joinSession(sessionId, { iceServers = null } = {}) {
    this.sessionId = sessionId;
    this._closing = false;
    this._ended = false;
    this._emitConnection();
    this.prepare({ iceServers });
    if (this._ws && this._ws.readyState === WebSocket.OPEN) {
      this._send({ type: "join", sessionId });
    } else if (!this._ws) {
      this._openSocket();  // its `open` sends the join
    }
    await this._mediaReady;
  }

  /** Leave this tab's side: stop the camera and microphone, close media and signaling, no more reconnects. */
  leaveSession() {
    this._closing = true;
    clearTimeout(this._reconnectTimer);
    clearTimeout(this._rejoinTimer);
    clearTimeout(this._iceTimer);
    this._dropSpare();
    this._closePeer();
    const ws = this._ws;
    this._ws = null;  // first: its close event then finds it is not the current socket
    closeLeaving(ws);
    if (this.localStream) {
      for (const track of this.localStream.getTracks()) track.stop();
    }
    this.signalingState = "closed";
    this.mediaState = this.sessionType === "chat" ? "none" : "closed";
    this._emitConnection();
  }

  /** Ask the server to end the reading for both sides; `end-session` follows with the totals. */
  endSession() {
    return this._send({ type: "end-session" });
  }

  /** Mute or unmute the microphone; returns whether it is now on. */
  toggleAudio() {
    const tracks = this.localStream?.getAudioTracks() ?? [];
    if (!tracks.length) return false;
    this.audioEnabled = !this.audioEnabled;
    for (const track of tracks) track.enabled = this.audioEnabled;
    return this.audioEnabled;
  }

  /** Turn the camera off or on; returns whether it is now on. */
  toggleVideo() {
    const tracks = this.localStream?.getVideoTracks() ?? [];
    if (!tracks.length) return false;
    this.videoEnabled = !this.videoEnabled;
    for (const track of tracks) track.enabled = this.videoEnabled;
    return this.videoEnabled;
  }

  /** Send a chat line; false when it is empty, too long or signaling is down (the UI says so). */
  sendChatMessage(text) {
    const clean = String(text ?? "").trim();
    if (!clean || clean.length > MAX_CHAT_LENGTH) return false;
    return this._send({ type: "chat-message", text: clean });
  }

  /** Accept a reading request (a reader); resolves to the session. */
  async acceptSession(sessionId) {
    const response = await fetch(`/api/webrtc/reader/accept-session/${encodeURIComponent(sessionId)}`, {
      method: "POST",
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRF-Token": csrfToken() },
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = body.error ?? { code: "error", message: `accept failed (${response.status})` };
      throw Object.assign(new Error(error.message), { code: error.code, status: response.status });
    }
    return body.session;
  }

  /** The peer connection's statistics (for diagnostics and tests), or null without media. */
  async getStats() {
    return this._pc ? this._pc.getStats() : null;
  }

  get connectionState() {
    return this._overallState();
  }

  // ---- media ----

  async _acquireMedia() {
    try {
      await this._openDevices();
    } finally {
      this._mediaDone = true;
    }
  }

  async _openDevices() {
    const wantVideo = this.sessionType === "video";
    const devices = this.mediaDevices;
    if (!devices?.getUserMedia) {
      this._mediaRefused(wantVideo ? "camera" : "microphone", "chat",
        "This browser can't use a camera or microphone here. The reading continues by chat.");
      return;
    }
    try {
      const constraints = { audio: true, video: wantVideo ? { width: { ideal: 640 }, height: { ideal: 480 } } : false };
      this._setLocalStream(await devices.getUserMedia(constraints));
      this.sendingMode = this.sessionType;
      return;
    } catch (error) {
      if (!wantVideo) {
        this._mediaRefused("microphone", "chat", describeMediaError(error, "microphone") +
          " You can still hear the reader and talk by chat.");
        return;
      }
    }
    try {
      this._setLocalStream(await devices.getUserMedia({ audio: true, video: false }));
      this.sendingMode = "audio";
      this._emit("media-error", { kind: "camera", mode: "audio",
        message: "We couldn't use your camera, so the reading continues with audio only. " +
          "You can still see the reader." });
    } catch (error) {
      this._mediaRefused("microphone", "chat", describeMediaError(error, "camera and microphone") +
        " You can still see and hear the reader and talk by chat.");
    }
  }

  _mediaRefused(kind, mode, message) {
    this.sendingMode = "chat";
    this._emit("media-error", { kind, mode, message });
  }

  _setLocalStream(stream) {
    this.localStream = stream;
    this.audioEnabled = stream.getAudioTracks().length > 0;
    this.videoEnabled = stream.getVideoTracks().length > 0;
    this._emit("local-stream", { stream });
  }

  // A peer connection with our tracks, and its offer (candidates gathered: see waitForIceGathering) on the way.
  // While the camera and microphone are still being opened, the peer connection does not wait for them: its
  // transceivers are made empty and ICE gathers at once; the tracks are put in (replaceTrack, which needs no new
  // offer) before the offer goes, and a device that was refused turns its transceiver receive-only (a new offer
  // then, still before anything was sent).
  async _buildPeer(iceServers) {
    const pc = new RTCPeerConnection({ iceServers });
    const peer = { pc, urls: serverUrls(iceServers), offerSent: false, ready: null };
    const kinds = this.sessionType === "video" ? ["audio", "video"] : ["audio"];
    const ready = this._mediaDone;
    const transceivers = kinds.map((kind) => {
      const track = ready ? this._localTrack(kind) : null;
      if (track) return pc.addTransceiver(track, { direction: "sendrecv", streams: [this.localStream] });
      return pc.addTransceiver(kind, { direction: ready ? "recvonly" : "sendrecv" });
    });
    pc.addEventListener("track", (event) => { if (pc === this._pc) this._onTrack(event); });
    trickleCandidates(pc, () => peer.offerSent && pc === this._pc, (message) => this._send(message));
    pc.addEventListener("connectionstatechange", () => {
      if (pc === this._pc) this._onPeerState(pc.connectionState);
    });
    peer.ready = (async () => {
      await pc.setLocalDescription(await pc.createOffer());
      const gathered = waitForIceGathering(pc, ICE_GATHER_TIMEOUT_MS);
      if (!ready) {
        await this._mediaReady;
        let changed = false;
        transceivers.forEach((transceiver, index) => {
          const track = this._localTrack(kinds[index]);
          if (track) {
            transceiver.sender.replaceTrack(track);
            transceiver.sender.setStreams?.(this.localStream);
          } else {
            transceiver.direction = "recvonly";
            changed = true;
          }
        });
        if (changed) await pc.setLocalDescription(await pc.createOffer());
      }
      await gathered;
    })();
    peer.ready.catch(() => {});  // awaited (and reported) by _startPeer
    return peer;
  }

  _localTrack(kind) {
    const tracks = kind === "audio" ? this.localStream?.getAudioTracks() : this.localStream?.getVideoTracks();
    return tracks?.[0] ?? null;
  }

  /** The first peer connection, made while signaling connects and joins (with the ICE servers the page gave),
   * so that `joined` is answered with an offer at once. */
  _prepareSpare(iceServers) {
    if (this.sessionType === "chat" || this._spare || this._pc) return;
    this._spare = this._buildPeer(iceServers);
  }

  _dropSpare() {
    const spare = this._spare;
    this._spare = null;
    spare?.then((peer) => peer.pc.close()).catch(() => {});
  }

  async _startPeer() {
    if (this.sessionType === "chat" || this._ended || this._closing) return;
    this._closePeer();
    const generation = ++this._pcGeneration;
    const spare = this._spare;
    this._spare = null;
    let peer = spare ? await spare.catch(() => null) : null;
    if (peer && peer.urls !== serverUrls(this._iceServers)) {
      peer.pc.close();
      peer = null;
    }
    peer ??= await this._buildPeer(this._iceServers);
    if (generation !== this._pcGeneration || this._ended || this._closing) {
      peer.pc.close();
      return;
    }
    this._pc = peer.pc;
    this.mediaState = "connecting";
    this._emitConnection();
    try {
      await peer.ready;
      if (generation !== this._pcGeneration) return;
      peer.offerSent = this._send({ type: "offer", sdp: peer.pc.localDescription.sdp });
    } catch (error) {
      this._emit("error", { code: "offer_failed", message: `Could not start media: ${error.message}` });
    }
  }

  _onTrack(event) {
    const stream = event.streams[0] ?? new MediaStream([event.track]);
    if (!this.remoteStreams.includes(stream)) this.remoteStreams.push(stream);
    if (this.remoteStream) {
      for (const old of this.remoteStream.getTracks().filter((t) => t.kind === event.track.kind)) {
        this.remoteStream.removeTrack(old);
      }
      this.remoteStream.addTrack(event.track);
    }
    this._emit("remote-stream", { stream, track: event.track, combined: this.remoteStream });
  }

  _onPeerState(state) {
    this.mediaState = state;
    clearTimeout(this._iceTimer);
    if (state === "connected") {
      this._attempt = 0;
      this._lostSince = null;
      this._recovering = false;
    } else if (state === "failed") {
      this._recoverMedia();
    } else if (state === "disconnected") {
      this._lostSince ??= Date.now();
      this._iceTimer = setTimeout(() => {
        if (this._pc?.connectionState === "disconnected") this._recoverMedia();
      }, ICE_DISCONNECTED_GRACE_MS);
    }
    this._emitConnection();
  }

  /** ICE failed: a new peer connection and a new offer, while the grace period lasts. */
  _recoverMedia() {
    if (this._ended || this._closing) return;
    this._lostSince ??= Date.now();
    if (this._pastGrace()) {
      this._emit("error", { code: "media_lost", message: "The media connection could not be restored." });
      return;
    }
    this.mediaState = "reconnecting";
    this._recovering = true;
    this._emitConnection();
    if (this._ws?.readyState === WebSocket.OPEN) this._startPeer();
    // Otherwise the socket's own reconnection re-joins, and `joined` starts a fresh peer connection.
  }

  _closePeer() {
    if (!this._pc) return;
    const pc = this._pc;
    this._pc = null;
    this._pcGeneration += 1;
    try { pc.close(); } catch { /* already closed */ }
  }

  // ---- signaling ----

  _openSocket() {
    this.signalingState = this._attempt ? "reconnecting" : "connecting";
    this._emitConnection();
    let ws;
    try {
      ws = new WebSocket(this.signalingUrl);
    } catch (error) {
      this._scheduleReconnect();
      return;
    }
    this._ws = ws;
    ws.addEventListener("open", () => {
      if (this._ws !== ws) return;
      this.signalingState = "open";
      if (this.sessionId) this._send({ type: "join", sessionId: this.sessionId });
      else this._attempt = 0;
      this._emitConnection();
    });
    ws.addEventListener("message", (event) => {
      if (this._ws === ws) this._onMessage(event.data);
    });
    ws.addEventListener("close", (event) => {
      if (this._ws !== ws) return;
      this._ws = null;
      const final = finalClose(event.code);
      if (final) {
        // The server closed for a reason a retry cannot fix (the login ended, or this tab flooded it).
        this._closing = true;
        this._emit("error", { code: final, message: FINAL_CLOSE_MESSAGE });
      }
      if (this._closing || this._ended) {
        this.signalingState = "closed";
        this._emitConnection();
        return;
      }
      this._lostSince ??= Date.now();
      this._joined = false;
      this._recovering = true;
      this.signalingState = "reconnecting";
      this._emitConnection();
      this._scheduleReconnect();
    });
  }

  _scheduleReconnect() {
    if (this._closing || this._ended) return;
    if (this.sessionId && this._pastGrace(10)) {
      this.signalingState = "closed";
      this._emitConnection();
      this._emit("error", { code: "connection_lost", message: "The connection to SoulSeer was lost." });
      return;
    }
    const delay = reconnectDelay(this._attempt);
    this._attempt += 1;
    clearTimeout(this._reconnectTimer);
    this._reconnectTimer = setTimeout(() => this._openSocket(), delay);
  }

  _pastGrace(extraSeconds = 0) {
    return this._lostSince !== null && Date.now() - this._lostSince > (this.graceSeconds + extraSeconds) * 1000;
  }

  _send(message) {
    return sendJson(this._ws, message);
  }

  _onMessage(raw) {
    const { type, detail } = parseMessage(raw);
    if (!type) return;
    switch (type) {
      case "joined":
        this._attempt = 0;
        this._lostSince = null;
        this._joined = true;
        if (this.sessionType === "chat") this._recovering = false;
        else this.mediaState = "connecting";  // a fresh peer connection follows; the old one is let go
        this.role = detail.role ?? null;
        this._iceServers = Array.isArray(detail.iceServers) ? detail.iceServers : [];
        if (detail.session) this.session = detail.session;
        this._emit("joined", detail);
        this._emitConnection();
        if (detail.session?.status === "ended") {
          this._finish({ session: detail.session, reason: detail.session.endReason });
        } else {
          this._startPeer();
        }
        break;
      case "answer":
        this._onAnswer(detail.sdp);
        break;
      case "ice-candidate":
        if (this._pc && detail.candidate) this._pc.addIceCandidate(detail.candidate).catch(() => {});
        break;
      case "start-session":
        if (detail.session) this.session = detail.session;
        this._emit("start-session", detail);
        break;
      case "end-session":
        this._finish(detail);
        break;
      case "session-state":
        this.session = { ...(this.session ?? {}), ...pick(detail, ["status", "billableSeconds", "chargedCents"]) };
        this._emit("session-state", detail);
        break;
      case "chat-message":
        this._emit("chat-message", { ...detail, mine: detail.from === this.userId ||
          detail.from?.id === this.userId });
        break;
      case "notification":
        this._emit("notification", detail);
        this._maybeAutoAccept(detail);
        break;
      case "error":
        if ((detail.code === MOVED_CODE || (JOIN_RETRY_CODES.has(detail.code) && !this._joined)) &&
            this._rejoinSoon()) break;
        this._emit("error", { code: detail.code ?? "error", message: detail.message ?? "Something went wrong." });
        break;
      default:
        this._emit(type, detail);
    }
  }

  /** Send the join again after a backoff (the reading moved, or the cluster was briefly unavailable); false when
   *  there is nothing to re-join. Media pauses meanwhile, which the meter does not bill. */
  _rejoinSoon() {
    if (!this.sessionId || this._ended || this._closing) return false;
    this._joined = false;
    this._recovering = true;
    this._lostSince ??= Date.now();
    this._emitConnection();
    const delay = reconnectDelay(this._attempt);
    this._attempt += 1;
    clearTimeout(this._rejoinTimer);
    this._rejoinTimer = setTimeout(() => {
      if (this._ws?.readyState === WebSocket.OPEN && !this._ended) this._send({ type: "join", sessionId: this.sessionId });
    }, delay);
    return true;
  }

  async _onAnswer(sdp) {
    const pc = this._pc;
    if (!pc || pc.signalingState !== "have-local-offer" || typeof sdp !== "string") return;
    try {
      await pc.setRemoteDescription({ type: "answer", sdp });
    } catch (error) {
      this._emit("error", { code: "answer_failed", message: `Could not connect media: ${error.message}` });
    }
  }

  _finish(detail) {
    if (this._ended) return;
    this._ended = true;
    if (detail.session) this.session = detail.session;
    this.leaveSession();
    this._emit("end-session", detail);
  }

  _maybeAutoAccept(notification) {
    const sessionId = notification.sessionId ?? notification.session?.id;
    if (sessionId && notification.kind === REQUEST_KIND) this.handleIncomingRequest(sessionId, notification);
  }

  /** A request reached this reader (by notification or by polling): announce it once, accept it if asked to. */
  async handleIncomingRequest(sessionId, notification = null) {
    if (this._handledRequests.has(sessionId)) return;
    this._handledRequests.add(sessionId);
    this._emit("incoming-request", { sessionId, notification });
    if (!this.autoAcceptCalls) return;
    try {
      const session = await this.acceptSession(sessionId);
      this._emit("auto-accepted", { session });
    } catch (error) {
      this._emit("error", { code: error.code ?? "accept_failed", message: error.message });
    }
  }

  // ---- events ----

  _overallState() {
    if (this._ended || this._closing) return "closed";
    if (!this.sessionId) return this.signalingState === "open" ? "connected" : "connecting";
    const back = this.signalingState === "open" && this._joined &&
      (this.sessionType === "chat" || this.mediaState === "connected");
    if (back) return "connected";
    if (this._recovering || this.signalingState === "reconnecting" || this.mediaState === "reconnecting" ||
        this.mediaState === "disconnected" || this.mediaState === "failed") return "reconnecting";
    return "connecting";
  }

  _emitConnection() {
    const state = this._overallState();
    const key = `${state}/${this.signalingState}/${this.mediaState}`;
    if (key === this._lastConnection) return;
    this._lastConnection = key;
    this._emit("connection", { state, signaling: this.signalingState, media: this.mediaState });
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

export function defaultSignalingUrl() {
  if (typeof location === "undefined") return "/ws";
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
}

function csrfToken() {
  return globalThis.document?.querySelector('meta[name="csrf-token"]')?.content ?? "";
}

// What a peer connection's ICE configuration is, for comparing: the servers' addresses (credentials may differ
// between two issues of the same short-lived TURN login, and both work).
function serverUrls(iceServers) {
  return JSON.stringify((iceServers ?? []).map((server) => server.urls));
}

function pick(source, keys) {
  const out = {};
  for (const key of keys) if (source[key] !== undefined) out[key] = source[key];
  return out;
}

function describeMediaError(error, what) {
  if (error?.name === "NotAllowedError" || error?.name === "SecurityError") {
    return `You didn't allow the ${what}.`;
  }
  if (error?.name === "NotFoundError" || error?.name === "OverconstrainedError") {
    return `No ${what} was found.`;
  }
  if (error?.name === "NotReadableError") {
    return `The ${what} is in use by another application.`;
  }
  return `We couldn't use your ${what}.`;
}
