// "A reader you follow is online": a signed-in client's page listens on the signaling socket for the stored
// notifications pushed live (reader-online and the like), shows each as a toast with a link, and bumps the
// unread count. Reconnects with backoff; the notification is stored anyway, so a gap loses nothing.
import { setUnreadCount } from "./layout.js";

const LIVE_KINDS = new Set(["reader-online", "review-reply", "tip-received", "review-posted"]);

function show(message) {
  const region = document.querySelector("[data-toasts]");
  if (!region) return;
  const item = document.createElement("div");
  item.className = "toast";
  item.dataset.liveAlert = message.kind;
  const text = document.createElement("span");
  text.textContent = message.message ?? "";
  item.append(text);
  if (typeof message.url === "string" && message.url.startsWith("/readers/")) {
    const link = document.createElement("a");
    link.href = message.url;
    link.textContent = " See profile";
    item.append(link);
  }
  region.append(item);
  setTimeout(() => item.remove(), 15000);
}

export function listenForAlerts() {
  let attempt = 0;
  const connect = () => {
    const ws = new WebSocket(`${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws`);
    ws.addEventListener("open", () => {
      attempt = 0;
      document.documentElement.dataset.liveAlerts = "open";
    });
    ws.addEventListener("message", (event) => {
      let message;
      try { message = JSON.parse(event.data); } catch { return; }
      if (message.type !== "notification" || !LIVE_KINDS.has(message.kind)) return;
      show(message);
      const badge = document.querySelector("[data-unread-count]");
      setUnreadCount(Number(badge?.textContent || 0) + 1);
    });
    ws.addEventListener("close", () => {
      document.documentElement.dataset.liveAlerts = "closed";
      attempt += 1;
      setTimeout(connect, Math.min(8000, 500 * 2 ** attempt));
    });
  };
  connect();
}
