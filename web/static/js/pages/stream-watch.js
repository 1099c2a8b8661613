// Watching a live stream: the video, gifts (with their animation), the live leaderboard and the stream chat;
// a client can send gifts and ask the streaming reader for a private reading.
import { api, sentence } from "../api.js";
import { endpoints } from "../endpoints.js";
import { money } from "../format.js";
import { pageData, setNavBalance } from "../layout.js";
import { PRICE_CHANGED, priceChangedText } from "../prices.js";
import { StreamClient } from "../stream-client.js";
import { StreamView, showConnection, wireChat } from "../stream-view.js";

const data = pageData();
const root = document.querySelector("[data-stream-watch]");
const view = new StreamView(root, { userId: data.user?.id });
const video = root.querySelector("[data-remote-video]");
const placeholder = root.querySelector("[data-placeholder]");
const placeholderText = root.querySelector("[data-placeholder-text]");
const connection = root.querySelector("[data-connection]");
const status = root.querySelector("[data-stream-status]");
const giftPanel = root.querySelector("[data-gift-panel]");
const giftError = root.querySelector("[data-gift-error]");
const soundControls = root.querySelector("[data-sound-controls]");
const unmute = root.querySelector("[data-unmute]");
const privatePanel = root.querySelector("[data-private-panel]");
const chatForm = root.querySelector("[data-chat-form]");
const readerName = data.stream.readerName;

const GIFT_ERRORS = {
  insufficient_funds: "Your balance doesn't cover this gift.",
  stream_ended: "This stream has ended.",
  rate_limited: "That's a lot of gifts at once! Wait a few seconds.",
};

// An ended stream keeps nothing that belongs to a live one: no sound control, no audience count, no chat box,
// no gifts and no reading request.
function ended() {
  status.textContent = "Ended";
  placeholder.hidden = false;
  video.hidden = true;
  video.srcObject = null;
  placeholderText.textContent = "This stream has ended. Thank you for watching!";
  for (const part of [giftPanel, privatePanel, soundControls, chatForm, root.querySelector("[data-watching]")]) {
    if (part) part.hidden = true;
  }
  showConnection(connection, "closed");
}

// The reader is not publishing for now (a private reading, a dropped connection): say so instead of a frozen
// picture, and offer no reading request until they are back.
function paused(isPaused) {
  status.textContent = isPaused ? "Paused" : "Live";
  placeholder.hidden = !isPaused && Boolean(video.srcObject);
  video.hidden = isPaused || !video.srcObject;
  if (isPaused) placeholderText.textContent = `${readerName} stepped away, perhaps for a private reading. Back soon.`;
  if (privatePanel) privatePanel.hidden = isPaused;
  if (giftPanel) giftPanel.hidden = isPaused;
}

function showSound() {
  soundControls.hidden = false;
  unmute.setAttribute("aria-pressed", String(!video.muted));
  const label = video.muted ? "Turn sound on" : "Mute";
  unmute.querySelector("[data-label]").textContent = label;
  unmute.setAttribute("aria-label", label);  // the text is hidden on a phone
}

const client = new StreamClient({ streamId: data.stream.id });
window.soulseerStream = client; // tests and the curious read getStats() here
client.addEventListener("connection", (e) => showConnection(connection, e.detail.state));
client.addEventListener("stream-state", (e) => {
  view.state(e.detail);
  if (e.detail.status === "ended") ended();
  else paused(e.detail.status === "paused");
});
client.addEventListener("gift", (e) => view.gift(e.detail));
client.addEventListener("chat-message", (e) => view.chat(e.detail));
client.addEventListener("remote-stream", (e) => {
  if (video.srcObject !== e.detail.stream) video.srcObject = e.detail.stream;
  video.hidden = false;
  placeholder.hidden = true;
  // Muted playback needs no click; the sound control is always there to turn it on.
  video.play().catch(() => {});
  showSound();
});
client.addEventListener("error", (e) => {
  if (e.detail.code === "stream_ended") ended();
  else if (e.detail.code === "rate_limited") view.system("Slow down a little: too many messages.");
  else view.system(sentence(e.detail.message));
});
unmute.addEventListener("click", () => {
  video.muted = !video.muted;
  video.play().catch(() => {});
  showSound();
});
wireChat(chatForm, client, view);

if (data.stream.status === "live") client.start();
else ended();

// ---- gifts ----
for (const button of root.querySelectorAll("[data-gift-id]")) {
  button.addEventListener("click", async () => {
    giftError.textContent = "";
    button.disabled = true;
    // One request id per click: a retry of this click (a network blip) cannot pay twice.
    const requestId = crypto.randomUUID();
    try {
      const { balanceCents } = await api(`/api/streams/${encodeURIComponent(data.stream.id)}/gifts`, {
        method: "POST",
        body: { giftId: button.dataset.giftId, requestId, expectedCents: Number(button.dataset.priceCents) } });
      if (Number.isInteger(balanceCents)) setNavBalance(balanceCents, money);
    } catch (error) {
      if (error.code === PRICE_CHANGED) {
        // The button shows the new price; sending it again accepts that price.
        const name = button.dataset.giftName;
        button.dataset.priceCents = String(error.details.priceCents);
        button.setAttribute("aria-label", `Send ${name} for ${money(error.details.priceCents)}`);
        const shown = button.querySelector(".gift-price");
        if (shown) shown.textContent = money(error.details.priceCents);
        giftError.textContent = priceChangedText(error, { what: name, again: "Send it again to pay the new price." });
        return;
      }
      giftError.textContent = GIFT_ERRORS[error.code] ?? sentence(error.message);
      if (error.code === "insufficient_funds") {
        const link = document.createElement("a");
        link.href = "/wallet";
        link.textContent = " Add funds";
        giftError.append(link);
      }
      if (error.code === "stream_ended") ended();
    } finally {
      button.disabled = false;
    }
  });
}

// ---- from the stream to a private reading ----
const startError = root.querySelector("[data-start-error]");
for (const button of root.querySelectorAll("[data-start]")) {
  button.addEventListener("click", async () => {
    startError.textContent = "";
    button.disabled = true;
    try {
      const { session } = await api(endpoints.requestSession, {
        method: "POST", body: { readerId: data.stream.readerId, sessionType: button.dataset.start,
                                expectedCents: Number(button.dataset.rateCents) } });
      client.leave();
      window.location.assign(`/readings/${encodeURIComponent(session.id)}`);
    } catch (error) {
      if (error.code === PRICE_CHANGED) {
        button.dataset.rateCents = String(error.details.priceCents);
        button.textContent = `${button.dataset.label} · ${money(error.details.priceCents)}/min`;
        startError.textContent = priceChangedText(error, {
          what: `a ${button.dataset.start} reading`, per: "/min", again: "Press it again to start at the new rate." });
      } else {
        startError.textContent = error.code === "insufficient_funds"
          ? "Your balance doesn't cover a first minute with this reader." : sentence(error.message);
      }
      button.disabled = false;
    }
  });
}
window.addEventListener("pagehide", () => client.leave());
