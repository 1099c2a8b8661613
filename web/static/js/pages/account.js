// The account pages: forgot password, reset password (from the mailed link), the link pages (verify an address,
// confirm a new one), and the account page's forms (password, address, deletion, resend the verification).
import { api, onSubmit } from "../api.js";
import { pageData, toast } from "../layout.js";

const data = pageData();
const $ = (selector, root = document) => root.querySelector(selector);

function wire(selector, work) {
  const form = $(selector);
  if (form) onSubmit(form, $("[data-form-error]", form) ?? $("[data-form-error]"), () => work(form));
}

function done(root, text) {
  const box = $("[data-done]", root);
  if (!box) return;
  if (text) $("[data-done-text]", box).textContent = text;
  box.hidden = false;
}

wire("[data-forgot-form]", async (form) => {
  await api("/api/auth/password-reset", { method: "POST", body: { email: form.email.value } });
  form.hidden = true;
  done(document);
});

wire("[data-reset-form]", async (form) => {
  await api("/api/auth/password-reset/confirm", { method: "POST", body: { token: data.token, password: form.password.value } });
  form.hidden = true;
  done(document);
});

wire("[data-password-form]", async (form) => {
  await api("/api/account/password", { method: "POST", body: {
    currentPassword: form.currentPassword.value, newPassword: form.newPassword.value } });
  form.reset();
  $("[data-form-status]", form).textContent = "Changed. Your other devices were signed out.";
  form.querySelector('button[type="submit"]').disabled = false;
});

wire("[data-email-form]", async (form) => {
  await api("/api/account/email", { method: "POST", body: {
    newEmail: form.newEmail.value, currentPassword: form.currentPassword.value } });
  $("[data-form-status]", form).textContent = `We mailed a link to ${form.newEmail.value}: open it to make the change.`;
  form.reset();
  form.querySelector('button[type="submit"]').disabled = false;
});

wire("[data-delete-form]", async (form) => {
  if (!window.confirm("Delete your account for good?")) {
    form.querySelector('button[type="submit"]').disabled = false;
    return;
  }
  await api("/api/account/delete", { method: "POST", body: { currentPassword: form.currentPassword.value } });
  window.location.assign("/");
});

const resend = $("[data-resend]");
resend?.addEventListener("click", async () => {
  resend.disabled = true;
  try {
    await api("/api/account/verification", { method: "POST" });
    $("[data-resend-status]").textContent = "Sent. Check your mail.";
  } catch (error) {
    toast(error.message);
    resend.disabled = false;
  }
});

const link = $("[data-email-link]");
if (link) {
  const path = data.purpose === "verify" ? "/api/auth/verify-email" : "/api/auth/confirm-email";
  api(path, { method: "POST", body: { token: data.token } }).then(({ email }) => {
    $("h1", link).textContent = data.purpose === "verify" ? "Address confirmed" : "Address changed";
    done(link, `${email} is confirmed as your SoulSeer address.`);
  }, (error) => {
    $("h1", link).textContent = "This link did not work";
    const banner = $("[data-form-error]", link);
    banner.textContent = error.message;
    banner.hidden = false;
  });
}
