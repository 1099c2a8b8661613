// StreamClient: one tab on a live stream, as its publisher (the stream's reader) or a viewer.
//
// Signaling is the same WebSocket as readings (/ws, api/realtime/transport.py): `join {streamId}`; the server says
// `joined {role: "publisher" | "viewer", iceServers, stream}`; the browser offers (publisher: sendonly camera
// and microphone; viewer: recvonly) and the relay answers. It reports what happens as DOM events:
//   joined {role, stream}   stream-state {viewerCount, leaderboard, status}
//   gift {from, fromName, giftId, name, priceCents, icon}   chat-message {from, fromName, role, text, at}   notification {kind, ...}   local-stream {stream}   remote-stream {stream}
//   connection {state}  (connecting | connected | reconnecting | closed)   media-error {message}   error {code, message}
// The socket reconnects with backoff and re-joins (a fresh peer connection) until the stream ends or leave(),
// or the server closes it for good (./reconnect.js: the login ended, or a flood).

import { trickleCandidates, waitForIceGathering } from "./ice.js";
import { FINAL_CLOSE_MESSAGE, finalClose, reconnectDelay } from "./reconnect.js";
import { closeLeaving, parseMessage, sendJson } from "./wire.js";

const ICE_GATHER_TIMEOUT_MS = 2500;

export class StreamClient extends EventTarget {
  constructor({ streamId, signalingUrl = null, mediaDevices = globalThis.navigator?.mediaDevices } = {}) {
    super();
    this.streamId = streamId;
    this.signalingUrl = signalingUrl ?? `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws`;
    this.mediaDevices = mediaDevices;
    this.role = null;
    this.localStream = null;
    this.remoteStream = typeof MediaStream === "function" ? new MediaStream() : null;
    this.ended = false;
    this._ws = null;
    this._pc = null;
    this._generation = 0;
    this._iceServers = [];
    this._attempt = 0;
    this._closing = false;
    this._timer = null;
  }

  start() {
    this._closing = false;
    this._open();
  }

  sendChat(text) {
    const clean = String(text ?? "").trim();
    if (!clean || clean.length > 500) return false;
    return this._send({ type: "chat-message", text: clean });
  }

  /** The peer connection's statistics (frames decoded, ...), or null before media starts. */
  getStats() {
    return this._pc ? this._pc.getStats() : Promise.resolve(null);
  }

  endStream() {
    return this._send({ type: "end-stream" });
  }

  leave() {
    this._closing = true;
    clearTimeout(this._timer);
    this._closePeer();
    const ws = this._ws;
    this._ws = null;  // first: its close event then finds it is not the current socket
    closeLeaving(ws);
    for (const track of this.localStream?.getTracks() ?? []) track.stop();
    this._emit("connection", { state: "closed" });
  }

  // ---- signaling ----

  _open() {
    this._emit("connection", { state: this._attempt ? "reconnecting" : "connecting" });
    const ws = new WebSocket(this.signalingUrl);
    this._ws = ws;
    ws.addEventListener("open", () => {
      if (this._ws === ws) this._send({ type: "join", streamId: this.streamId });
    });
    ws.addEventListener("message", (event) => {
      if (this._ws === ws) this._onMessage(event.data);
    });
    ws.addEventListener("close", (event) => {
      if (this._ws !== ws) return;
      this._ws = null;
      this._closePeer();
      const final = finalClose(event.code);
      if (final && !this._closing && !this.ended) {
        this._closing = true;
        this._emit("error", { code: final, message: FINAL_CLOSE_MESSAGE });
        this._emit("connection", { state: "closed" });
      }
      if (this._closing || this.ended) return;
      this._emit("connection", { state: "reconnecting" });
      const delay = reconnectDelay(this._attempt);
      this._attempt += 1;
      this._timer = setTimeout(() => this._open(), delay);
    });
  }

  _send(message) {
    return sendJson(this._ws, message);
  }

  async _onMessage(raw) {
    const { type, detail } = parseMessage(raw);
    if (!type) return;
    switch (type) {
      case "joined":
        this._attempt = 0;
        this.role = detail.role;
        this._iceServers = Array.isArray(detail.iceServers) ? detail.iceServers : [];
        this._emit("joined", detail);
        await this._startPeer();
        break;
      case "answer":
        try {
          await this._pc?.setRemoteDescription({ type: "answer", sdp: detail.sdp });
        } catch (error) {
          this._emit("error", { code: "answer_failed", message: error.message });
        }
        break;
      case "stream-state":
        if (detail.status === "ended") {
          this.ended = true;
          this._closePeer();
          for (const track of this.localStream?.getTracks() ?? []) track.stop();
        }
        this._emit("stream-state", detail);
        break;
      case "gift":
      case "chat-message":
      case "notification":
        this._emit(type, detail);
        break;
      case "error":
        if (detail.code === "stream_ended" || detail.code === "unknown_stream") this.ended = true;
        this._emit("error", detail);
        break;
      default:
        break;
    }
  }

  // ---- media ----

  async _startPeer() {
    this._closePeer();
    const generation = ++this._generation;
    const pc = new RTCPeerConnection({ iceServers: this._iceServers });
    this._pc = pc;
    if (this.role === "publisher") {
      if (!this.localStream) {
        try {
          this.localStream = await this.mediaDevices.getUserMedia({ audio: true, video: true });
        } catch (error) {
          this._emit("media-error", { message: `Your camera or microphone is not available (${error.name}).` });
          return;
        }
        this._emit("local-stream", { stream: this.localStream });
      }
      if (generation !== this._generation) return;
      for (const track of this.localStream.getTracks()) {
        pc.addTransceiver(track, { direction: "sendonly", streams: [this.localStream] });
      }
    } else {
      pc.addTransceiver("audio", { direction: "recvonly" });
      pc.addTransceiver("video", { direction: "recvonly" });
      pc.addEventListener("track", (event) => {
        if (!this.remoteStream) return;
        for (const old of this.remoteStream.getTracks().filter((t) => t.kind === event.track.kind)) {
          this.remoteStream.removeTrack(old);
        }
        this.remoteStream.addTrack(event.track);
        this._emit("remote-stream", { stream: this.remoteStream, track: event.track });
      });
    }
    let offered = false;
    trickleCandidates(pc, () => offered && generation === this._generation, (message) => this._send(message));
    pc.addEventListener("connectionstatechange", () => {
      if (generation !== this._generation) return;
      const state = pc.connectionState;
      if (state === "connected") this._emit("connection", { state: "connected" });
      else if (state === "failed" && !this.ended && !this._closing) this._startPeer();
    });
    await pc.setLocalDescription(await pc.createOffer());
    await waitForIceGathering(pc, ICE_GATHER_TIMEOUT_MS);
    if (generation !== this._generation) return;
    offered = this._send({ type: "offer", sdp: pc.localDescription.sdp });
  }

  _closePeer() {
    this._generation += 1;
    if (this._pc) {
      try { this._pc.close(); } catch { /* already closed */ }
      this._pc = null;
    }
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
