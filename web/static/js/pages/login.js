import { onSubmit, signIn } from "../api.js";
import { pageData } from "../layout.js";

const data = pageData();
const form = document.querySelector("[data-login-form]");

onSubmit(form, document.querySelector("[data-form-error]"),
  () => signIn(form.email.value, form.password.value, data.next));
