// Home: a client starts a chat, audio or video reading with an online reader, at the rate the card shows.
import { api, sentence } from "../api.js";
import { money } from "../format.js";
import { pageData } from "../layout.js";
import { PRICE_CHANGED, priceChangedText } from "../prices.js";

const data = pageData();

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
  const name = card.querySelector("h3")?.textContent ?? "this reader";
  button.setAttribute("aria-label", `Start ${kind} reading with ${name}, ${money(cents)} per minute`);
  const shown = card.querySelector(`[data-rate-for="${CSS.escape(kind)}"]`);
  if (shown) {
    const unit = document.createElement("small");
    unit.textContent = "/min";
    shown.replaceChildren(money(cents), unit);
  }
}

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

// Back from logging in after choosing a reader ("Start" while logged out): that reader's card, with the chosen
// kind of reading's button ready to press. Nothing is requested (or charged) without that press.
function remindChoice() {
  const params = new URLSearchParams(window.location.search);
  const readerId = params.get("reader");
  if (!readerId) return;
  const card = document.querySelector(`[data-reader-id="${CSS.escape(readerId)}"]`);
  if (!card) return;
  card.classList.add("chosen");
  card.scrollIntoView({ block: "center" });
  const button = card.querySelector(`[data-start="${CSS.escape(params.get("start") ?? "")}"]`) ??
    card.querySelector("[data-start]");
  button?.focus();
}
remindChoice();

// The intro offer, shown before a reading starts: the first minutes free with a reader the client has not had
// a reading with, while the offer lasts (GET /api/webrtc/client/intro-offer).
async function showIntroOffer() {
  if (data.user?.role !== "client") return;
  let offer;
  try { offer = await api("/api/webrtc/client/intro-offer"); } catch { return; }
  if (!offer.freeMinutes || !offer.readersLeft) return;
  for (const card of document.querySelectorAll("[data-reader-id]")) {
    if (offer.usedReaderIds.includes(card.dataset.readerId)) continue;
    const badge = document.createElement("p");
    badge.className = "intro-offer";
    badge.dataset.introOffer = "";
    badge.textContent = `First ${offer.freeMinutes} minutes free with this reader`;
    card.querySelector("header")?.after(badge);
  }
}
showIntroOffer();
