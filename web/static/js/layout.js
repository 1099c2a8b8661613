// What every page shares: its JSON data block, the log-out button, local times, and toasts.
import { api, sentence } from "./api.js";
import { localTime } from "./format.js";

export function pageData() {
  const block = document.getElementById("page-data");
  if (!block) return {};
  try { return JSON.parse(block.textContent || "{}") ?? {}; } catch { return {}; }
}

export function toast(message, { timeout = 5000 } = {}) {
  const region = document.querySelector("[data-toasts]");
  if (!region) return;
  const item = document.createElement("div");
  item.className = "toast";
  item.textContent = sentence(message);  // a server's words too: "the reading has ended" reads as a sentence
  region.append(item);
  setTimeout(() => item.remove(), timeout);
}

export function setUnreadCount(count) {
  const badge = document.querySelector("[data-unread-count]");
  if (!badge) return;
  badge.textContent = String(count);
  badge.hidden = !count;
}

export function setNavBalance(cents, format) {
  const slot = document.querySelector("[data-nav-balance]");
  if (slot) slot.textContent = format(cents);
}

function wireLogout() {
  for (const button of document.querySelectorAll('[data-action="logout"]')) {
    button.addEventListener("click", async () => {
      button.disabled = true;
      try { await api("/api/auth/logout", { method: "POST" }); } catch { /* the cookie may be gone already */ }
      window.location.assign("/login");
    });
  }
}

function localizeTimes() {
  for (const el of document.querySelectorAll("time[datetime]")) {
    const text = localTime(el.getAttribute("datetime"));
    if (text) el.textContent = text;
  }
}

wireLogout();
localizeTimes();
