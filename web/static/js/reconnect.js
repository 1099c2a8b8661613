// The signaling socket's reconnect rule, one copy for readings and live streams: when to give up, and how long
// to wait before the next try.
//
// A close with one of FINAL_CLOSE_CODES (api/realtime/socket.py) is final: the login ended (4401) or this tab
// flooded the server (4429), and a retry cannot fix either. Anything else is retried with exponential backoff
// and jitter, so a restart of the server is not met by every tab at the same instant.

export const RECONNECT_BASE_MS = 500;
export const RECONNECT_MAX_MS = 8000;
export const FINAL_CLOSE_CODES = Object.freeze({ 4401: "unauthorized", 4429: "rate_limited" });

/** The error code of a final close ("unauthorized" | "rate_limited"), or null when reconnecting may help. */
export function finalClose(code) {
  return FINAL_CLOSE_CODES[code] ?? null;
}

/** Milliseconds to wait before try number `attempt` (0 for the first retry). */
export function reconnectDelay(attempt, random = Math.random) {
  return Math.min(RECONNECT_MAX_MS, RECONNECT_BASE_MS * 2 ** attempt) * (0.75 + random() * 0.5);
}

/** The message shown when the server closed for good. */
export const FINAL_CLOSE_MESSAGE = "The connection to SoulSeer was closed.";
