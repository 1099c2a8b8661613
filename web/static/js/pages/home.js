// Home: a client starts a chat, audio or video reading with an online reader, at the rate the card shows, and
// hears live when a favourite reader comes online.
import { pageData } from "../layout.js";
import { listenForAlerts } from "../live-alerts.js";
import { wireStartButtons } from "../start-reading.js";

for (const card of document.querySelectorAll("[data-reader-id]")) wireStartButtons(card);
if (pageData().user?.role === "client") listenForAlerts();
