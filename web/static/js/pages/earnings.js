// Earnings: setting up payouts goes to Stripe's hosted onboarding. The page's CSP allows forms to post only to
// this site (form-action 'self', which also covers the redirects of a form's navigation), so the link is
// fetched and followed from here; without JavaScript the form's own POST still works where the CSP allows it.
import { api } from "../api.js";
import { endpoints } from "../endpoints.js";
import "../layout.js";

const form = document.querySelector("[data-connect-form]");
const problem = document.querySelector("[data-connect-error]");

form?.addEventListener("submit", async (event) => {
  event.preventDefault();
  const button = form.querySelector("button");
  button.disabled = true;
  try {
    const { onboardingUrl } = await api(endpoints.payoutAccount, { method: "POST" });
    window.location.assign(onboardingUrl);
  } catch (error) {
    problem.textContent = error.message || "Stripe could not be reached; try again shortly.";
    problem.hidden = false;
    button.disabled = false;
  }
});
