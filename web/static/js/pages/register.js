import { api, onSubmit, signIn } from "../api.js";
import { pageData } from "../layout.js";

const data = pageData();
const form = document.querySelector("[data-register-form]");

onSubmit(form, document.querySelector("[data-form-error]"), async () => {
  const body = {
    role: form.querySelector('input[name="role"]:checked')?.value ?? "client",
    displayName: form.displayName.value,
    email: form.email.value,
    password: form.password.value,
  };
  await api("/api/auth/register", { method: "POST", body });
  await signIn(body.email, body.password, data.next);
});
