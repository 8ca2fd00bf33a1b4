// The sign-in form: the token is checked against /v1/me before it is kept.
import { ApiError } from "../api.js";
import { h } from "../dom.js";
import { alertUser, clearAlert, describe } from "../notices.js";

export function renderSignIn(container, { onToken }) {
  const input = h("input", {
    id: "token",
    type: "password",
    autocomplete: "current-password",
    required: true,
    spellcheck: "false",
    "aria-describedby": "token-hint",
  });
  const button = h("button", { type: "submit" }, "Sign in");
  const form = h(
    "form",
    { class: "signin-form", novalidate: true },
    h("label", { for: "token" }, "Agent token"),
    input,
    h(
      "p",
      { id: "token-hint", class: "hint" },
      "Your personal API token. It is kept in this tab only, until you sign out or close it.",
    ),
    button,
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const value = input.value.trim();
    if (!value) {
      alertUser("Enter your agent token.");
      input.focus();
      return;
    }
    clearAlert();
    button.disabled = true;
    button.textContent = "Signing in…";
    try {
      await onToken(value);
    } catch (error) {
      button.disabled = false;
      button.textContent = "Sign in";
      input.setAttribute("aria-invalid", "true");
      alertUser(
        error instanceof ApiError && error.status === 401
          ? "That token was not accepted"
          : describe(error),
      );
      input.select();
      input.focus();
    }
  });
  input.addEventListener("input", () => input.removeAttribute("aria-invalid"));
  container.replaceChildren(
    h(
      "section",
      { class: "signin", "aria-labelledby": "signin-title" },
      h("h1", { id: "signin-title" }, "Sign in"),
      form,
    ),
  );
  document.title = "Sign in – Triage console";
  input.focus();
}
