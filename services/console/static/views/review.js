// The review lane, for supervisors: cases whose tags the classifier was unsure of, oldest
// first. Confirm keeps the tags; Correct opens the tag dialog with the runner-up chosen where a
// tag needs review. A held case is offered once reviewed. Refreshed after each action and every
// 10 s.
import * as api from "../api.js";
import { tick } from "../clock.js";
import { h, reconcile, uid } from "../dom.js";
import { label, percent, shortId, time } from "../format.js";
import { alertUser, announce, clearAlert, describe } from "../notices.js";
import { session } from "../store.js";
import { priorityBadge } from "./badges.js";
import { openRelabel } from "./relabel-dialog.js";

const REFRESH_MS = 10000;
const LANE_LIMIT = 200;
const TAGS = [
  ["sentiment", "Sentiment"],
  ["category", "Category"],
  ["difficult", "Difficult type"],
];

/** The runner-up of each tag that needs review, across the item's messages (first wins). */
export function proposedLabels(item) {
  const proposed = {};
  for (const m of item.messages) {
    for (const [name] of TAGS) {
      const tag = m[name];
      if (tag?.needs_review && tag.runner_up && proposed[name] === undefined) {
        proposed[name] = tag.runner_up;
      }
    }
  }
  return proposed;
}

function tagTable(m) {
  return h(
    "table",
    { class: "compact review-tags" },
    h("caption", { class: "visually-hidden" }, "Tags of the message"),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        ["Tag", "Label", "Probability", "Runner-up", "Review"].map((t) =>
          h("th", { scope: "col" }, t),
        ),
      ),
    ),
    h(
      "tbody",
      {},
      TAGS.map(([name, title]) => {
        const tag = m[name];
        return h(
          "tr",
          {},
          h("th", { scope: "row" }, title),
          h("td", {}, label(tag.label)),
          h("td", { class: "num" }, percent(tag.probability)),
          h(
            "td",
            {},
            tag.runner_up ? `${label(tag.runner_up)} ${percent(tag.runner_up_probability)}` : "—",
          ),
          h(
            "td",
            {},
            tag.needs_review
              ? h(
                  "span",
                  { class: "review-tag" },
                  h("span", { "aria-hidden": "true" }, "? "),
                  "Unsure",
                )
              : "OK",
          ),
        );
      }),
    ),
  );
}

export class ReviewView {
  constructor() {
    this.title = h("h1", { tabindex: "-1" }, "Review");
    this.updated = h("p", { class: "updated" }, "Loading…");
    this.list = h("ol", { class: "review-list", "aria-label": "Cases to review" });
    this.empty = h("p", { class: "empty", hidden: true }, "No cases wait for review.");
    this.problem = h("p", { class: "section-problem", hidden: true });
    this.element = h(
      "div",
      { class: "review" },
      h("div", { class: "floor-head" }, this.title, this.updated),
      h(
        "p",
        { class: "hint" },
        "Cases whose tags the classifier was unsure of, oldest first. A held case is not " +
          "offered to anyone until it is reviewed. Confirm keeps the tags; Correct changes them " +
          "(the case's team, priority and guidance follow, and the correction goes to retraining).",
      ),
      this.problem,
      this.list,
      this.empty,
    );
    this.timer = setInterval(() => this.refresh(), REFRESH_MS);
    this.destroyed = false;
    this.loads = 0;
    this.refresh();
  }

  show(_route, { focus }) {
    document.title = "Review – Triage console";
    if (focus) this.title.focus();
  }

  destroy() {
    this.destroyed = true;
    clearInterval(this.timer);
  }

