// How numbers read on a page. Money is integer cents; it is only divided for display.

export function money(cents) {
  const value = Math.trunc(Number(cents) || 0);
  const sign = value < 0 ? "-" : "";
  const abs = Math.abs(value);
  const dollars = Math.floor(abs / 100).toLocaleString("en-US");
  return `${sign}$${dollars}.${String(abs % 100).padStart(2, "0")}`;
}

export function clock(seconds) {
  const s = Math.max(0, Math.floor(Number(seconds) || 0));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${r}` : `${m}:${r}`;
}

export function spokenDuration(seconds) {
  const s = Math.max(0, Math.round(Number(seconds) || 0));
  if (s < 60) return `${s} second${s === 1 ? "" : "s"}`;
  const m = Math.floor(s / 60);
  const r = s % 60;
  return `${m} min${r ? ` ${r} s` : ""}`;
}

// Every time on every page reads one way, in the viewer's own locale and time zone: "Dec 1, 2026, 9:15 AM"
// (a chat line, within one reading, gives the time part alone: "9:15 AM").
const DATE_TIME = { dateStyle: "medium", timeStyle: "short" };
const TIME_ONLY = { timeStyle: "short" };

// (`timeZone`: another zone than the viewer's, named beside it, e.g. the reader's own time on a booking page.)
export function localTime(iso, { timeOnly = false, timeZone = undefined } = {}) {
  if (!iso) return "";
  const date = iso instanceof Date ? iso : new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  return date.toLocaleString(undefined, { ...(timeOnly ? TIME_ONLY : DATE_TIME), ...(timeZone ? { timeZone } : {}) });
}

export function parseDollars(text) {
  // "12", "12.5", "$12.50" -> cents (integer), or null. No floating-point money: split on the dot.
  const match = /^\s*\$?\s*(\d{1,7})(?:\.(\d{1,2}))?\s*$/.exec(String(text));
  if (!match) return null;
  return Number(match[1]) * 100 + Number((match[2] ?? "0").padEnd(2, "0"));
}
