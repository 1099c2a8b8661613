// What the watch page and the reader's studio both show: viewer count, leaderboard, chat and gift animations.
import { localTime, money } from "./format.js";

const ICONS = new Set(["candle", "crystal-ball", "heart", "moon", "rose", "star"]);
const ANIMATION_MS = 4200;

export function giftIcon(icon) {
  if (ICONS.has(icon)) {
    const img = document.createElement("img");
    img.className = "gift-icon";
    img.src = `/static/icons/gifts/${icon}.svg`;
    img.alt = "";
    return img;
  }
  const span = document.createElement("span");
  span.className = "gift-icon";
  span.setAttribute("aria-hidden", "true");
  span.textContent = icon ?? "🎁";
  return span;
}

export class StreamView {
  constructor(root, { userId }) {
    this.userId = userId;
    this.viewerCount = root.querySelector("[data-viewer-count]");
    this.board = root.querySelector("[data-leaderboard]");
    this.boardEmpty = root.querySelector("[data-board-empty]");
    this.chatLog = root.querySelector("[data-chat-log]");
    this.overlay = root.querySelector("[data-gift-overlay]");
    this.giftTotal = root.querySelector("[data-gift-total]");
  }

  state({ viewerCount, leaderboard }) {
    if (this.viewerCount && Number.isInteger(viewerCount)) this.viewerCount.textContent = String(viewerCount);
    if (Array.isArray(leaderboard)) this.leaderboard(leaderboard);
  }

  leaderboard(entries) {
    if (!this.board) return;
    this.board.replaceChildren(...entries.map((entry) => {
      const li = document.createElement("li");
      if (entry.userId === this.userId) li.classList.add("me");
      const rank = document.createElement("span");
      rank.className = "rank";
      rank.textContent = String(entry.rank);
      const name = document.createElement("span");
      name.className = "grow";
      name.textContent = entry.displayName;
      const total = document.createElement("span");
      total.className = "tabular";
      total.textContent = money(entry.totalCents);
      li.append(rank, name, total);
      return li;
    }));
    if (this.boardEmpty) this.boardEmpty.hidden = entries.length > 0;
    if (this.giftTotal) this.giftTotal.textContent = money(entries.reduce((sum, e) => sum + e.totalCents, 0));
  }

  // A gift floats up over the video with the sender's name, then goes away (also with reduced motion).
  gift({ fromName, name, icon, priceCents }) {
    if (!this.overlay) return;
    const item = document.createElement("div");
    item.className = "gift-flight";
    item.dataset.giftFlight = "";
    const text = document.createElement("span");
    text.className = "gift-text";
    const who = document.createElement("strong");
    who.textContent = fromName ?? "Someone";
    text.append(who, ` sent ${name} · ${money(priceCents)}`);
    item.append(giftIcon(icon), text);
    this.overlay.append(item);
    setTimeout(() => item.remove(), ANIMATION_MS);
  }

  chat({ from, fromName, role, text, at }) {
    if (!this.chatLog) return;
    const li = document.createElement("li");
    const mine = from === this.userId;
    if (mine) li.classList.add("mine");
    const bubble = document.createElement("div");
    bubble.className = "bubble";
    bubble.textContent = text;
    const meta = document.createElement("div");
    meta.className = "meta";
    meta.textContent = `${mine ? "You" : fromName ?? ""}${role === "publisher" ? " (host)" : ""} · ${
      localTime(at, { timeOnly: true })}`;
    li.append(bubble, meta);
    this.chatLog.append(li);
    this.chatLog.scrollTop = this.chatLog.scrollHeight;
  }

  system(text) {
    if (!this.chatLog) return;
    const li = document.createElement("li");
    li.className = "system";
    li.textContent = text;
    this.chatLog.append(li);
    this.chatLog.scrollTop = this.chatLog.scrollHeight;
  }
}

export function showConnection(slot, state) {
  if (!slot) return;
  const text = { connecting: "Connecting…", connected: "Connected", reconnecting: "Reconnecting…",
    closed: "Disconnected" }[state] ?? state;
  slot.textContent = text;
  slot.className = `conn ${state === "closed" ? "disconnected" : state}`;
}

export function wireChat(form, client, view) {
  form?.addEventListener("submit", (event) => {
    event.preventDefault();
    const input = form.elements.namedItem("text");
    if (client.sendChat(input.value)) input.value = "";
    else if (input.value.trim()) view.system("Your message was not sent: you are not connected.");
  });
}
