// Starting a chat, audio or video reading from a reader's card or profile, at the rate shown there: the request
// carries that rate (expectedCents); a changed rate is shown and the next press confirms it.
import { api, sentence } from "./api.js";
import { money } from "./format.js";
import { pageData } from "./layout.js";
import { PRICE_CHANGED, priceChangedText } from "./prices.js";

const EXPLAIN = {
  insufficient_funds: "Your balance doesn't cover a first minute with this reader.",
  reader_unavailable: "This reader has just gone offline or started another reading.",
  reader_offline: "This reader has just gone offline.",
  reader_busy: "This reader is in another reading right now.",
  session_pending: "You already have a reading waiting or in progress.",
  not_offered: "This reader doesn't offer that kind of reading.",
  rate_limited: "That was a lot of requests at once. Please wait a moment and try again.",
};

// Where the refusal can be put right: the open reading, or the wallet.
function linkFor(error) {
  const link = document.createElement("a");
  if (error.code === "session_pending" && error.details.sessionId) {
    link.href = `/readings/${encodeURIComponent(error.details.sessionId)}`;
    link.textContent = "Go to your reading";
  } else if (error.status === 402 || error.code === "insufficient_funds") {
    link.href = "/wallet";
    link.textContent = "Add funds";
  } else {
    return null;
  }
  return link;
}

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
        errorSlot.textContent = `${EXPLAIN[error.code] ?? sentence(error.message)} `;
        const link = linkFor(error);
        if (link) errorSlot.append(link);
      }
    });
  }
}

// Back from logging in after choosing a reading ("Start" while logged out leads to the reader's profile with
// ?start=<kind>): that card marked and its button focused, ready to press. Nothing is requested without that press.
export function remindChoice(card) {
  const kind = new URLSearchParams(window.location.search).get("start");
  if (!kind || !card) return;
  const button = card.querySelector(`[data-start="${CSS.escape(kind)}"]`);
  if (!button) return;
  card.classList.add("chosen");
  button.scrollIntoView({ block: "center" });
  button.focus();
}
