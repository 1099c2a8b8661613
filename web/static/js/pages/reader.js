// A reader's profile: start a reading, favourite, notify me once; for the reader themselves, their photo and
// their one reply to each review.
import { api, csrfToken, showFormError } from "../api.js";
import { pageData, toast } from "../layout.js";
import { listenForAlerts } from "../live-alerts.js";
import { remindChoice, wireStartButtons } from "../start-reading.js";

const data = pageData();
const root = document.querySelector("[data-reader-id]");
const readerId = data.reader.id;
const errorSlot = root.querySelector("[data-card-error]");
wireStartButtons(root);
remindChoice(root);

function toggle(button, path, on, labels) {
  button.addEventListener("click", async () => {
    const pressed = button.getAttribute("aria-pressed") === "true";
    button.disabled = true;
    if (errorSlot) errorSlot.textContent = "";
    try {
      const interest = await api(path, { method: pressed ? "DELETE" : "PUT" });
      const now = interest[on];
      button.setAttribute("aria-pressed", String(now));
      button.textContent = now ? labels[1] : labels[0];
    } catch (error) {
      if (errorSlot) errorSlot.textContent = error.message;
    } finally {
      button.disabled = false;
    }
  });
}

const favourite = root.querySelector("[data-favourite]");
if (favourite) toggle(favourite, `/api/favourites/${readerId}`, "favourite", ["Favourite", "Favourited"]);
const once = root.querySelector("[data-notify-once]");
if (once) {
  toggle(once, `/api/readers/${readerId}/notify-once`, "watching",
         ["Notify me when online", "We'll tell you when they're online"]);
}

const photoForm = root.querySelector("[data-photo-form]");
photoForm?.addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = photoForm.photo.files[0];
  if (!file) return;
  const button = photoForm.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const response = await fetch("/api/webrtc/reader/photo", {
      method: "POST", body: file, credentials: "same-origin",
      headers: { "Content-Type": file.type || "application/octet-stream", "X-CSRF-Token": csrfToken(),
                 Accept: "application/json" },
    });
    const payload = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = payload.error ?? {};
      showFormError(photoForm, { field: "photo", message: error.message ?? "The upload failed." });
      return;
    }
    window.location.reload();
  } finally {
    button.disabled = false;
  }
});
root.querySelector("[data-photo-remove]")?.addEventListener("click", async () => {
  try {
    await api("/api/webrtc/reader/photo", { method: "DELETE" });
    window.location.reload();
  } catch (error) { toast(error.message); }
});

for (const form of root.querySelectorAll("[data-reply-form]")) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const item = form.closest("[data-review-id]");
    try {
      const { review } = await api(`/api/reviews/${item.dataset.reviewId}/reply`, {
        method: "POST", body: { body: form.body.value } });
      const quote = document.createElement("blockquote");
      quote.className = "reply";
      const who = document.createElement("strong");
      who.textContent = `${data.reader.displayName} replied:`;
      quote.append(who, ` ${review.reply}`);
      form.replaceWith(quote);
    } catch (error) {
      showFormError(form, error);
    }
  });
}

if (data.user?.role === "client") listenForAlerts();
