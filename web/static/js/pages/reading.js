// The reading page: the client's waiting screen, the reader's accept/decline, the reading room, the summary.
import { api, sentence } from "../api.js";
import { endpoints } from "../endpoints.js";
import { clock, localTime, money, spokenDuration } from "../format.js";
import { pageData, setNavBalance, toast } from "../layout.js";
import { showAfterReading } from "../after-reading.js";
import { SoulSeerClient } from "../reading-client.js";

const data = pageData();
const me = data.user;
const isClient = data.role === "client";
const other = data.counterpart.displayName;
let session = data.session;
const $ = (selector) => document.querySelector(selector);
const $$ = (selector) => [...document.querySelectorAll(selector)];
const POLL_MS = 1500;
const LOW_BALANCE_SECONDS = 60;

for (const el of $$("[data-client-only]")) el.hidden = !isClient;
if (!isClient) $("[data-charged-label]").textContent = "Earned";

function show(view) {
  for (const section of $$("[data-view]")) section.hidden = section.dataset.view !== view;
  document.body.dataset.currentView = view;
}

function route() {
  switch (session.status) {
    case "requested":
      if (isClient) showWaiting(); else showIncoming();
      break;
    case "accepted":
      if (session.mode === "scheduled" && data.opensAt && Date.now() < Date.parse(data.opensAt)) showBooked();
      else enterRoom();
      break;
    case "active":
      enterRoom();
      break;
    case "ended":
      showSummary({ session, reason: session.endReason });
      break;
    default:
      showClosed();
  }
}

// ---- waiting for the reader (client) ----
let pollTimer = null;
let countdownTimer = null;

function showWaiting() {
  show("waiting");
  // The server's own deadline when it gives one; our clock may differ from its, so count the time left
  // from the moment this page learned it.
  const total = session.expiresAt && session.requestedAt
    ? (Date.parse(session.expiresAt) - Date.parse(session.requestedAt)) / 1000 : data.requestExpirySeconds;
  const elapsed = Math.max(0, (Date.now() - Date.parse(session.requestedAt)) / 1000);
  const expiresAt = Date.now() + Math.max(0, total - Math.min(elapsed, total)) * 1000;
  const slot = $("[data-countdown]");
  const tick = () => {
    const left = Math.max(0, Math.ceil((expiresAt - Date.now()) / 1000));
    slot.textContent = left > 0 ? clock(left) : "a moment";
  };
  tick();
  countdownTimer ??= setInterval(tick, 500);
  startPolling();
  // Listen for the reader's answer, and have the camera and microphone ready for the room.
  const waiting = roomClient();
  waiting.connect();
  waiting.prepare({ iceServers: data.iceServers });
}

// ---- a booked reading before its room opens ----
let bookedTimer = null;

function showBooked() {
  show("booked");
  const opens = Date.parse(data.opensAt);
  const slot = $("[data-booked-countdown]");
  const tick = () => {
    const left = Math.ceil((opens - Date.now()) / 1000);
    if (left <= 0) {
      clearInterval(bookedTimer);
      enterRoom();
      return;
    }
    const days = Math.floor(left / 86400);
    slot.textContent = days >= 1
      ? `in ${days} day${days === 1 ? "" : "s"} ${Math.floor((left % 86400) / 3600)} h`
      : `in ${clock(left)}`;
  };
  tick();
  bookedTimer ??= setInterval(tick, 1000);
}

$("[data-cancel-booking]")?.addEventListener("click", async (event) => {
  const button = event.currentTarget;
  button.disabled = true;
  try {
    const { session: fresh, refundedCents } = await api(endpoints.cancel(session.id), { method: "POST" });
    session = fresh;
    refundedNow = refundedCents;
    clearInterval(bookedTimer);
    route();
  } catch (error) {
    $("[data-booked-error]").textContent = sentence(error.message);
    button.disabled = false;
  }
});
let refundedNow = null;

function showIncoming() {
  show("incoming");
  startPolling();
}

function startPolling() {
  pollTimer ??= setInterval(async () => {
    try {
      const { session: fresh } = await api(endpoints.session(session.id));
      if (fresh.status !== session.status) {
        session = fresh;
        stopPolling();
        route();
      }
    } catch { /* keep polling: the network may come back */ }
  }, POLL_MS);
}

function stopPolling() {
  clearInterval(pollTimer);
  clearInterval(countdownTimer);
  pollTimer = null;
  countdownTimer = null;
}

