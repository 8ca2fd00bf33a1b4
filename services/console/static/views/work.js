// "My work": offers and the agent's cases on the left, the open case on the right.
import * as api from "../api.js";
import { tick } from "../clock.js";
import { h, holdsFocus, reconcile } from "../dom.js";
import { caseTitle, label, shortId } from "../format.js";
import { alertUser, announce, clearAlert, describe } from "../notices.js";
import { byUrgency, isBreached, nearestDeadline, session } from "../store.js";
import { breachTag, incidentBadge, priorityBadge } from "./badges.js";
import { CaseView } from "./case.js";

export class WorkView {
  constructor() {
    this.offerList = h("ul", { class: "offer-list", "aria-labelledby": "offers-title" });
    this.offerEmpty = h("p", { class: "empty" }, "No offers right now.");
    this.caseList = h("ul", { class: "case-list", "aria-labelledby": "my-cases-title" });
    this.caseEmpty = h("p", { class: "empty" }, "No cases assigned to you.");
    this.caseView = new CaseView();
    this.offersTitle = h("h2", { id: "offers-title", tabindex: "-1" }, "Offers");
    this.casesTitle = h("h2", { id: "my-cases-title", tabindex: "-1" }, "My cases");
    this.element = h(
      "div",
      { class: "work" },
      h("h1", { class: "visually-hidden" }, "My work"),
      h(
        "div",
        { class: "work-lists" },
        h(
          "section",
          { class: "panel", "aria-labelledby": "offers-title" },
          this.offersTitle,
          this.offerList,
          this.offerEmpty,
        ),
        h(
          "section",
          { class: "panel", "aria-labelledby": "my-cases-title" },
          this.casesTitle,
          this.caseList,
          this.caseEmpty,
        ),
      ),
      h("div", { class: "work-case" }, this.caseView.element),
    );
    this.onHeld = () => this.renderLists();
    this.onEvent = (e) => this.handleEvent(e.detail);
    this.onReconnected = () => this.caseView.reload();
    session.addEventListener("held", this.onHeld);
    session.addEventListener("case-event", this.onEvent);
    session.addEventListener("reconnected", this.onReconnected);
    this.renderLists();
  }

  show({ caseId }, { focus }) {
    this.caseView.open(caseId, { focus });
    for (const link of this.caseList.querySelectorAll("a")) {
      if (link.dataset.caseId === caseId) link.setAttribute("aria-current", "true");
      else link.removeAttribute("aria-current");
    }
  }

  destroy() {
    session.removeEventListener("held", this.onHeld);
    session.removeEventListener("case-event", this.onEvent);
    session.removeEventListener("reconnected", this.onReconnected);
    this.caseView.destroy();
  }

  handleEvent({ event, newOffer }) {
    if (newOffer) {
      const c = event.case;
      announce(`New offer: ${c.priority} ${label(c.category)}, ${label(c.channel)}.`);
    }
    this.caseView.takeEvent(event);
  }

  renderLists() {
    const held = [...session.held.values()];
    const offers = held
      .filter((c) => c.state === "offered")
      .sort((a, b) => Date.parse(a.offer.expires_at) - Date.parse(b.offer.expires_at));
    const mine = held.filter((c) => c.state !== "offered").sort(byUrgency);

    // A removed item may hold focus: keep the keyboard user in the list's section.
    const offersHadFocus = holdsFocus(this.offerList);
    const casesHadFocus = holdsFocus(this.caseList);
    reconcile(this.offerList, offers, {
      key: (c) => c.case_id,
      create: (c) => this.offerItem(c),
      update: (el, c) => this.updateOffer(el, c),
    });
    reconcile(this.caseList, mine, {
      key: (c) => c.case_id,
      create: (c) => caseItem(c),
      update: (el, c) => updateCaseItem(el, c),
    });
    if (offersHadFocus && !holdsFocus(this.offerList)) this.offersTitle.focus();
    if (casesHadFocus && !holdsFocus(this.caseList)) this.casesTitle.focus();
    this.offerEmpty.hidden = offers.length > 0;
    this.caseEmpty.hidden = mine.length > 0;
    const openId = this.caseView.caseId;
    for (const link of this.caseList.querySelectorAll("a")) {
      if (link.dataset.caseId === openId) link.setAttribute("aria-current", "true");
    }
  }