  async refresh() {
    const load = ++this.loads;
    let items;
    try {
      items = await api.getAll("/v1/review", { max: LANE_LIMIT, pageSize: LANE_LIMIT });
    } catch (error) {
      if (this.destroyed || load !== this.loads) return;
      const why = describe(error, { notFound: "the router does not serve the review lane" });
      this.updated.textContent = `Could not refresh at ${time(new Date().toISOString())}`;
      this.problem.textContent = `Not available: ${why}`;
      this.problem.hidden = false;
      return;
    }
    // Only the latest answer is drawn: an older one may still list a case just reviewed.
    if (this.destroyed || load !== this.loads) return;
    this.problem.hidden = true;
    reconcile(this.list, items, {
      key: (item) => item.case_id,
      create: (item) => this.itemElement(item),
      update: (el, item) => this.updateItem(el, item),
    });
    this.empty.hidden = items.length > 0;
    const more = items.length >= LANE_LIMIT ? ` (the oldest ${LANE_LIMIT})` : "";
    this.updated.textContent = `${items.length} to review${more} · updated ${time(
      new Date().toISOString(),
    )}`;
  }

  itemElement(item) {
    const headingId = uid("review-case");
    const confirm = h("button", { type: "button" }, "Confirm");
    const correct = h("button", { type: "button", class: "secondary" }, "Correct");
    const el = h(
      "li",
      { class: "panel review-item", "aria-labelledby": headingId },
      h("h2", { id: headingId, class: "review-head" }),
      h("p", { class: "review-meta" }),
      h("div", { class: "review-messages" }),
      h("div", { class: "button-row" }, confirm, correct),
    );
    confirm.addEventListener("click", () => this.confirm(el, confirm));
    correct.addEventListener("click", () =>
      openRelabel(el.item, correct, {
        proposed: proposedLabels(el.item),
        onSaved: () => this.refresh(),
      }),
    );
    this.updateItem(el, item);
    return el;
  }

  updateItem(el, item) {
    el.item = item;
    const short = shortId(item.case_id);
    const team = session.teams?.find((t) => t.id === item.team)?.name ?? item.team;
    el.querySelector(".review-head").replaceChildren(
      h("a", { href: `#/cases/${item.case_id}` }, `Case ${short}`),
      ` · ${team} · ${label(item.channel)}`,
    );
    const waiting = tick(h("span", { dataset: { countdown: "age", at: item.since } }));
    el.querySelector(".review-meta").replaceChildren(
      priorityBadge(item.priority),
      item.hold
        ? h(
            "span",
            { class: "review-tag review-held" },
            h("span", { "aria-hidden": "true" }, "‖ "),
            "Held: not offered until reviewed",
          )
        : h("span", { class: "state-tag" }, "Routed: review in parallel"),
      h("span", { class: "state-tag" }, label(item.state)),
      " Waiting for review ",
      waiting,
      ` (since ${time(item.since)}) · now ${label(item.category)}, ${label(item.difficult)}`,
    );
    el.querySelector(".review-messages").replaceChildren(
      ...item.messages.map((m) =>
        h(
          "div",
          { class: "review-message" },
          h("p", { class: "message-meta" }, `Message received ${time(m.received_at)}`),
          h("blockquote", { class: "message-text" }, m.excerpt),
          tagTable(m),
        ),
      ),
    );
    for (const button of el.querySelectorAll(".button-row button")) {
      button.setAttribute("aria-describedby", el.querySelector(".review-head").id);
    }
  }

  async confirm(el, button) {
    const item = el.item;
    const short = shortId(item.case_id);
    clearAlert();
    button.disabled = true;
    try {
      const updated = await api.post(api.casePath(item.case_id, "relabel"), {});
      session.updateCase(updated);
      announce(
        `Tags of case ${short} confirmed${item.hold ? "; it is offered to the team now" : ""}.`,
      );
      el.remove();
      this.empty.hidden = this.list.children.length > 0;
      this.title.focus();
      this.refresh();
    } catch (error) {
      alertUser(`Case ${short} not confirmed. ${describe(error)}`);
      button.disabled = false;
      if (button.isConnected) button.focus();
    }
  }
}
