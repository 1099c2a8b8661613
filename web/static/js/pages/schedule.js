// The reader's weekly hours: time zone, lengths, notice and horizon, hours per weekday (local time, quarter hours),
// and exceptions on single dates (a day off, hours off, extra hours).
import { api, clearFormErrors, sentence, showFormError } from "../api.js";
import { pageData, toast } from "../layout.js";

const data = pageData();
const DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
const form = document.querySelector("[data-schedule-form]");
const banner = form.querySelector("[data-form-error]");
const week = form.querySelector("[data-week]");
const zoneSelect = form.querySelector("[data-time-zone]");
let availability = data.availability;

const hhmm = (minutes) => `${String(Math.floor(minutes / 60) % 24).padStart(2, "0")}:${String(minutes % 60).padStart(2, "0")}`;
function minutesOf(value, isEnd) {
  const match = /^(\d{2}):(\d{2})$/.exec(value || "");
  if (!match) return null;
  const total = Number(match[1]) * 60 + Number(match[2]);
  return isEnd && total === 0 ? 1440 : total; // "00:00" as an end is midnight at the end of the day
}

function zones() {
  const own = Intl.DateTimeFormat().resolvedOptions().timeZone;
  const all = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [own];
  const chosen = availability.timeZone || own;
  const names = all.includes(chosen) ? all : [chosen, ...all];
  zoneSelect.replaceChildren(...names.map((name) => new Option(name.replaceAll("_", " "), name, false, name === chosen)));
}

function rangeRow(container, start = 540, end = 720) {
  const row = document.createElement("div");
  row.className = "range";
  const from = Object.assign(document.createElement("input"), { type: "time", step: 900, value: hhmm(start), className: "input" });
  const to = Object.assign(document.createElement("input"), { type: "time", step: 900, value: hhmm(end), className: "input" });
  from.dataset.from = ""; to.dataset.to = "";
  from.setAttribute("aria-label", "From"); to.setAttribute("aria-label", "To");
  const remove = Object.assign(document.createElement("button"), { type: "button", className: "button small ghost", textContent: "Remove" });
  remove.addEventListener("click", () => row.remove());
  row.append(from, document.createTextNode("to"), to, remove);
  container.append(row);
}

function renderWeek() {
  week.replaceChildren(...DAYS.map((name, weekday) => {
    const day = document.createElement("div");
    day.className = "day";
    day.dataset.weekday = String(weekday);
    const label = document.createElement("strong");
    label.textContent = name;
    const ranges = document.createElement("div");
    ranges.className = "ranges";
    for (const h of availability.weekly.filter((w) => w.weekday === weekday)) rangeRow(ranges, h.start, h.end);
    const add = Object.assign(document.createElement("button"), { type: "button", className: "button small secondary", textContent: "Add hours" });
    add.dataset.addHours = name;
    add.addEventListener("click", () => rangeRow(ranges, ranges.children.length ? 840 : 540, ranges.children.length ? 1020 : 720));
    const cell = document.createElement("div");
    cell.append(ranges, add);
    day.append(label, cell);
    return day;
  }));
}

function render() {
  zones();
  for (const box of form.querySelectorAll("[data-length]")) box.checked = availability.lengths.includes(Number(box.value));
  form.querySelector("[data-notice]").value = String(availability.noticeMinutes);
  form.querySelector("[data-horizon]").value = String(availability.horizonDays);
  renderWeek();
  renderExceptions();
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearFormErrors(form, banner);
  const weekly = [];
  for (const day of week.querySelectorAll("[data-weekday]")) {
    for (const row of day.querySelectorAll(".range")) {
      weekly.push({ weekday: Number(day.dataset.weekday), start: minutesOf(row.querySelector("[data-from]").value, false),
                    end: minutesOf(row.querySelector("[data-to]").value, true) });
    }
  }
  const body = {
    timeZone: zoneSelect.value,
    lengths: [...form.querySelectorAll("[data-length]:checked")].map((box) => Number(box.value)),
    noticeMinutes: Number(form.querySelector("[data-notice]").value),
    horizonDays: Number(form.querySelector("[data-horizon]").value),
    weekly,
  };
  const status = form.querySelector("[data-form-status]");
  try {
    ({ availability } = await api("/api/webrtc/reader/schedule", { method: "PUT", body }));
    status.textContent = "Saved. Clients can book these hours now.";
    status.className = "form-status ok";
    toast("Your weekly hours are saved.");
  } catch (error) {
    status.textContent = "";
    showFormError(form, error, banner);
  }
});

// ---- exceptions ----
const exceptionForm = document.querySelector("[data-exception-form]");
const exceptionError = exceptionForm.querySelector("[data-exception-error]");
const kind = exceptionForm.elements.kind;
kind.addEventListener("change", () => { exceptionForm.querySelector("[data-exception-hours]").hidden = kind.value === "off-day"; });

function describe(e) {
  const date = new Date(`${e.day}T12:00:00`).toLocaleDateString(undefined, { weekday: "short", month: "short", day: "numeric" });
  if (e.start === null) return `${date}: day off`;
  return `${date}: ${e.available ? "extra hours" : "off"} ${hhmm(e.start)}–${hhmm(e.end)}`;
}

function renderExceptions() {
  const list = document.querySelector("[data-exceptions]");
  list.replaceChildren(...availability.exceptions.map((e) => {
    const item = document.createElement("li");
    const text = Object.assign(document.createElement("span"), { className: "grow", textContent: describe(e) });
    const remove = Object.assign(document.createElement("button"), { type: "button", className: "button small ghost", textContent: "Remove" });
    remove.addEventListener("click", async () => {
      remove.disabled = true;
      try {
        await api(`/api/webrtc/reader/schedule/exceptions/${encodeURIComponent(e.id)}`, { method: "DELETE" });
        availability.exceptions = availability.exceptions.filter((x) => x.id !== e.id);
        renderExceptions();
      } catch (error) { remove.disabled = false; toast(error.message); }
    });
    item.append(text, remove);
    return item;
  }));
}

exceptionForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  exceptionError.hidden = true;
  const hours = kind.value !== "off-day";
  const body = { day: exceptionForm.elements.day.value, available: kind.value === "extra",
                 start: hours ? minutesOf(exceptionForm.elements.start.value, false) : null,
                 end: hours ? minutesOf(exceptionForm.elements.end.value, true) : null };
  try {
    const { exception } = await api("/api/webrtc/reader/schedule/exceptions", { method: "POST", body });
    availability.exceptions = [...availability.exceptions, exception].sort((a, b) => a.day.localeCompare(b.day));
    renderExceptions();
  } catch (error) {
    exceptionError.textContent = sentence(error.message);
    exceptionError.hidden = false;
  }
});

render();
