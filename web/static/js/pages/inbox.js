// The message inbox: conversations with unread counts, one conversation, and writing (a client's message to
// a reader who charges for messages is paid when sent, and refunded if the reader does not answer in time).
import { api } from "../api.js";
import { localTime, money } from "../format.js";
import { pageData, setNavBalance } from "../layout.js";
import { PRICE_CHANGED, priceChangedText } from "../prices.js";

const data = pageData();
const me = data.user?.id;
const threadsList = document.querySelector("[data-threads]");
const noThreads = document.querySelector("[data-no-threads]");
const threadView = document.querySelector("[data-thread-view]");
const title = document.querySelector("[data-thread-title]");
const log = document.querySelector("[data-messages]");
const price = document.querySelector("[data-price]");
const form = document.querySelector("[data-message-form]");
const error = document.querySelector("[data-message-error]");
let threadId = data.threadId;
let pendingRequest = null; // the message being sent, kept with its request id until it is sent
let shownPrice = null; // what this page told the client a message costs: what they confirm when sending

const ERRORS = {
  insufficient_funds: "Your balance doesn't cover this message.",
  rate_limited: "You are sending messages very fast; wait a moment.",
};

async function loadThreads() {
  const { threads } = await api("/api/messages/threads");
  noThreads.hidden = threads.length > 0;
  threadsList.replaceChildren(...threads.map((thread) => {
    const li = document.createElement("li");
    li.className = "thread-item";
    li.dataset.threadId = thread.id;
    if (thread.id === threadId) li.classList.add("current");
    const link = document.createElement("a");
    link.href = `/messages/${encodeURIComponent(thread.id)}`;
    link.className = "grow";
    const name = document.createElement("strong");
    name.textContent = thread.with.displayName;
    const preview = document.createElement("span");
    preview.className = "muted preview";
    preview.textContent = thread.lastMessage?.preview ?? "";
    link.append(name, preview);
    li.append(link);
    if (thread.unreadCount) {
      const badge = document.createElement("span");
      badge.className = "count-badge";
      badge.dataset.unread = "";
      badge.textContent = String(thread.unreadCount);
      badge.setAttribute("aria-label", `${thread.unreadCount} unread`);
      li.append(badge);
    }
    return li;
  }));
}

function bubble(message) {
  const li = document.createElement("li");
  if (message.senderId === me) li.classList.add("mine");
  const body = document.createElement("div");
  body.className = "bubble";
  body.textContent = message.body;
  const meta = document.createElement("div");
  meta.className = "meta";
  const when = localTime(message.createdAt);
  let note = "";
  if (message.priceCents) note = message.refundedAt ? ` · ${money(message.priceCents)} refunded` : ` · ${money(message.priceCents)}`;
  meta.textContent = `${when}${note}`;
  li.append(body, meta);
  return li;
}

async function loadThread() {
  if (!threadId) return;
  const { thread, messages } = await api(`/api/messages/threads/${encodeURIComponent(threadId)}`);
  title.textContent = thread.with.displayName;
  log.replaceChildren(...messages.map(bubble));
  log.scrollTop = log.scrollHeight;
  if (thread.unreadCount) {
    await api(`/api/messages/threads/${encodeURIComponent(threadId)}/read`, { method: "POST" });
    await loadThreads();
  }
}

function showPrice(cents) {
  if (data.user?.role !== "client" || cents === null || cents === undefined) return;
  shownPrice = cents;
  price.hidden = false;
  price.textContent = cents
    ? `Each message costs ${money(cents)}, charged when sent; refunded if not answered within ${data.refundHours} hours.`
    : "Messages to this reader are free.";
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.textContent = "";
  const input = form.elements.namedItem("body");
  const body = input.value.trim();
  if (!body) return;
  const target = threadId ? { threadId } : { readerId: data.newReader.id };
  pendingRequest ??= { body, id: crypto.randomUUID() };
  if (pendingRequest.body !== body) pendingRequest = { body, id: crypto.randomUUID() };
  const requestId = pendingRequest.id;
  form.querySelector("button").disabled = true;
  // A client confirms the price shown (0 when the reader charges nothing); a reader's answers are free.
  const confirmed = data.user?.role === "client" ? { expectedCents: shownPrice ?? 0 } : {};
  try {
    // One request id per message typed: a retry after a network blip cannot pay twice.
    const sent = await api("/api/messages", { method: "POST", body: { ...target, body, requestId, ...confirmed } });
    input.value = "";
    pendingRequest = null;
    if (!threadId) {
      window.location.assign(`/messages/${encodeURIComponent(sent.thread.id)}`);
      return;
    }
    log.append(bubble(sent.message));
    log.scrollTop = log.scrollHeight;
    if (sent.message.priceCents) {
      const balance = await api("/api/webrtc/client/balance").catch(() => null);
      if (balance) setNavBalance(balance.balanceCents, money);
    }
    await loadThreads();
  } catch (failure) {
    if (failure.code === PRICE_CHANGED) {
      showPrice(failure.details.priceCents);
      error.textContent = priceChangedText(failure, {
        what: `a message to ${title.textContent}`, again: "Press Send again to send it at the new price." });
      return;
    }
    error.textContent = ERRORS[failure.code] ?? failure.message;
    if (failure.code === "insufficient_funds") {
      const link = document.createElement("a");
      link.href = "/wallet";
      link.textContent = " Add funds";
      error.append(link);
    }
  } finally {
    form.querySelector("button").disabled = false;
  }
});
form.elements.namedItem("body").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    form.requestSubmit();
  }
});

// New messages arrive as stored notifications pushed over the signaling socket.
let attempt = 0;
function listen() {
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws`);
  ws.addEventListener("open", () => { attempt = 0; });
  ws.addEventListener("message", async (event) => {
    let message;
    try { message = JSON.parse(event.data); } catch { return; }
    if (message.type !== "notification" || !["message", "message-refund"].includes(message.kind)) return;
    if (message.threadId === threadId) await loadThread();
    await loadThreads();
  });
  ws.addEventListener("close", () => {
    attempt += 1;
    setTimeout(listen, Math.min(8000, 500 * 2 ** attempt));
  });
}

if (data.newReader) {
  threadView.hidden = false;
  title.textContent = data.newReader.displayName;
  showPrice(data.newReader.messageCents);
}
showPrice(data.messageCents);
await loadThreads();
await loadThread();
listen();
