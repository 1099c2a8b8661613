// Reader dashboard: availability, auto-accept, rates, profile, earnings, and incoming requests
// (shown, rung with a WebAudio tone, accepted or declined; accepted at once when auto-accept is on).
import { AlertTone } from "../alert-tone.js";
import { api, clearFormErrors, sentence, showFormError } from "../api.js";
import { endpoints } from "../endpoints.js";
import { localTime, money, parseDollars } from "../format.js";
import { pageData, toast } from "../layout.js";
import { SoulSeerClient } from "../reading-client.js";

const data = pageData();
const tone = new AlertTone();
const POLL_MS = 2500;

// ---- the onboarding checklist: what a reader must add before going online ----
const checklist = document.querySelector("[data-checklist]");

function check(item, done) {
  const row = checklist.querySelector(`[data-check="${item}"]`);
  if (!row) return;
  row.dataset.done = String(done);
  row.querySelector("[data-check-state]").textContent = done ? "Done: " : item === "profile" ? "Recommended: " : "To do: ";
  const required = [...checklist.querySelectorAll('[data-check]:not([data-check="profile"])')];
  if (required.every((r) => r.dataset.done === "true")) checklist.hidden = true;
}

// ---- the request sound: one visible control, since browsers allow sound only after a click ----
const soundButton = document.querySelector("[data-alert-sound]");
const soundNote = document.querySelector("[data-alert-sound-note]");

function showSound() {
  const on = tone.audible;
  soundButton.setAttribute("aria-pressed", String(on));
  soundButton.textContent = on ? "Request sound on" : "Turn on request sound";
  soundButton.dataset.sound = on ? "on" : "off";
  soundNote.textContent = on
    ? "A soft tone plays for each new request. Press to silence it."
    : tone.wanted
      ? "Browsers keep a page quiet until you allow it once. New requests also show here and in the tab's title."
      : "Silenced. New requests show here and in the tab's title.";
}

soundButton.addEventListener("click", async () => {
  if (tone.audible) {
    tone.wanted = false;
  } else {
    tone.wanted = true;
    tone.unlock();
    await tone.context?.resume?.().catch(() => {});
    tone.play();  // a sample, so the reader hears what a request sounds like
  }
  showSound();
});
// Any click on the page is also the browser's permission to play, when the reader wants sound.
document.addEventListener("pointerdown", () => {
  if (tone.wanted && !tone.audible) {
    tone.unlock();
    tone.context?.resume?.().then(showSound).catch(() => {});
  }
}, { capture: true });
if (tone.wanted) tone.unlock();  // some browsers (and settings) allow sound without a click: then it is on
tone.context?.addEventListener?.("statechange", showSound);
showSound();

// ---- availability and auto-accept ----
const toggle = document.querySelector("[data-availability]");
const toggleLabel = document.querySelector("[data-availability-label]");
const statusBadge = document.querySelector("[data-availability-status]");
const availabilityError = document.querySelector("[data-availability-error]");
const STATUS_TEXT = { online: "Online", busy: "In a reading", offline: "Offline" };

function showAvailability(status, chosen = status) {
  toggle.checked = chosen !== "offline";
  toggleLabel.textContent = chosen === "offline" ? "You are offline" : "You are online";
  statusBadge.className = `status ${status}`;
  statusBadge.textContent = STATUS_TEXT[status] ?? status;
}

toggle.addEventListener("change", async () => {
  tone.unlock();
  const wanted = toggle.checked ? "online" : "offline";
  availabilityError.textContent = "";
  toggle.disabled = true;
  try {
    const { status, chosenStatus } = await api(endpoints.availability, { method: "POST", body: { status: wanted } });
    showAvailability(status, chosenStatus ?? status);
  } catch (error) {
    showAvailability(wanted === "online" ? "offline" : "online");
    availabilityError.textContent = sentence(error.message);
    if (error.code === "not_ready") {
      checklist.hidden = false;
      checklist.scrollIntoView({ block: "nearest" });
    }
  } finally {
    toggle.disabled = false;
  }
});

const autoAccept = document.querySelector("[data-auto-accept]");
const autoAcceptStatus = document.querySelector("[data-auto-accept-status]");
autoAccept.addEventListener("change", async () => {
  tone.unlock();
  autoAcceptStatus.textContent = "";
  try {
    await api(endpoints.profile, { method: "POST", body: { autoAccept: autoAccept.checked } });
    signaling.autoAcceptCalls = autoAccept.checked;
    autoAcceptStatus.textContent = autoAccept.checked ? "Requests will be accepted automatically." : "You'll be asked for each request.";
    autoAcceptStatus.className = "form-status ok";
  } catch (error) {
    autoAccept.checked = !autoAccept.checked;
    autoAcceptStatus.textContent = sentence(error.message);
    autoAcceptStatus.className = "form-status field-error";
  }
});

