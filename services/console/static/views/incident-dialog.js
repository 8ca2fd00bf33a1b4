// "Tag as incident": a supervisor ties the cases of an emerging issue to an incident reference
// (POST /v1/incidents with the cluster's member event ids); agents then see the reference on
// each case. A native modal <dialog>, as the relabel dialog: focus stays inside, Escape closes.
import * as api from "../api.js";
import { h, uid } from "../dom.js";
import { number } from "../format.js";
import { announce, describe } from "../notices.js";
import { trapTab } from "./relabel-dialog.js";

// services/common/cases.py IncidentTag.reference.
const REFERENCE = /^[A-Za-z0-9][A-Za-z0-9._:/-]*$/;
const MAX_EVENT_IDS = 500;

let dialog = null;

function build() {
  const titleId = uid("incident-title");
  const form = h(
    "form",
    { class: "relabel-form", novalidate: true },
    h("h2", { id: titleId }, "Tag as incident"),
    h("p", { class: "incident-scope hint" }),
    h("label", { for: "incident-reference" }, "Incident reference"),
    h("input", {
      id: "incident-reference",
      type: "text",
      maxlength: "64",
      autocomplete: "off",
      spellcheck: "false",
      "aria-describedby": "incident-reference-hint",
    }),
    h(
      "p",
      { id: "incident-reference-hint", class: "hint" },
      "For example INC-42: letters, digits and . _ : / - (up to 64).",
    ),
    h("label", { for: "incident-note" }, "Note for the agents (optional)"),
    h("textarea", { id: "incident-note", rows: "3", maxlength: "500" }),
    h("p", { class: "dialog-problem", role: "alert" }),
    h(
      "div",
      { class: "button-row" },
      h("button", { type: "submit" }, "Tag cases"),
      h("button", { type: "button", class: "secondary", value: "cancel" }, "Cancel"),
    ),
  );
  const el = h("dialog", { class: "relabel-dialog", "aria-labelledby": titleId }, form);
  el.querySelector("button[value=cancel]").addEventListener("click", () => el.close());
  el.addEventListener("keydown", (e) => trapTab(el, e));
  document.body.append(el);
  return el;
}

/** One sentence of the router's answer. */
export function taggedText(result) {
  const n = (list) => number(list?.length ?? 0);
  return (
    `${result.reference}: ${n(result.tagged)} cases tagged, ${n(result.unchanged)} already ` +
    `tagged, ${n(result.missing)} messages with no case.`
  );
}

/**
 * Open the dialog for a cluster. `memberIds()` resolves to its members' event ids (fetched
 * fresh when the dialog is sent); `onTagged(result)` gets the router's answer.
 */
export function openIncident({ title, memberIds, returnFocus, onTagged }) {
  dialog ??= build();
  const form = dialog.querySelector("form");
  const reference = form.querySelector("#incident-reference");
  const note = form.querySelector("#incident-note");
  const problem = form.querySelector(".dialog-problem");
  const send = form.querySelector("button[type=submit]");
  form.querySelector(".incident-scope").textContent =
    `Every case holding a message of “${title}” gets the reference; their agents see it.`;
  problem.textContent = "";
  send.disabled = false;

  form.onsubmit = async (e) => {
    e.preventDefault();
    const ref = reference.value.trim();
    if (!REFERENCE.test(ref) || ref.length > 64) {
      problem.textContent =
        "Give a reference of letters, digits and . _ : / -, starting with a letter or digit.";
      reference.focus();
      return;
    }
    send.disabled = true;
    problem.textContent = "";
    try {
      const ids = (await memberIds()).slice(0, MAX_EVENT_IDS);
      if (!ids.length) throw new Error("the issue has no messages left to tag");
      const result = await api.post("/v1/incidents", {
        reference: ref,
        note: note.value.trim() || null,
        event_ids: ids,
      });
      dialog.close();
      announce(taggedText(result));
      onTagged?.(result);
    } catch (error) {
      send.disabled = false;
      problem.textContent = `Not tagged. ${describe(error, { notFound: "Not found" })}`;
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
  reference.focus();
}
