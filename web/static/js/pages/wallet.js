// Wallet: balance, adding funds through Stripe Checkout, and the transaction history.
import { api, clearFormErrors, showFormError } from "../api.js";
import { endpoints } from "../endpoints.js";
import { localTime, money, parseDollars } from "../format.js";
import { pageData, setNavBalance } from "../layout.js";

const data = pageData();
const form = document.querySelector("[data-add-funds-form]");
const banner = form.querySelector("[data-form-error]");
const customField = form.querySelector("[data-custom-field]");
const balanceSlot = document.querySelector("[data-balance]");

for (const radio of form.querySelectorAll('input[name="preset"]')) {
  radio.addEventListener("change", () => {
    customField.hidden = form.preset.value !== "custom";
    if (!customField.hidden) form.amountCents.focus();
  });
}

function chosenCents() {
  if (form.preset.value !== "custom") return Number(form.preset.value);
  const cents = parseDollars(form.amountCents.value);
  if (cents === null) throw Object.assign(new Error("Enter an amount like 20 or 20.50"), { field: "amountCents" });
  return cents;
}

export async function startCheckout(amountCents) {
  const { checkoutUrl } = await api(endpoints.addFunds, { method: "POST", body: { amountCents } });
  return checkoutUrl;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearFormErrors(form, banner);
  let amountCents;
  try {
    amountCents = chosenCents();
  } catch (error) {
    customField.hidden = false;
    showFormError(form, error, banner);
    return;
  }
  const button = form.querySelector('button[type="submit"]');
  button.disabled = true;
  try {
    window.location.assign(await startCheckout(amountCents));
  } catch (error) {
    if (error.code === "payments_unavailable") {
      error.field = null;
      error.message = "Card payments aren't set up on this SoulSeer server yet. An operator can add credit with `soulseer credit`.";
    }
    if (error.field === "amountCents") {
      customField.hidden = false;
      if (error.status === 422) error.message = `Choose an amount between ${money(data.minCents)} and ${money(data.maxCents)}`;
    }
    showFormError(form, error, banner);
    button.disabled = false;
  }
});

// Ledger movement kinds (billing/ledger.py), as a person reads them.
const DESCRIBE = {
  deposit: "Funds added",
  reading_minute: "Reading minute",
  refund: "Unused time returned",
  scheduled_reading: "Booked reading",
  stripe_refund: "Card refund",
  dispute: "Card payment disputed",
  dispute_reinstated: "Dispute resolved in your favour",
  withdrawal_failed: "Withdrawal returned: the card refund failed",
};
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function describe(tx) {
  const base = DESCRIBE[tx.kind] ?? String(tx.kind ?? "Transaction").replaceAll("_", " ");
  if (tx.kind === "stripe_refund" && tx.memo === "withdrawal to card") return "Withdrawn to your card";
  if (tx.kind === "refund" && tx.originalKind === "scheduled_reading") return "Booking refunded";
  return tx.memo && tx.kind === "deposit" ? `${base} · ${tx.memo}` : base;
}

const params = new URLSearchParams(window.location.search);
const returned = params.get("checkout") === "success";
// The checkout Stripe sent the browser back from (success_url carries its id): the notice is about it alone,
// never about another deposit that happens to be recent.
const returnedCheckout = returned ? params.get("session_id") : null;

function announce(text) {
  const notice = document.querySelector("[data-return-notice]");
  notice.replaceChildren();
  const p = document.createElement("p");
  p.textContent = text;
  notice.append(p);
  notice.hidden = false;
}

// Ask about the returned checkout until its payment is credited (the webhook comes a moment after the redirect).
async function followCheckout(checkoutId) {
  const notice = document.querySelector("[data-return-notice]");
  notice.hidden = false;
  for (let tries = 0; tries < 40; tries += 1) {
    try {
      const { checkout } = await api(endpoints.checkout(checkoutId));
      if (checkout.status === "credited") {
        announce(`Thank you. ${money(checkout.amountCents)} was added to your wallet.`);
        notice.dataset.checkout = "credited";
        await refreshBalance();
        await loadTransactions();
        return;
      }
    } catch (error) {
      if (error.status === 404) {
        announce("We couldn't find that checkout. Your balance and transactions below are up to date.");
        return;
      }
    }
    await new Promise((resolve) => setTimeout(resolve, tries < 10 ? 1000 : 3000));
  }
  announce("Stripe hasn't confirmed this payment yet. It will show here once it does; you can leave this page.");
}

async function loadTransactions() {
  const body = document.querySelector("[data-transactions]");
  try {
    const { transactions } = await api(endpoints.transactions);
    body.replaceChildren();
    if (!transactions?.length) {
      const row = body.insertRow();
      const cell = row.insertCell();
      cell.colSpan = 3;
      cell.className = "muted";
      cell.textContent = "No transactions yet.";
      return;
    }
    for (const tx of transactions) {
      const row = body.insertRow();
      row.insertCell().textContent = localTime(tx.createdAt ?? tx.at);
      const what = row.insertCell();
      what.textContent = describe(tx);
      if (typeof tx.ref === "string" && UUID.test(tx.ref)) {
        what.append(" ");
        const link = document.createElement("a");
        link.href = `/readings/${encodeURIComponent(tx.ref)}`;
        link.textContent = "details";
        link.setAttribute("aria-label", `details of the reading (${describe(tx)})`);
        what.append(link);
      }
      const amount = row.insertCell();
      const cents = tx.amountCents ?? tx.cents ?? 0;
      amount.className = `num ${cents > 0 ? "amount-in" : "amount-out"}`;
      amount.textContent = (cents > 0 ? "+" : "") + money(cents);
    }
  } catch (error) {
    body.replaceChildren();
    const cell = body.insertRow().insertCell();
    cell.colSpan = 3;
    cell.className = "muted";
    cell.textContent = `Transactions are unavailable right now (${error.message}).`;
  }
}

async function refreshBalance() {
  try {
    const { balanceCents } = await api(endpoints.balance);
    balanceSlot.textContent = money(balanceCents);
    setNavBalance(balanceCents, money);
    return balanceCents;
  } catch { return null; }
}

if (params.get("checkout") === "cancelled") {
  const notice = document.querySelector("[data-cancel-notice]");
  if (notice) notice.hidden = false;
}
if (returnedCheckout) followCheckout(returnedCheckout);
loadTransactions();
