// Notifications: mark one or all as read.
import { api } from "../api.js";
import { endpoints } from "../endpoints.js";
import { setUnreadCount, toast } from "../layout.js";

function unreadCount() {
  return document.querySelectorAll(".notification.unread").length;
}

async function markRead(item) {
  await api(endpoints.markRead(item.dataset.notificationId), { method: "POST" });
  item.classList.remove("unread");
  item.querySelector("[data-mark-read]")?.remove();
  setUnreadCount(unreadCount());
}

for (const button of document.querySelectorAll("[data-mark-read]")) {
  button.addEventListener("click", async () => {
    button.disabled = true;
    try { await markRead(button.closest("[data-notification-id]")); } catch (error) {
      button.disabled = false;
      toast(error.message);
    }
  });
}

document.querySelector("[data-mark-all]")?.addEventListener("click", async (event) => {
  const button = event.currentTarget;
  button.disabled = true;
  try {
    await api(endpoints.markAllRead, { method: "POST" });
    for (const item of document.querySelectorAll(".notification.unread")) {
      item.classList.remove("unread");
      item.querySelector("[data-mark-read]")?.remove();
    }
    setUnreadCount(0);
    button.remove();
  } catch (error) {
    button.disabled = false;
    toast(error.message);
  }
});
