// Starting a chat, audio or video reading from a reader's card or profile, at the rate shown there: the request
// carries that rate (expectedCents); a changed rate is shown and the next press confirms it.
import { api } from "./api.js";
import { money } from "./format.js";
import { pageData } from "./layout.js";
import { PRICE_CHANGED, priceChangedText } from "./prices.js";

const EXPLAIN = {
  insufficient_funds: "Your balance doesn't cover a first minute with this reader.",
  reader_unavailable: "This reader has just gone offline or started another reading.",
  reader_offline: "This reader has just gone offline.",
  reader_busy: "This reader is in another reading right now.",
};

// The card shows the reader's new rate; the next press of the button confirms it.
function showRate(card, button, cents) {
  const kind = button.dataset.start;
  button.dataset.rateCents = String(cents);
  const name = card.querySelector("h1, h3")?.textContent ?? "this reader";
  button.setAttribute("aria-label", `Start ${kind} reading with ${name}, ${money(cents)} per minute`);
  const shown = card.querySelector(`[data-rate-for="${CSS.escape(kind)}"]`);
  if (shown) {
    const unit = document.createElement("small");
    unit.textContent = "/min";
    shown.replaceChildren(money(cents), unit);
  }
}

// `card`: an element with data-reader-id holding [data-start] buttons and a [data-card-error] slot.
export function wireStartButtons(card) {
  const data = pageData();
  const errorSlot = card.querySelector("[data-card-error]");
  for (const button of card.querySelectorAll("[data-start]")) {
    button.addEventListener("click", async () => {
      if (!data.user) { window.location.assign(`/login?next=${encodeURIComponent(location.pathname)}`); return; }
      const buttons = card.querySelectorAll("[data-start]");
      for (const b of buttons) b.disabled = true;
      if (errorSlot) errorSlot.textContent = "";
      try {
        const { session } = await api("/api/webrtc/client/request-session", {
          method: "POST",
          body: { readerId: card.dataset.readerId, sessionType: button.dataset.start,
                  expectedCents: Number(button.dataset.rateCents) },
        });
        window.location.assign(`/readings/${encodeURIComponent(session.id)}`);
      } catch (error) {
        for (const b of buttons) b.disabled = false;
        if (error.code === PRICE_CHANGED) showRate(card, button, error.details.priceCents);
        if (!errorSlot) return;
        if (error.code === PRICE_CHANGED) {
          errorSlot.textContent = priceChangedText(error, {
            what: `a ${button.dataset.start} reading`, per: "/min",
            again: `Press Start ${button.dataset.start} again to start at the new rate.` });
          return;
        }
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
