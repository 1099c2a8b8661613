// The reader's studio: start a stream, publish the camera, watch viewers, gifts and chat, end the stream.
import { api, clearFormErrors, sentence, showFormError } from "../api.js";
import { money } from "../format.js";
import { pageData, toast } from "../layout.js";
import { StreamClient } from "../stream-client.js";
import { StreamView, showConnection, wireChat } from "../stream-view.js";

const data = pageData();
const root = document.querySelector("[data-stream-live]");
const startView = root.querySelector("[data-start-view]");
const studio = root.querySelector("[data-studio-view]");
const endedView = root.querySelector("[data-ended-view]");
const form = root.querySelector("[data-start-form]");
const banner = root.querySelector("[data-start-error]");
const view = new StreamView(studio, { userId: data.user?.id });
const preview = studio.querySelector("[data-local-video]");
const placeholder = studio.querySelector("[data-placeholder]");
const placeholderText = studio.querySelector("[data-placeholder-text]");
const connection = studio.querySelector("[data-connection]");
const mediaError = studio.querySelector("[data-media-error]");
const request = studio.querySelector("[data-request]");
let client = null;
let totalCents = (data.leaderboard ?? []).reduce((sum, e) => sum + e.totalCents, 0);

function finished() {
  studio.hidden = true;
  endedView.hidden = false;
  endedView.querySelector("[data-ended-total]").textContent = money(totalCents);
  client?.leave();
}

function run(stream) {
  startView.hidden = true;
  studio.hidden = false;
  studio.querySelector("[data-stream-title]").textContent = stream.title;
  view.leaderboard(data.leaderboard ?? []);
  client = new StreamClient({ streamId: stream.id });
  window.soulseerStream = client; // tests and the curious read getStats() here
  client.addEventListener("connection", (e) => showConnection(connection, e.detail.state));
  client.addEventListener("local-stream", (e) => {
    preview.srcObject = e.detail.stream;
    preview.hidden = false;
    placeholder.hidden = true;
  });
  client.addEventListener("media-error", (e) => {
    mediaError.textContent = e.detail.message;
    mediaError.hidden = false;
    placeholderText.textContent = "No camera: your viewers can still chat and send gifts.";
  });
  client.addEventListener("stream-state", (e) => {
    view.state(e.detail);
    if (Array.isArray(e.detail.leaderboard)) {
      totalCents = e.detail.leaderboard.reduce((sum, entry) => sum + entry.totalCents, 0);
    }
    if (e.detail.status === "ended") finished();
  });
  client.addEventListener("gift", (e) => view.gift(e.detail));
  client.addEventListener("chat-message", (e) => view.chat(e.detail));
  client.addEventListener("notification", (e) => {
    const note = e.detail;
    const noteSession = note.sessionId ?? note.session?.id;
    // The request was withdrawn, expired or answered elsewhere: the banner about it goes.
    if (["session-cancelled", "session-expired", "session-declined", "session-accepted"].includes(note.kind)) {
      if (noteSession && request.dataset.sessionId === noteSession) {
        request.hidden = true;
        delete request.dataset.sessionId;
      }
      return;
    }
    if (note.kind !== "session-requested") return;
    const session = note.session ?? note;
    request.querySelector("[data-request-text]").textContent =
      `${session.clientName ?? "A viewer"} asks for a private ${session.sessionType ?? ""} reading.`;
    const sessionId = note.sessionId ?? note.session?.id;
    if (sessionId) {
      request.querySelector("[data-request-link]").href = `/readings/${encodeURIComponent(sessionId)}`;
      request.dataset.sessionId = sessionId;
    }
    request.hidden = false;
    toast("A viewer asks for a private reading.");
  });
  client.addEventListener("error", (e) => {
    if (e.detail.code === "stream_ended") finished();
    else view.system(sentence(e.detail.message));
  });
  wireChat(studio.querySelector("[data-chat-form]"), client, view);
  client.start();
}

studio.querySelector("[data-end-stream]").addEventListener("click", async (event) => {
  event.currentTarget.disabled = true;
  try {
    await api(`/api/streams/${encodeURIComponent(data.stream?.id ?? client.streamId)}/end`, { method: "POST" });
    finished();
  } catch (error) {
    event.currentTarget.disabled = false;
    view.system(sentence(error.message));
  }
});

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearFormErrors(form, banner);
  const title = form.elements.namedItem("title").value;
  const description = form.elements.namedItem("description").value;
  try {
    const { stream } = await api("/api/streams", { method: "POST", body: { title, description } });
    data.stream = stream;
    history.replaceState(null, "", "/live");
    run(stream);
  } catch (error) {
    showFormError(form, error, banner);
  }
});

if (data.stream) run(data.stream);
window.addEventListener("pagehide", () => client?.leave());
