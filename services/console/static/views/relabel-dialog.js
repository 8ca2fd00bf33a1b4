// "Correct tags": a supervisor's correction of a case's tags, which also becomes training
// data for the classifier. A native modal <dialog> keeps focus inside and closes on Escape.
import * as api from "../api.js";
import { h, uid } from "../dom.js";
import { CATEGORIES, DIFFICULT_TYPES, SENTIMENTS, label, shortId } from "../format.js";
import { announce, describe } from "../notices.js";
import { session } from "../store.js";

let dialog = null;

function select(id, text, values) {
  return [
    h("label", { for: id }, text),
    h(
      "select",
      { id },
      values.map((v) => h("option", { value: v }, label(v))),
    ),
  ];
}

function build() {
  const titleId = uid("relabel-title");
  const problemId = uid("relabel-problem");
  const form = h(
    "form",
    { class: "relabel-form", novalidate: true },
    h("h2", { id: titleId }, "Correct tags"),
    h(
      "p",
      { class: "hint" },
      "Set the tags the classifier should have given. Only the tags you change are sent. " +
        "Corrections are used to retrain the model: every message of the case becomes a " +
        "training example with these labels.",
    ),
    h("p", { class: "relabel-current" }),
    h(
      "div",
      { class: "field-grid" },
      select("relabel-sentiment", "Sentiment", SENTIMENTS),
      select("relabel-category", "Category", CATEGORIES),
      select("relabel-difficult", "Difficult type", DIFFICULT_TYPES),
    ),
    h("p", { id: problemId, class: "dialog-problem", role: "alert" }),
    h(
      "div",
      { class: "button-row" },
      h("button", { type: "submit" }, "Save correction"),
      h("button", { type: "button", class: "secondary", value: "cancel" }, "Cancel"),
    ),
  );
  const el = h("dialog", { class: "relabel-dialog", "aria-labelledby": titleId }, form);
  el.querySelector("button[value=cancel]").addEventListener("click", () => el.close());
  el.addEventListener("keydown", (e) => trapTab(el, e));
  document.body.append(el);
  return el;
}

// A modal dialog makes the page inert, but Tab can still leave it for the browser's own
// controls: cycle within the dialog instead.
export function trapTab(el, e) {
  if (e.key !== "Tab") return;
  const focusable = [...el.querySelectorAll("select, button, input, textarea")].filter(
    (f) => !f.disabled && f.offsetParent !== null,
  );
  if (!focusable.length) return;
  const first = focusable[0];
  const last = focusable[focusable.length - 1];
  if (e.shiftKey && document.activeElement === first) {
    e.preventDefault();
    last.focus();
  } else if (!e.shiftKey && document.activeElement === last) {
    e.preventDefault();
    first.focus();
  }
}

/**
 * Open the dialog for a case; `returnFocus` gets focus back when it closes. Options:
 * `proposed` ({sentiment, category, difficult}, any of them): values chosen in advance (the
 * review lane offers the runner-up of a tag that needs review); `onSaved(updated)`: after a
 * correction is saved.
 */
export function openRelabel(c, returnFocus, { proposed = {}, onSaved = null } = {}) {
  dialog ??= build();
  const form = dialog.querySelector("form");
  const first = c.messages?.[0];
  const current = {
    sentiment: first?.sentiment.label ?? "neutral",
    category: c.category,
    difficult: c.difficult,
  };
  form.querySelector("h2").textContent = `Correct tags of case ${shortId(c.case_id)}`;
  form.querySelector(".relabel-current").textContent =
    `Now: ${label(current.sentiment)} sentiment, ${label(current.category)}, ` +
    `${label(current.difficult)}.`;
  const fields = {
    sentiment: form.querySelector("#relabel-sentiment"),
    category: form.querySelector("#relabel-category"),
    difficult: form.querySelector("#relabel-difficult"),
  };
  for (const [name, el] of Object.entries(fields)) el.value = proposed[name] ?? current[name];
  const problem = form.querySelector(".dialog-problem");
  problem.textContent = "";
  const save = form.querySelector("button[type=submit]");
  save.disabled = false;

  form.onsubmit = async (e) => {
    e.preventDefault();
    const body = {};
    for (const [name, el] of Object.entries(fields)) {
      if (el.value !== current[name]) body[name] = el.value;
    }
    if (!Object.keys(body).length) {
      problem.textContent = "Nothing changed: choose the right tag first.";
      return;
    }
    save.disabled = true;
    try {
      const updated = await api.post(api.casePath(c.case_id, "relabel"), body);
      session.updateCase(updated);
      dialog.close();
      announce(`Tags of case ${shortId(c.case_id)} corrected; the correction goes to retraining.`);
      onSaved?.(updated);
    } catch (error) {
      save.disabled = false;
      problem.textContent = `Not saved. ${describe(error)}`;
    }
  };
  dialog.addEventListener(
    "close",
    () => {
      if (returnFocus?.isConnected) returnFocus.focus();
    },
    { once: true },
  );
  dialog.showModal();
  fields.category.focus();
}
