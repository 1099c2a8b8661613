// A reader's booking page: the reader's bookable times in the client's own time zone, grouped by day; the price,
// the cancellation policy and the client's balance before paying; then the booking (paid at once) and its .ics.
import { api } from "../api.js";
import { localTime, money } from "../format.js";
import { pageData, setNavBalance } from "../layout.js";
import { PRICE_CHANGED, priceChangedText } from "../prices.js";

const data = pageData();
const form = document.querySelector("[data-booking-form]");
const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
const $ = (selector) => document.querySelector(selector);
let booking = data.booking;
let balance = data.balanceCents;
let chosenDay = null;
let chosenStart = null;

for (const el of document.querySelectorAll("[data-client-zone]")) el.textContent = zone.replaceAll("_", " ");

const dayKey = (iso) => new Intl.DateTimeFormat("en-CA", { year: "numeric", month: "2-digit", day: "2-digit" })
  .format(new Date(iso));
const dayLabel = (iso) => new Date(iso).toLocaleDateString(undefined, { weekday: "short", month: "short", day: "numeric" });
const timeLabel = (iso, timeZone) => localTime(iso, { timeOnly: true, timeZone });
const whenLabel = (iso) => localTime(iso);

function minutes() {
  return form.querySelector('input[name="minutes"]:checked')?.value ?? null;
}

function starts() {
  const m = minutes();
  return m ? booking.offers[m] ?? [] : [];
}

function pressed(container, button) {
  for (const b of container.querySelectorAll("button")) b.setAttribute("aria-pressed", String(b === button));
}

function renderDays() {
  const days = $("[data-days]");
  const groups = new Map();
  for (const iso of starts()) {
    const key = dayKey(iso);
    if (!groups.has(key)) groups.set(key, iso);
  }
  if (!groups.has(chosenDay)) chosenDay = groups.keys().next().value ?? null;
  days.replaceChildren(...[...groups].map(([key, iso]) => {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.day = key;
    button.textContent = dayLabel(iso);
    button.setAttribute("aria-pressed", String(key === chosenDay));
    button.addEventListener("click", () => { chosenDay = key; pressed(days, button); renderTimes(); });
    return button;
  }));
  renderTimes();
}

function renderTimes() {
  const times = $("[data-times]");
  const list = starts().filter((iso) => dayKey(iso) === chosenDay);
  if (!list.includes(chosenStart)) chosenStart = null;
  times.replaceChildren(...list.map((iso) => {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.start = iso;
    button.textContent = timeLabel(iso);
    button.setAttribute("aria-pressed", String(iso === chosenStart));
    button.addEventListener("click", () => { chosenStart = iso; pressed(times, button); renderSummary(); });
    return button;
  }));
  renderSummary();
}

function renderSummary() {
  const body = $("[data-summary-body]");
  $("[data-summary-empty]").hidden = Boolean(chosenStart);
  body.hidden = !chosenStart;
  if (!chosenStart) return;
  const m = minutes();
  const price = booking.prices[m];
  const end = new Date(Date.parse(chosenStart) + Number(m) * 60_000).toISOString();
  $("[data-summary-when]").textContent = `${whenLabel(chosenStart)} – ${timeLabel(end)}`;
  $("[data-summary-reader-time]").textContent = booking.timeZone
    ? `${timeLabel(chosenStart, booking.timeZone)} (${booking.timeZone.replaceAll("_", " ")})` : "—";
  $("[data-summary-length]").textContent = `${m} minutes`;
  $("[data-summary-price]").textContent = money(price);
  $("[data-summary-balance]").textContent = money(balance);
  const short = balance < price;
  $("[data-funds-warning]").hidden = !short;
  const button = $("[data-book]");
  button.disabled = short;
  button.textContent = `Pay ${money(price)} and book`;
}

async function refresh() {
  try {
    booking = await api(`/api/webrtc/readers/${encodeURIComponent(data.reader.id)}/offers`);
  } catch { /* keep what the page has */ }
  renderDays();
}

function showError(text) {
  const banner = $("[data-book-error]");
  banner.textContent = text;
  banner.hidden = !text;
}

if (form) {
  for (const input of form.querySelectorAll('input[name="minutes"]')) input.addEventListener("change", renderDays);
  $("[data-book]").addEventListener("click", async (event) => {
    const button = event.currentTarget;
    const m = minutes();
    const price = booking.prices[m];
    const sessionType = form.querySelector('input[name="sessionType"]:checked')?.value ?? "video";
    showError("");
    button.disabled = true;
    try {
      const { session } = await api("/api/webrtc/client/schedule-session", { method: "POST", body: {
        readerId: data.reader.id, sessionType, startsAt: chosenStart, minutes: Number(m), expectedCents: price } });
      balance -= session.chargedCents;
      setNavBalance(balance, money);
      $("[data-booked-text]").textContent = `${whenLabel(session.startsAt)}, ${session.minutes} minutes, ` +
        `${money(session.chargedCents)} paid.`;
      $("[data-booked-ics]").href = `/api/webrtc/session/${encodeURIComponent(session.id)}/calendar.ics`;
      $("[data-booked]").hidden = false;
      chosenStart = null;
      await refresh();
    } catch (error) {
      button.disabled = false;
      if (error.code === PRICE_CHANGED) {
        booking.prices[m] = error.details.priceCents;
        showError(priceChangedText(error, { what: `a ${m}-minute reading`, again: "Press the button again to book at the new price." }));
        renderSummary();
      } else if (error.code === "slot_taken" || error.code === "slot_not_found") {
        showError("Someone else has just booked this time. Please choose another.");
        chosenStart = null;
        await refresh();
        $("[data-summary-body]").hidden = false;
      } else {
        showError(error.message);
      }
    }
  });
  renderDays();
}