$("[data-cancel]").addEventListener("click", async (event) => {
  const button = event.currentTarget;
  button.disabled = true;
  try {
    const { session: fresh } = await api(endpoints.cancel(session.id), { method: "POST" });
    session = fresh ?? { ...session, status: "cancelled" };
  } catch (error) {
    // Accepted in the meantime? Then the room is the right place; otherwise say why.
    try { session = (await api(endpoints.session(session.id))).session; } catch { /* keep the old one */ }
    if (session.status === "requested") {
      $("[data-waiting-error]").textContent = sentence(error.message);
      button.disabled = false;
      return;
    }
  }
  stopPolling();
  route();
});

$("[data-accept]").addEventListener("click", async (event) => {
  event.currentTarget.disabled = true;
  try {
    const { session: fresh } = await api(endpoints.accept(session.id), { method: "POST" });
    session = fresh;
  } catch (error) {
    $("[data-incoming-error]").textContent = sentence(error.message);
    try { session = (await api(endpoints.session(session.id))).session; } catch { /* keep the old one */ }
  }
  stopPolling();
  route();
});

$("[data-decline]").addEventListener("click", async (event) => {
  event.currentTarget.disabled = true;
  try {
    const { session: fresh } = await api(endpoints.decline(session.id), { method: "POST" });
    session = fresh ?? { ...session, status: "declined" };
  } catch (error) {
    $("[data-incoming-error]").textContent = sentence(error.message);
  }
  stopPolling();
  route();
});

function showClosed() {
  stopPolling();
  show("closed");
  // A booking was paid when it was made: say what went back, from the ledger (or the cancel's own answer).
  if (session.mode === "scheduled") {
    const paid = session.rateCents;
    const kept = refundedNow !== null ? paid - refundedNow : data.money?.chargedCents ?? 0;
    const back = paid - kept;
    $("[data-closed-money]").textContent = !isClient ? "" : kept > 0
      ? `${money(back)} went back to your wallet; ${money(kept)} was kept under the cancellation policy.`
      : `The full ${money(paid)} went back to your wallet.`;
  }
  const title = $("[data-closed-title]");
  const text = $("[data-closed-text]");
  const they = isClient ? other : "The client";
  if (session.status === "expired") {
    title.textContent = "The request expired";
    text.textContent = isClient
      ? `${other} didn't answer in time. Another reader may be available now.`
      : "You didn't answer this request in time.";
  } else if (session.status === "declined") {
    title.textContent = isClient ? `${other} can't take this reading` : "You declined this request";
    text.textContent = isClient ? "Readers sometimes need a break. Another reader may be available now." : "";
  } else if (session.status === "cancelled" && session.mode === "scheduled") {
    title.textContent = "The booking was cancelled";
    text.textContent = isClient ? "You cancelled this booking." : `${they} cancelled this booking.`;
  } else if (session.status === "cancelled") {
    title.textContent = "The request was cancelled";
    text.textContent = isClient ? "You cancelled this request." : `${they} cancelled this request.`;
  } else {
    title.textContent = "This request is closed";
    text.textContent = "";
  }
}

// ---- the reading room ----
let client = null;
let meter = { billableSeconds: session.billableSeconds ?? 0, at: performance.now(), status: session.status };
let secondsLeft = null;
let secondsLeftAt = 0;
let lastState = {};
let connection = "connecting";
const transcript = [];

// The room's client: made once, by the waiting screen (whose socket hears the accept at once) or by the room.
function roomClient() {
  if (client) return client;
  client = new SoulSeerClient({ sessionType: session.sessionType, userId: me.id, graceSeconds: data.graceSeconds });
  // A handle for diagnostics in the console (and the browser tests' getStats checks).
  window.soulseerRoom = client;
  client.addEventListener("connection", ({ detail }) => onConnection(detail));
  client.addEventListener("local-stream", ({ detail }) => onLocalStream(detail.stream));
  client.addEventListener("remote-stream", ({ detail }) => onRemoteStream(detail.combined));
  client.addEventListener("media-error", ({ detail }) => {
    const banner = $("[data-media-error]");
    banner.replaceChildren(paragraph(detail.message));
    banner.hidden = false;
    refreshControls();
  });
  client.addEventListener("joined", ({ detail }) => {
    if (detail.session) applySession(detail.session);
  });
  client.addEventListener("start-session", ({ detail }) => {
    if (detail.session) applySession(detail.session);
    systemLine("The reading has started. Time is billed only while you are both connected.");
  });
  client.addEventListener("session-state", ({ detail }) => onSessionState(detail));
  client.addEventListener("chat-message", ({ detail }) => onChat(detail));
  client.addEventListener("end-session", ({ detail }) => showSummary(detail));
  client.addEventListener("notification", ({ detail }) => onNotification(detail));
  client.addEventListener("error", ({ detail }) => onError(detail));
  return client;
}

