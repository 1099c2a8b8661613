// The summary's after-reading actions for the client: rate the reading (when it can be reviewed: a paid reading,
// once, editable for 7 days), tip the reader with a gift at the price shown, message them, book again.
import { ApiError, api, showFormError } from "./api.js";
import { money } from "./format.js";
import { PRICE_CHANGED, priceChangedText } from "./prices.js";

const REASONS = {
  reading_not_paid: "Only paid readings can be reviewed.",
  reading_never_started: "This reading didn't take place, so it can't be reviewed.",
};

function requestId() {
  return `tip-${crypto.randomUUID()}`;
}

async function wireReview(root, session) {
  const section = root.querySelector("[data-rate]");
  const form = section.querySelector("[data-review-form]");
  const status = section.querySelector("[data-rate-status]");
  let state;
  try { state = await api(`/api/readings/${session.id}/review`); } catch { return; }
  let review = state.review;
  const light = (stars) => {
    for (const label of form.querySelectorAll("[data-star]")) label.classList.toggle("on", Number(label.dataset.star) <= stars);
  };
  form.addEventListener("change", () => light(Number(form.querySelector('input[name="stars"]:checked')?.value ?? 0)));
  const fill = () => {
    if (!review) return;
    form.querySelector(`input[name="stars"][value="${review.stars}"]`).checked = true;
    light(review.stars);
    form.body.value = review.body;
    status.textContent = review.canEdit
      ? `You rated this reading ${review.stars} of 5. You can change your review until ${new Date(review.editableUntil).toLocaleDateString()}.`
      : `You rated this reading ${review.stars} of 5.`;
    form.hidden = !review.canEdit;
    form.querySelector("[data-review-submit]").textContent = "Update review";
  };
  if (!state.canReview && !review) {
    const why = REASONS[state.reason];
    if (!why) return;
    status.textContent = why;
    form.hidden = true;
  }
  section.hidden = false;
  fill();
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const stars = Number(form.querySelector('input[name="stars"]:checked')?.value);
    if (!stars) { showFormError(form, new ApiError(422, "invalid", "choose 1 to 5 stars", "stars")); return; }
    const button = form.querySelector("[data-review-submit]");
    button.disabled = true;
    try {
      const body = { stars, body: form.body.value };
      ({ review } = review
        ? await api(`/api/reviews/${review.id}`, { method: "POST", body })
        : await api(`/api/readings/${session.id}/review`, { method: "POST", body }));
      fill();
      status.textContent = `Thank you: your ${review.stars}-star review is posted. ${status.textContent}`;
    } catch (error) {
      showFormError(form, error);
    } finally {
      button.disabled = false;
    }
  });
}

function wireTips(root, session, onBalance) {
  const status = root.querySelector("[data-tip-status]");
  for (const button of root.querySelectorAll("[data-tip]")) {
    let pending = null; // one request id per press, reused by its retries
    button.addEventListener("click", async () => {
      pending ??= requestId();
      for (const b of root.querySelectorAll("[data-tip]")) b.disabled = true;
      status.textContent = "";
      try {
        const { tip, balanceCents } = await api(`/api/readings/${session.id}/tips`, {
          method: "POST",
          body: { giftId: button.dataset.tip, expectedCents: Number(button.dataset.priceCents), requestId: pending },
        });
        pending = null;
        status.textContent = `Thank you: you sent a ${tip.name} (${money(tip.priceCents)}).`;
        if (balanceCents !== undefined) onBalance?.(balanceCents);
      } catch (error) {
        if (error.code === PRICE_CHANGED) {
          pending = null;
          button.dataset.priceCents = String(error.details.priceCents);
          status.textContent = priceChangedText(error, { what: "this tip", again: "Press it again to send it." });
        } else {
          if (error.status && error.status < 500) pending = null;
          status.textContent = error.message;
        }
      } finally {
        for (const b of root.querySelectorAll("[data-tip]")) b.disabled = false;
      }
    });
  }
}

export function showAfterReading(session, { onBalance } = {}) {
  const root = document.querySelector("[data-after-reading]");
  if (!root || root.dataset.wired) return;
  root.dataset.wired = "1";
  if (!session.startedAt) {  // never took place: nothing to rate or thank for
    root.querySelector("[data-tip-section]").hidden = true;
  } else {
    wireTips(root, session, onBalance);
  }
  root.hidden = false;
  wireReview(root, session);
}