// ---- rates and profile forms ----
function wireForm(form, buildBody, path, done) {
  const banner = form.querySelector("[data-form-error]");
  const status = form.querySelector("[data-form-status]");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearFormErrors(form, banner);
    status.textContent = "";
    let body;
    try {
      body = buildBody();
    } catch (error) {
      if (error instanceof FieldErrors) showFieldErrors(form, error.errors);
      else showFormError(form, error, banner);
      return;
    }
    const button = form.querySelector('button[type="submit"]');
    button.disabled = true;
    try {
      const result = await api(path, { method: "POST", body });
      status.textContent = "Saved.";
      status.className = "form-status ok";
      done?.(result);
    } catch (error) {
      showFormError(form, error, banner);
    } finally {
      button.disabled = false;
    }
  });
}

// Every price field is checked before anything is sent, and every one that is wrong says so under itself
// (not only the first): a reader fixing a form sees all that is left to fix at once.
class FieldErrors extends Error {
  constructor(errors) {
    super(errors[0].message);
    this.errors = errors;
  }
}

function showFieldErrors(form, errors) {
  for (const { field, message } of errors) {
    const slot = form.querySelector(`[data-error-for="${CSS.escape(field)}"]`);
    if (slot) slot.textContent = message;
    slot?.closest(".field")?.classList.add("has-error");
    form.querySelector(`[name="${CSS.escape(field)}"]`)?.setAttribute("aria-invalid", "true");
  }
  form.querySelector(`[name="${CSS.escape(errors[0].field)}"]`)?.focus();
}

function priceOf(input, high, errors) {
  const cents = parseDollars(input.value || "0");
  if (cents === null) errors.push({ field: input.name, message: "Enter an amount like 2.50." });
  else if (cents > high) errors.push({ field: input.name, message: `Enter at most ${money(high)}.` });
  return cents;
}

const ratesForm = document.querySelector("[data-rates-form]");
const PER_MINUTE = ["chatCents", "audioCents", "videoCents", "messageCents"];
wireForm(ratesForm, () => {
  const errors = [];
  const body = {};
  for (const name of PER_MINUTE) body[name] = priceOf(ratesForm[name], data.maxRateCents, errors);
  body.flatCents = {};
  for (const input of ratesForm.querySelectorAll("[data-flat]")) {
    body.flatCents[input.dataset.flat] = priceOf(input, data.maxFlatCents, errors);
  }
  if (errors.length) throw new FieldErrors(errors);
  return body;
}, endpoints.rates, (rates) => {
  for (const name of PER_MINUTE) {
    if (rates?.[name] !== undefined) ratesForm[name].value = money(rates[name]).slice(1);
  }
  check("rates", ["chatCents", "audioCents", "videoCents"].some((name) => rates?.[name] > 0));
});

const profileForm = document.querySelector("[data-profile-form]");
wireForm(profileForm, () => ({ specialties: profileForm.specialties.value, languages: profileForm.languages.value,
                                bio: profileForm.bio.value }),
  endpoints.profile, ({ profile }) => {
    profileForm.specialties.value = profile.specialties.join(", ");
    profileForm.languages.value = profile.languages.join(", ");
    check("profile", profile.specialties.length > 0 || Boolean(profile.bio));
  });

// ---- earnings ----
// Ledger movement kinds (billing/ledger.py) as a reader reads them.
const EARNING_KINDS = {
  reading_minute: "Reading minute",
  intro_minute: "Intro minute (paid by SoulSeer)",
  scheduled_reading: "Booked reading",
  refund: "Unused time returned to the client",
  gift: "Gift",
  message: "Paid message",
};
async function loadEarnings() {
  try {
    const { earningsCents, transactions } = await api(`${endpoints.earnings}?limit=5`);
    document.querySelector("[data-earnings-total]").textContent = money(earningsCents);
    const list = document.querySelector("[data-earnings-list]");
    list.replaceChildren();
    for (const tx of transactions ?? []) {
      const item = document.createElement("li");
      const what = document.createElement("div");
      what.className = "grow";
      what.textContent = tx.kind === "refund" && tx.originalKind === "scheduled_reading"
        ? "Booking refunded to the client" : EARNING_KINDS[tx.kind] ?? sentence(tx.kind.replaceAll("_", " "));
      const when = document.createElement("small");
      when.className = "muted";
      when.textContent = ` ${localTime(tx.createdAt)}`;
      what.append(document.createElement("br"), when);
      const amount = document.createElement("strong");
      amount.className = `tabular ${tx.amountCents >= 0 ? "amount-in" : ""}`;
      amount.textContent = `${tx.amountCents >= 0 ? "+" : ""}${money(tx.amountCents)}`;
      item.append(what, amount);
      list.append(item);
    }
    list.hidden = list.children.length === 0;
  } catch { /* earnings are informative; the rest of the page works without them */ }
}
loadEarnings();

// ---- incoming requests ----
const incoming = document.querySelector("[data-incoming]");
const incomingList = document.querySelector("[data-incoming-list]");
const seen = new Set();
let requests = new Map((data.requests ?? []).map((r) => [r.id, r]));
const baseTitle = document.title;