// While the client waits, the answer comes over the socket the moment the reader gives it (the poll above is
// only the fallback for a dropped socket).
const ANSWERS = new Set(["session-accepted", "session-declined", "session-expired", "session-cancelled"]);

function onNotification(note) {
  const noted = note.session ?? null;
  if (session.status !== "requested" || !ANSWERS.has(note.kind) || (noted?.id ?? note.sessionId) !== session.id) {
    return;
  }
  session = { ...session, ...(noted ?? {}) };
  stopPolling();
  route();
}

let inRoom = false;

function enterRoom() {
  stopPolling();
  show("room");
  if (inRoom) return;
  inRoom = true;
  setInterval(renderMeter, 250);
  // A reload mid-reading: the chat so far comes from the page.
  for (const line of data.transcript ?? []) appendChat({ text: line.text, mine: line.mine, at: line.at });
  setChatOpen(session.status === "active");
  roomClient().joinSession(session.id, { iceServers: data.iceServers });
}

// The server opens the chat when the reading is active (both connected); until then the box waits.
function setChatOpen(open) {
  const input = chatForm.text;
  const button = chatForm.querySelector('button[type="submit"]');
  if (input.disabled === !open) return;
  input.disabled = !open;
  button.disabled = !open;
  input.placeholder = open ? "Write a message…" : "Chat opens when you are both connected…";
}

function applySession(fresh) {
  session = { ...session, ...fresh };
  setChatOpen(session.status === "active");
  meter = { billableSeconds: session.billableSeconds ?? meter.billableSeconds, at: performance.now(),
    status: session.status };
  $("[data-charged]").textContent = money(isClient ? session.chargedCents : earnedOf(session.chargedCents));
}

function earnedOf(chargedCents) {
  return lastState.earnedCents ?? Math.floor((chargedCents ?? 0) * 70 / 100);
}

function onSessionState(state) {
  lastState = { ...lastState, ...state };
  meter = { billableSeconds: state.billableSeconds ?? meter.billableSeconds, at: performance.now(),
    status: state.status ?? meter.status, running: state.running };
  if (state.status) setChatOpen(state.status === "active");
  if (state.chargedCents !== undefined || state.earnedCents !== undefined) {
    $("[data-charged]").textContent = money(isClient ? state.chargedCents : earnedOf(state.chargedCents));
  }
  if (isClient && state.balanceCents !== undefined) {
    $("[data-balance]").textContent = money(state.balanceCents);
    setNavBalance(state.balanceCents, money);
  }
  showOtherAway(state);
  if (state.secondsLeft !== undefined && state.secondsLeft !== null) {
    secondsLeft = state.secondsLeft;
    secondsLeftAt = performance.now();
  }
  renderMeter();
}

// The other side left the started reading (closed the tab, lost the network): say so, with the time they have
// to come back before the reading ends, rather than a frozen picture and "Connected".
const otherRole = isClient ? "reader" : "client";
let otherAway = null;  // {until: performance.now() deadline} while the other side is away

function showOtherAway(state) {
  const away = state.status === "active" && state.connected?.[otherRole] === false;
  const left = state.graceLeft?.[otherRole];
  const wasAway = otherAway !== null;
  otherAway = away ? { until: performance.now() + (Number.isFinite(left) ? left : data.graceSeconds) * 1000 } : null;
  $("[data-other-away]").hidden = !away;
  renderGrace();
  const placeholder = $("[data-placeholder]");
  if (!placeholder || away === wasAway) return;
  // The stage shows the other's avatar and the same words instead of their last frame, until they are back.
  const text = $("[data-placeholder-text]");
  const video = $("[data-remote-video]");
  if (away) {
    text.dataset.before = text.textContent;
    text.textContent = `${other} reconnecting… (not billed)`;
    placeholder.hidden = false;
    if (video) video.hidden = true;
  } else {
    text.textContent = text.dataset.before ?? text.textContent;
    if (video && video.videoWidth > 0) {
      video.hidden = false;
      placeholder.hidden = true;
    }
  }
}

let lostAt = null;  // when this tab lost its connection (its own grace period runs from then)

