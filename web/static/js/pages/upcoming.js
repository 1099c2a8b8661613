// The Upcoming list: each booked reading's time in the viewer's zone, a join button that opens by itself when the
// room does, the .ics file, and (for the client) cancelling by the policy.
import { api, sentence } from "../api.js";
import { endpoints } from "../endpoints.js";
import { localTime, money } from "../format.js";
import "../layout.js";

const shortTime = (iso) => localTime(iso, { timeOnly: true });

function refresh() {
  const now = Date.now();
  for (const item of document.querySelectorAll("[data-upcoming-id]")) {
    const opens = Date.parse(item.dataset.opensAt);
    const join = item.querySelector("[data-join]");
    const open = now >= opens;
    join.setAttribute("aria-disabled", String(!open));
    join.classList.toggle("secondary", !open);
    item.querySelector("[data-opens-text]").textContent = open ? " · the room is open" : ` · opens at ${shortTime(item.dataset.opensAt)}`;
  }
}

for (const join of document.querySelectorAll("[data-join]")) {
  join.addEventListener("click", (event) => {
    if (join.getAttribute("aria-disabled") === "true") event.preventDefault();
  });
}

for (const button of document.querySelectorAll("[data-cancel-booking]")) {
  button.addEventListener("click", async () => {
    const item = button.closest("[data-upcoming-id]");
    const slot = document.querySelector("[data-upcoming-error]");
    button.disabled = true;
    try {
      const { refundedCents } = await api(endpoints.cancel(item.dataset.upcomingId), { method: "POST" });
      item.querySelector("[data-opens-text]").textContent = ` · cancelled, ${money(refundedCents)} refunded`;
      item.querySelector("[data-join]").remove();
      button.remove();
    } catch (error) {
      slot.textContent = sentence(error.message);
      button.disabled = false;
    }
  });
}

refresh();
setInterval(refresh, 5000);
