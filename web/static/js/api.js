// Calls to SoulSeer's REST API from a page: JSON in and out, the login's CSRF token on every write,
// and errors as ApiError values carrying the API's {code, message, field} and the rest of its error object
// (e.g. price_changed's priceCents) as `details`.

export class ApiError extends Error {
  constructor(status, code, message, field, details) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.field = field ?? null;
    this.details = details ?? {};
  }
}

export function csrfToken() {
  return document.querySelector('meta[name="csrf-token"]')?.content ?? "";
}

export async function api(path, { method = "GET", body, signal } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && method !== "HEAD") {
    const token = csrfToken();
    if (token) headers["X-CSRF-Token"] = token;
  }
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      signal,
    });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "network", "We couldn't reach SoulSeer. Check your connection and try again.");
  }
  let payload = null;
  const text = await response.text();
  if (text) {
    try { payload = JSON.parse(text); } catch { payload = null; }
  }
  if (!response.ok) {
    const error = payload?.error ?? {};
    throw new ApiError(response.status, error.code ?? "error",
      error.message ?? `Something went wrong (${response.status}).`, error.field, error);
  }
  return payload;
}

// Show an API error next to the form field it names (the API's 422 `field`), else in the form's banner.
export function showFormError(form, error, banner) {
  clearFormErrors(form, banner);
  const slot = error.field ? form.querySelector(`[data-error-for="${CSS.escape(error.field)}"]`) : null;
  if (slot) {
    slot.textContent = sentence(inWords(form, error.field, error.message));
    const field = slot.closest(".field, .fieldset");
    field?.classList.add("has-error");
    const input = form.querySelector(`[name="${CSS.escape(error.field)}"]`);
    if (input) {
      input.setAttribute("aria-invalid", "true");
      input.focus();
    }
    return;
  }
  if (banner) {
    banner.textContent = sentence(error.message);
    banner.hidden = false;
    banner.focus?.();
  }
}

export function clearFormErrors(form, banner) {
  for (const slot of form.querySelectorAll("[data-error-for]")) slot.textContent = "";
  for (const field of form.querySelectorAll(".has-error")) field.classList.remove("has-error");
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  if (banner) { banner.hidden = true; banner.textContent = ""; }
}

// The API names fields as in JSON ("displayName must be ..."); on a page, say it with the field's label.
function inWords(form, field, message) {
  const input = form.querySelector(`[name="${CSS.escape(field)}"]`);
  const label = input?.id ? form.querySelector(`label[for="${CSS.escape(input.id)}"]`)?.textContent?.trim() : null;
  const text = String(message || "");
  return label && text.startsWith(field) ? label + text.slice(field.length) : text;
}

/** A server message as a sentence: "the reader is not online" reads "The reader is not online." */
export function sentence(message) {
  const text = String(message || "Something went wrong.");
  return text.charAt(0).toUpperCase() + text.slice(1) + (/[.!?]$/.test(text) ? "" : ".");
}

/** Run `work` when `form` is submitted: errors cleared first, the submit button disabled while it runs, and a
 * refusal shown on the form (and the button enabled again) if it throws. */
export function onSubmit(form, banner, work) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearFormErrors(form, banner);
    const button = form.querySelector('button[type="submit"]');
    button.disabled = true;
    try {
      await work();
    } catch (error) {
      showFormError(form, error, banner);
      button.disabled = false;
    }
  });
}

/** Log in with a password and go where the page was asked to lead (`next`), else to the user's own home. */
export async function signIn(email, password, next) {
  const { user } = await api("/api/auth/login", { method: "POST", body: { email, password } });
  window.location.assign(next || (user.role === "reader" ? "/dashboard" : "/"));
}
