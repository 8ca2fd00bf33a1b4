// Marks shared by the views. Each says in words what its colour shows.
import { h } from "../dom.js";

export function priorityBadge(priority) {
  return h(
    "span",
    { class: `priority priority-${priority.toLowerCase()}` },
    h("span", { class: "visually-hidden" }, "Priority "),
    priority,
  );
}

export function breachTag() {
  const icon = h("span", { "aria-hidden": "true" }, "⚠ ");
  return h("span", { class: "breach-tag" }, icon, "Breached");
}

/** The incident a supervisor tagged the case with (its reference), or null. */
export function incidentBadge(c) {
  if (!c.incident) return null;
  return h(
    "span",
    { class: "incident-tag", title: c.incident.note ?? "" },
    h("span", { "aria-hidden": "true" }, "◆ "),
    `Incident ${c.incident.reference}`,
  );
}

/** The case's place in the review lane: held until reviewed, or reviewed in parallel. */
export function reviewBadge(c) {
  if (c.review?.status !== "pending") return null;
  return h(
    "span",
    { class: `review-tag review-lane${c.review.hold ? " review-held" : ""}` },
    h("span", { "aria-hidden": "true" }, "? "),
    c.review.hold ? "Held for review" : "Needs review",
  );
}