function renderGrace() {
  if (otherAway) {
    const left = Math.max(0, Math.ceil((otherAway.until - performance.now()) / 1000));
    $("[data-other-grace]").textContent = `The reading ends in ${clock(left)} unless they are back.`;
  }
  if (lostAt !== null) {
    const left = Math.max(0, Math.ceil(data.graceSeconds - (performance.now() - lostAt) / 1000));
    $("[data-own-grace]").textContent = `The reading ends in ${clock(left)} unless you are back.`;
  }
}

// Between the server's updates (every second) the clock runs on locally while the meter runs.
function billingRunning() {
  return meter.status === "active" && connection === "connected" && meter.running !== false;
}

function renderMeter() {
  renderGrace();
  const elapsed = (performance.now() - meter.at) / 1000;
  const running = billingRunning();
  $("[data-timer]").textContent = clock(meter.billableSeconds + (running ? Math.min(elapsed, 2) : 0));
  if (!isClient || secondsLeft === null) return;
  const left = Math.max(0, secondsLeft - (running ? (performance.now() - secondsLeftAt) / 1000 : 0));
  $("[data-time-left]").textContent = clock(left);
  const low = running && left <= LOW_BALANCE_SECONDS;
  const banner = $("[data-low-balance]");
  if (banner.hidden === low) banner.hidden = !low;
  $("[data-low-balance-left]").textContent = clock(left);
}

function onConnection({ state }) {
  connection = state;
  const badge = $("[data-connection]");
  badge.className = `conn ${state}`;
  badge.textContent = { connecting: "Connecting…", connected: "Connected", reconnecting: "Reconnecting…",
    disconnected: "Disconnected", closed: "Disconnected" }[state] ?? state;
  $("[data-reconnecting]").hidden = state !== "reconnecting";
  if (state === "reconnecting") lostAt ??= performance.now();
  else lostAt = null;
  renderMeter();
}

function onLocalStream(stream) {
  const video = $("[data-local-video]");
  if (video && stream.getVideoTracks().length) {
    video.srcObject = stream;
    video.hidden = false;
  }
  refreshControls();
}

function onRemoteStream(stream) {
  const element = $("[data-remote-video]") ?? $("[data-remote-audio]");
  if (!element) return;
  if (element.srcObject !== stream) element.srcObject = stream;
  element.play()?.catch(() => { $("[data-play-blocked]").hidden = false; });
  if (element.tagName === "VIDEO") {
    // Reveal the video once it has a picture (tracks arrive one by one; audio may start playing first).
    const reveal = () => {
      if (element.videoWidth > 0) {
        element.hidden = false;
        $("[data-placeholder]").hidden = true;
      }
    };
    element.hidden = false;
    element.addEventListener("resize", reveal);
    element.addEventListener("playing", reveal);
    reveal();
    if (element.videoWidth === 0) element.hidden = true;
  } else {
    $("[data-placeholder-text]").textContent = "Audio reading · connected";
  }
}

$("[data-play]").addEventListener("click", () => {
  const element = $("[data-remote-video]") ?? $("[data-remote-audio]");
  element?.play().then(() => { $("[data-play-blocked]").hidden = true; }).catch(() => {});
});

function refreshControls() {
  const audioButton = $("[data-toggle-audio]");
  if (audioButton) {
    const has = (client?.localStream?.getAudioTracks().length ?? 0) > 0;
    audioButton.disabled = !has;
    audioButton.setAttribute("aria-pressed", String(has && !client.audioEnabled));
    audioButton.querySelector("[data-label]").textContent = has && !client.audioEnabled ? "Unmute" : "Mute";
    audioButton.setAttribute("aria-label", has ? (client.audioEnabled ? "Mute microphone" : "Unmute microphone")
      : "Microphone unavailable");
  }
  const videoButton = $("[data-toggle-video]");
  if (videoButton) {
    const has = (client?.localStream?.getVideoTracks().length ?? 0) > 0;
    videoButton.disabled = !has;
    videoButton.setAttribute("aria-pressed", String(has && !client.videoEnabled));
    videoButton.querySelector("[data-label]").textContent = has && !client.videoEnabled ? "Camera on" : "Camera off";
    videoButton.setAttribute("aria-label", has ? (client.videoEnabled ? "Turn camera off" : "Turn camera on")
      : "Camera unavailable");
    const local = $("[data-local-video]");
    if (local) local.hidden = !has || !client.videoEnabled;
  }
}

$("[data-toggle-audio]")?.addEventListener("click", () => { client?.toggleAudio(); refreshControls(); });
$("[data-toggle-video]")?.addEventListener("click", () => { client?.toggleVideo(); refreshControls(); });