const signaling = new SoulSeerClient({ sessionType: "chat", userId: data.user?.id,
  autoAcceptCalls: Boolean(data.profile?.autoAccept) });

function renderRequests() {
  incomingList.replaceChildren();
  for (const request of requests.values()) {
    const item = document.createElement("div");
    item.className = "request-item";
    item.dataset.requestId = request.id;
    const text = document.createElement("div");
    text.className = "grow";
    const who = document.createElement("strong");
    who.textContent = request.clientName ?? "A client";
    const detail = document.createElement("div");
    detail.className = "muted";
    const article = request.sessionType === "audio" ? "an" : "a";
    detail.textContent = `wants ${article} ${request.sessionType} reading · ${money(request.rateCents)}/min`;
    text.append(who, detail);
    const accept = button("Accept", "button success", () => accept_(request.id, accept));
    const decline = button("Decline", "button secondary", () => decline_(request.id, decline));
    item.append(text, accept, decline);
    incomingList.append(item);
  }
  const count = requests.size;
  incoming.hidden = count === 0;
  incoming.classList.toggle("ringing", count > 0);
  document.title = count ? `(${count}) New request · SoulSeer` : baseTitle;
}

function button(label, className, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = className;
  b.textContent = label;
  b.addEventListener("click", onClick);
  return b;
}

const accepting = new Set();

async function accept_(sessionId, control) {
  if (accepting.has(sessionId)) return;
  accepting.add(sessionId);
  if (control) control.disabled = true;
  try {
    await signaling.acceptSession(sessionId);
    window.location.assign(`/readings/${encodeURIComponent(sessionId)}`);
  } catch (error) {
    accepting.delete(sessionId);
    if (control) control.disabled = false;
    toast(error.message);
    await poll();
  }
}

async function decline_(sessionId, control) {
  control.disabled = true;
  try {
    await api(endpoints.decline(sessionId), { method: "POST" });
  } catch (error) {
    toast(error.message);
  }
  requests.delete(sessionId);
  renderRequests();
}

function arrived(list) {
  const fresh = list.filter((r) => !seen.has(r.id));
  for (const r of list) seen.add(r.id);
  requests = new Map(list.map((r) => [r.id, r]));
  renderRequests();
  if (!fresh.length) return;
  incoming.dataset.alerts = String(Number(incoming.dataset.alerts ?? 0) + 1);
  if (tone.play() && tone.audible) incoming.dataset.rang = String(Number(incoming.dataset.rang ?? 0) + 1);
  showSound();
  // The module accepts at once when auto-accept is on (it may have already, from the live notification).
  for (const r of fresh) signaling.handleIncomingRequest(r.id);
}

async function poll() {
  try {
    const { sessions } = await api(`${endpoints.readerSessions}?status=requested`);
    arrived(sessions.filter((s) => s.status === "requested").map((s) => ({
      id: s.id,
      clientName: s.clientName ?? s.client?.displayName,
      sessionType: s.sessionType,
      rateCents: s.rateCents,
      requestedAt: s.requestedAt,
    })));
  } catch (error) {
    // Logged out (in another tab, say): this page cannot work any more.
    if (error.status === 401) window.location.assign("/login?next=/dashboard");
  }
}

// Live: a `session-requested` notification on the signaling socket; polling covers a dropped socket.
signaling.addEventListener("incoming-request", () => poll());
signaling.addEventListener("notification", ({ detail }) => {
  if (["session-cancelled", "session-expired"].includes(detail.kind)) poll();
  if (detail.kind === "session-booked" && detail.session) {
    const booked = detail.session;
    toast(`${booked.clientName} booked a ${booked.minutes}-minute ${booked.sessionType} reading for ${localTime(booked.startsAt)}.`);
  }
  if (detail.kind === "session-expired" && detail.away) {
    // Nobody answered: clients now see this reader as away, until they switch on again.
    showAvailability("offline", "offline");
    availabilityError.textContent = "You missed a request, so clients see you as away. Switch on when you're back.";
  }
});
signaling.addEventListener("auto-accepted", ({ detail }) => {
  window.location.assign(`/readings/${encodeURIComponent(detail.session.id)}`);
});
signaling.addEventListener("error", ({ detail }) => {
  if (detail.code === "unauthorized") poll();  // finds the login gone, and goes to the login page
  else if (detail.code !== "connection_lost") toast(detail.message);
});
// A reader is shown online while a socket of theirs is open: once this one is, the server's status is read back.
signaling.addEventListener("connection", async ({ detail }) => {
  if (detail.state !== "connected") return;
  try {
    const { status, chosenStatus } = await api(endpoints.availability);
    showAvailability(status, chosenStatus);
  } catch { /* the page's own status stands */ }
});
signaling.connect();

arrived([...requests.values()]);
setInterval(poll, POLL_MS);
