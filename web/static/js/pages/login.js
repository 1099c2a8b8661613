import { api, clearFormErrors, showFormError } from "../api.js";
import { pageData } from "../layout.js";

const data = pageData();
const form = document.querySelector("[data-login-form]");
const banner = document.querySelector("[data-form-error]");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearFormErrors(form, banner);
  const button = form.querySelector('button[type="submit"]');
  button.disabled = true;
  try {
    const { user } = await api("/api/auth/login", {
      method: "POST",
      body: { email: form.email.value, password: form.password.value },
    });
    window.location.assign(data.next || (user.role === "reader" ? "/dashboard" : "/"));
  } catch (error) {
    showFormError(form, error, banner);
    button.disabled = false;
  }
});
