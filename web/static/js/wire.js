// The signaling socket's frames, for readings and live streams: one JSON object per text frame, with a `type`.

/** Send `message` if the socket is open; false when it is not (the caller's state says what to do then). */
export function sendJson(ws, message) {
  if (ws?.readyState !== WebSocket.OPEN) return false;
  ws.send(JSON.stringify(message));
  return true;
}

/** A server message as {type, detail} (detail: its other fields); {} for a frame that is not one. */
export function parseMessage(raw) {
  let message;
  try { message = JSON.parse(raw); } catch { return {}; }
  if (!message || typeof message.type !== "string") return {};
  const { type, ...detail } = message;
  return { type, detail };
}

/** Close a socket we are leaving on purpose (1000); a socket already closed is fine. */
export function closeLeaving(ws) {
  if (!ws) return;
  try { ws.close(1000, "leaving"); } catch { /* already closed */ }
}
