// Home: a client starts a chat, audio or video reading with an online reader.
import { api } from "../api.js";
import { pageData } from "../layout.js";

const data = pageData();

const EXPLAIN = {
  insufficient_funds: "Your balance doesn't cover a first minute with this reader.",
  reader_unavailable: "This reader has just gone offline or started another reading.",
  reader_offline: "This reader has just gone offline.",
  reader_busy: "This reader is in another reading right now.",
};

for (const card of document.querySelectorAll("[data-reader-id]")) {
  const errorSlot = card.querySelector("[data-card-error]");
  for (const button of card.querySelectorAll("[data-start]")) {
    button.addEventListener("click", async () => {
      if (!data.user) { window.location.assign("/login?next=/"); return; }
      const buttons = card.querySelectorAll("[data-start]");
      for (const b of buttons) b.disabled = true;
      if (errorSlot) errorSlot.textContent = "";
      try {
        const { session } = await api("/api/webrtc/client/request-session", {
          method: "POST",
          body: { readerId: card.dataset.readerId, sessionType: button.dataset.start },
        });
        window.location.assign(`/readings/${encodeURIComponent(session.id)}`);
      } catch (error) {
        for (const b of buttons) b.disabled = false;
        if (!errorSlot) return;
        errorSlot.textContent = EXPLAIN[error.code] ?? error.message;
        if (error.status === 402 || error.code === "insufficient_funds" || /balance|funds/i.test(error.message)) {
          const link = document.createElement("a");
          link.href = "/wallet";
          link.textContent = " Add funds";
          errorSlot.append(link);
        }
      }
    });
  }
}