  offerItem(c) {
    const summaryId = `offer-summary-${c.case_id}`;
    const accept = h("button", { type: "button", "aria-describedby": summaryId }, "Accept");
    const decline = h(
      "button",
      { type: "button", class: "secondary", "aria-describedby": summaryId },
      "Decline",
    );
    const li = h(
      "li",
      { class: "offer" },
      h("div", { id: summaryId, class: "offer-summary" }),
      h("div", { class: "button-row" }, accept, decline),
    );
    accept.addEventListener("click", () => this.answerOffer(li, "accept"));
    decline.addEventListener("click", () => this.answerOffer(li, "decline"));
    this.updateOffer(li, c);
    return li;
  }

  updateOffer(li, c) {
    li.caseData = c;
    li.querySelector(".offer-summary").replaceChildren(
      h(
        "p",
        { class: "offer-tags" },
        priorityBadge(c.priority),
        ` ${label(c.channel)} · ${label(c.category)} · `,
        h("span", { class: c.hostile ? "difficult hostile" : "difficult" }, difficultText(c)),
        incidentBadge(c),
      ),
      // Read before accepting: the case view shows the whole case with Accept and Decline.
      h(
        "p",
        { class: "offer-subject" },
        h("a", { href: `#/cases/${c.case_id}` }, caseTitle(c, { words: true })),
      ),
      tick(
        h("p", {
          class: "countdown offer-countdown",
          dataset: { countdown: "offer", at: c.offer.expires_at },
        }),
      ),
    );
  }

  async answerOffer(li, action) {
    const c = li.caseData;
    const buttons = li.querySelectorAll("button");
    for (const b of buttons) b.disabled = true;
    clearAlert();
    try {
      const updated = await api.post(
        api.casePath(c.case_id, action),
        action === "decline" ? {} : undefined,
      );
      session.updateCase(updated);
      if (action === "accept") {
        announce(`Accepted: ${caseTitle(updated)}.`);
        location.hash = `#/cases/${updated.case_id}`;
      } else {
        announce(`Declined: ${caseTitle(c, { words: true })}.`);
        // The offer's buttons are gone: go on to the next offer, or to the list's heading.
        if (!holdsFocus(this.offerList)) {
          (this.offerList.querySelector("button") ?? this.offersTitle).focus();
        }
      }
    } catch (error) {
      for (const b of buttons) b.disabled = false;
      alertUser(`${action === "accept" ? "Not accepted" : "Not declined"}. ${describe(error)}`);
      // The offer may have gone elsewhere meanwhile: recheck it.
      if (error instanceof api.ApiError && [403, 404, 409].includes(error.status)) {
        api.get(api.casePath(c.case_id)).then(
          (fresh) => session.updateCase(fresh),
          () => session.forget(c.case_id),
        );
      }
    }
  }
}

function difficultText(c) {
  const type = label(c.difficult);
  if (c.difficult === "none") return "no difficult behaviour";
  return c.hostile ? `${type} (hostile)` : type;
}

function caseItem(c) {
  const link = h("a", { class: "case-link", dataset: { caseId: c.case_id } });
  const li = h("li", {}, link);
  updateCaseItem(li, c);
  return li;
}

function updateCaseItem(li, c) {
  const link = li.firstElementChild;
  link.href = `#/cases/${c.case_id}`;
  const deadline = nearestDeadline(c);
  const breached = isBreached(c);
  li.classList.toggle("breached", breached);
  link.replaceChildren(
    h(
      "span",
      { class: "case-link-top" },
      priorityBadge(c.priority),
      c.state === "waiting_on_customer"
        ? h("span", { class: "state-tag" }, "Waiting on customer")
        : null,
      breached ? breachTag() : null,
      incidentBadge(c),
    ),
    h("span", { class: "case-link-subject" }, caseTitle(c, { words: true })),
    deadline
      ? h(
          "span",
          { class: "case-link-due" },
          `${label(deadline.metric)}: `,
          tick(
            h("span", { class: "countdown", dataset: { countdown: "due", at: deadline.due_at } }),
          ),
        )
      : h(
          "span",
          { class: "case-link-due" },
          c.deadlines.some((d) => d.paused) ? "Clocks paused" : "No running deadline",
        ),
    h("span", { class: "visually-hidden" }, ` (case ${shortId(c.case_id)})`),
  );
}