for (const button of $$("[data-end]")) {
  button.addEventListener("click", async () => {
    for (const b of $$("[data-end]")) b.disabled = true;
    if (client?.endSession()) {
      // The server answers with end-session; if it doesn't in a few seconds, ask over REST.
      setTimeout(() => { if (document.body.dataset.currentView === "room") endOverRest(); }, 4000);
    } else {
      endOverRest();
    }
  });
}

async function endOverRest() {
  try {
    const { session: fresh, money: totals } = await api(endpoints.end(session.id), { method: "POST" });
    ledgerMoney = totals ?? null;
    showSummary({ session: fresh, reason: fresh.endReason });
  } catch (error) {
    for (const b of $$("[data-end]")) b.disabled = false;
    toast(`The reading could not be ended: ${error.message}`);
  }
}

// ---- top up without leaving: Checkout opens in a new tab ----
for (const button of $$("[data-top-up]")) {
  button.addEventListener("click", async () => {
    const errorBox = $("[data-top-up-error]");
    errorBox.hidden = true;
    // Open the tab inside the click (popup blockers allow that), then point it at Checkout.
    const tab = window.open("about:blank", "_blank");
    try {
      const { checkoutUrl } = await api(endpoints.addFunds, {
        method: "POST", body: { amountCents: Number(button.dataset.topUp) } });
      if (tab) {
        tab.opener = null;
        tab.location.href = checkoutUrl;
      } else {
        window.open(checkoutUrl, "_blank", "noopener");
      }
    } catch (error) {
      tab?.close();
      errorBox.replaceChildren(paragraph(error.code === "payments_unavailable"
        ? "Card payments aren't available on this server right now." : error.message));
      errorBox.hidden = false;
    }
  });
}

// ---- chat ----
const chatLog = $("[data-chat-log]");
const chatForm = $("[data-chat-form]");

chatForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const input = chatForm.text;
  const text = input.value.trim();
  if (!text) return;
  if (!client?.sendChatMessage(text)) {
    toast("Your message couldn't be sent while reconnecting. Try again in a moment.");
    return;
  }
  input.value = "";
  appendChat({ text, mine: true, pending: true, at: new Date().toISOString() });
});

function onChat(message) {
  if (message.mine) {
    const pending = chatLog.querySelector("li.pending");
    const match = [...chatLog.querySelectorAll("li.pending")].find((li) => li.dataset.text === message.text);
    if (match ?? pending) {
      (match ?? pending).classList.remove("pending");
      return;
    }
  }
  appendChat(message);
}

function appendChat({ text, mine, pending = false, at }) {
  const item = document.createElement("li");
  item.className = `${mine ? "mine" : "theirs"}${pending ? " pending" : ""}`;
  item.dataset.text = text;
  const bubble = document.createElement("div");
  bubble.className = "bubble";
  bubble.textContent = text;
  const meta = document.createElement("div");
  meta.className = "meta";
  const time = at ? new Date(at) : new Date();
  meta.textContent = `${mine ? "You" : other} · ${localTime(time, { timeOnly: true })}`;
  item.append(bubble, meta);
  chatLog.append(item);
  chatLog.scrollTop = chatLog.scrollHeight;
  transcript.push({ who: mine ? "You" : other, text, at: time.toISOString() });
}

function systemLine(text) {
  const item = document.createElement("li");
  item.className = "system";
  item.textContent = text;
  chatLog.append(item);
}

function onError({ code, message }) {
  if (code === "connection_lost" || code === "media_lost") {
    $("[data-reconnecting]").hidden = true;
  }
  toast(message);
}

function paragraph(text) {
  const p = document.createElement("p");
  p.textContent = text;
  return p;
}

