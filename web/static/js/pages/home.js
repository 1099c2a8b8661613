// Home: a client starts a chat, audio or video reading with an online reader, at the rate the card shows, sees
// the intro offer on the cards it applies to, and hears live when a favourite reader comes online.
import { api } from "../api.js";
import { pageData } from "../layout.js";
import { listenForAlerts } from "../live-alerts.js";
import { wireStartButtons } from "../start-reading.js";

const data = pageData();
for (const card of document.querySelectorAll("[data-reader-id]")) wireStartButtons(card);


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
if (data.user?.role === "client") listenForAlerts();
