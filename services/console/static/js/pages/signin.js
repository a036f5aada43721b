// Sign-in: the token an administrator created (POST /v1/admin/tokens), checked with one alert
// read before the queue opens. It is kept in sessionStorage only.
import { ApiError, get } from "../api.js";
import { h, notice } from "../dom.js";
import { t } from "../i18n.js";
import { rememberCaller, signIn, signOut } from "../session.js";

export function render(view) {
  const input = h("input", { name: "token", type: "password", autocomplete: "off", spellcheck: "false", required: true, id: "token" });
  const message = h("div", { class: "message" });
  const button = h("button", { type: "submit", class: "primary" }, t("signin"));
  const form = h("form", { class: "card signin", novalidate: true },
    h("h1", null, t("signin_title")),
    h("p", { class: "muted" }, t("signin_hint")),
    h("label", { for: "token" }, t("token")), input, button, message);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = input.value.trim();
    if (!value) return;
    button.disabled = true;
    message.replaceChildren();
    signIn(value);
    try {
      const who = await get("/v1/me");
      if (who.role === "bank") throw new ApiError(403, "forbidden");
      rememberCaller(who);
      location.hash = "#/queue";
    } catch (error) {
      signOut();
      const text = error instanceof ApiError && error.status === 401 ? t("signin_bad")
        : error instanceof ApiError && error.status === 403 ? t("signin_forbidden") : `${t("error")}${error.message}`;
      message.append(notice(text, "error"));
      button.disabled = false;
    }
  });
  view.append(form);
  input.focus();
}