// ---- summary ----
const REASONS = {
  client_ended: (c) => (c ? "You ended the reading." : `${other} ended the reading.`),
  reader_ended: (c) => (c ? `${other} ended the reading.` : "You ended the reading."),
  ended_by_client: (c) => (c ? "You ended the reading." : `${other} ended the reading.`),
  ended_by_reader: (c) => (c ? `${other} ended the reading.` : "You ended the reading."),
  funds_exhausted: (c) => (c ? "Your balance ran out, so the reading ended." : "The client's paid time ran out."),
  insufficient_funds: (c) => (c ? "Your balance ran out, so the reading ended." : "The client's paid time ran out."),
  balance_exhausted: (c) => (c ? "Your balance ran out, so the reading ended." : "The client's paid time ran out."),
  grace_expired: () => "The connection could not be restored in time, so the reading ended.",
  disconnected: () => "The connection could not be restored in time, so the reading ended.",
  participant_left: () => "The connection could not be restored in time, so the reading ended.",
  timeout: () => "The connection could not be restored in time, so the reading ended.",
  not_started: () => "You weren't both connected in time, so the reading didn't start.",
  server_shutdown: () => "SoulSeer restarted, so the reading ended. Only connected time was charged.",
  server_restart: () => "SoulSeer restarted and you were not both back in time, so the reading ended. " +
    "Only the time you had was charged.",
  cancelled_by_client: (c) => (c ? "You cancelled the reading." : `${other} cancelled the reading.`),
  time_up: () => "The booked time is over.",
  reader_no_show: (c) => (c ? `${other} didn't join, so the reading was refunded.` : "You didn't join this reading."),
  client_no_show: (c) => (c ? "You didn't join this reading." : `${other} didn't join this reading.`),
};

function showSummary({ session: fresh, reason }) {
  stopPolling();
  if (fresh) session = { ...session, ...fresh };
  show("summary");
  const why = reason ?? session.endReason;
  const explain = REASONS[why];
  $("[data-summary-reason]").textContent = explain ? explain(isClient)
    : `The reading ended${why ? ` (${String(why).replaceAll("_", " ")})` : ""}.`;
  $("[data-summary-duration]").textContent = clock(session.billableSeconds ?? 0);
  $("[data-summary-duration]").setAttribute("aria-label", spokenDuration(session.billableSeconds ?? 0));
  $("[data-summary-amount-label]").textContent = isClient ? "Charged" : "You earned";
  showLedgerMoney();
  renderTranscript(transcript.length ? transcript : (data.transcript ?? []));
  if (fresh) loadTranscript();  // ended here: the stored transcript is the whole of it
  const scheduled = session.mode === "scheduled";
  $("[data-summary-note]").textContent = isClient
    ? scheduled ? "Booked readings are paid when booked; what the booking's rules gave back is in your wallet."
      : "Each minute was charged as it started; the unused part of the last one went back to your wallet."
    : "You earn 70% of what the client paid; it is in your earnings already.";
  if (isClient) refreshBalance();
  if (isClient) showAfterReading(session, { onBalance: (cents) => setNavBalance(cents, money) });
  $("#summary-title").focus?.();
}

// Every money figure of the summary is the ledger's (net of the refund of the last minute), as the API gives it;
// the meter's running figures on the live page are not it. A reading that ended before the page loaded has them in
// the page data; one that ended here asks the API once the end (and its refund) has committed.
let ledgerMoney = session.status === "ended" ? data.money ?? null : null;

async function showLedgerMoney() {
  const slot = $("[data-summary-amount]");
  slot.dataset.source = ledgerMoney ? "ledger" : "pending";
  if (!ledgerMoney) {
    slot.textContent = "…";
    for (let attempt = 0; attempt < 5 && !ledgerMoney; attempt += 1) {
      try {
        const body = await api(endpoints.session(session.id));
        session = { ...session, ...body.session };
        ledgerMoney = body.money;
      } catch { await new Promise((resolve) => setTimeout(resolve, 1000)); }
    }
  }
  if (!ledgerMoney) { slot.textContent = "—"; return; }
  slot.textContent = money(isClient ? ledgerMoney.chargedCents : ledgerMoney.earnedCents);
  slot.dataset.source = "ledger";
}

async function refreshBalance() {
  try {
    const { balanceCents } = await api(endpoints.balance);
    setNavBalance(balanceCents, money);
    $("[data-summary-balance]").textContent = money(balanceCents);
    $("[data-summary-balance-item]").hidden = false;
  } catch { /* the summary stands without it */ }
}

async function loadTranscript() {
  try {
    const { messages } = await api(endpoints.transcript(session.id));
    renderTranscript(messages.map((m) => ({ who: m.from === me.id ? "You" : other, text: m.text, at: m.at })));
  } catch { /* the lines this page saw stand */ }
}

function renderTranscript(lines) {
  const wrap = $("[data-summary-transcript-wrap]");
  const list = $("[data-summary-transcript]");
  list.replaceChildren();
  for (const line of lines) {
    const item = document.createElement("li");
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = line.who ?? (line.from === me.id ? "You" : other);
    who.title = localTime(line.at);
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = line.text;
    item.append(who, text);
    list.append(item);
  }
  wrap.hidden = lines.length === 0;
}

route();
