// The open case: everything the agent needs to resolve it at first contact.
import * as api from "../api.js";
import { tick } from "../clock.js";
import { h, uid } from "../dom.js";
import { caseTitle, duration, label, money, number, percent, shortId, time } from "../format.js";
import { alertUser, describe } from "../notices.js";
import { session } from "../store.js";
import { breachTag, incidentBadge, priorityBadge, reviewBadge } from "./badges.js";
import { CaseActions } from "./case-actions.js";
import { openRelabel } from "./relabel-dialog.js";

const ROUTING_SHOWN = 8;

export class CaseView {
  constructor() {
    this.element = h("div", { class: "case-pane" });
    this.caseId = null;
    this.case = null;
    this.loads = 0; // answers to older requests are dropped
    this.placeholder();
  }

  placeholder() {
    this.element.replaceChildren(
      h(
        "div",
        { class: "case-placeholder" },
        h("h2", {}, "No case open"),
        h("p", {}, "Accept an offer or choose one of your cases to see it here."),
      ),
    );
    document.title = "My work – Triage console";
  }

  open(caseId, { focus }) {
    if (!caseId) {
      this.caseId = null;
      this.case = null;
      this.placeholder();
      return;
    }
    if (caseId === this.caseId && this.case) {
      if (focus) this.heading?.focus();
      return;
    }
    this.caseId = caseId;
    this.case = null;
    const known = session.held.get(caseId);
    if (known) this.render(known);
    else this.element.replaceChildren(h("p", { class: "loading" }, "Loading the case…"));
    this.load({ focus });
  }

  reload() {
    if (this.caseId) this.load({ focus: false });
  }

  async load({ focus }) {
    const caseId = this.caseId;
    const load = ++this.loads;
    try {
      const c = await api.get(api.casePath(caseId));
      if (load !== this.loads || caseId !== this.caseId) return;
      this.render(c);
      if (focus) this.heading.focus();
    } catch (error) {
      if (load !== this.loads || caseId !== this.caseId) return;
      if (error instanceof api.ApiError && error.status === 401) return;
      const text =
        error instanceof api.ApiError && error.status === 403
          ? "You cannot open this case"
          : describe(error);
      alertUser(text);
      if (this.case) return; // keep showing what we had (a network blip)
      this.element.replaceChildren(
        h(
          "div",
          { class: "case-placeholder" },
          h("h2", { tabindex: "-1" }, `Case ${shortId(caseId)}`),
          h("p", {}, text),
        ),
      );
      if (focus) this.element.querySelector("h2").focus();
    }
  }

  /** A newer version of the open case from the stream. */
  takeEvent(event) {
    if (event.case_id !== this.caseId || !this.case) return;
    if (event.case.version >= this.case.version) this.render(event.case);
  }

  destroy() {
    this.loads += 1;
  }

  render(c) {
    const fresh = !this.case || this.case.case_id !== c.case_id;
    if (!fresh && c.version < this.case.version) return;
    this.case = c;
    if (fresh) {
      this.heading = h("h2", { id: "case-title", tabindex: "-1" });
      this.meta = h("div", { class: "case-meta" });
      this.actions = new CaseActions((updated) => this.render(updated));
      // Actions sit between what the agent must know first and the details, and are
      // never rebuilt while the case is open, so typed text and focus survive updates.
      this.brief = h("div", { class: "case-info" });
      this.info = h("div", { class: "case-info" });
      this.element.replaceChildren(
        h(
          "article",
          { class: "case", "aria-labelledby": "case-title" },
          this.heading,
          this.meta,
          this.brief,
          this.actions.element,
          this.info,
        ),
      );
    }
    this.heading.textContent = c.subject || `Case ${shortId(c.case_id)}`;
    document.title = `${caseTitle(c)} – Triage console`;
    this.meta.replaceChildren(...meta(c));
    this.actions.update(c);
    this.brief.replaceChildren(
      h(
        "div",
        { class: "case-grid" },
        h("div", { class: "case-column" }, serviceLevels(c), remedy(c)),
        h("div", { class: "case-column" }, guidance(c), priority(c)),
      ),
    );
    this.info.replaceChildren(
      messages(c),
      tags(c),
      h("div", { class: "case-grid" }, history(c), facts(c)),
      routingLog(c),
    );
  }
}

function section(title, ...content) {
  const id = uid("section");
  return h(
    "section",
    { class: "case-section", "aria-labelledby": id },
    h("h3", { id }, title),
    ...content,
  );
}

function dl(pairs) {
  return h(
    "dl",
    { class: "pairs" },
    pairs
      .filter(Boolean)
      .map(([term, value]) => h("div", {}, h("dt", {}, term), h("dd", {}, value))),
  );
}

function teamName(id) {
  return session.teams?.find((t) => t.id === id)?.name ?? id;
}

function holderText(c) {
  const me = session.agentId;
  const who = (id) => (id === me ? "you" : id);
  if (c.state === "offered" && c.offer) return `to ${who(c.offer.agent_id)}`;
  if (c.state === "resolved") return c.assignee ? `by ${who(c.assignee)}` : "";
  if (c.assignee)
    return c.state === "assigned" ? `to ${who(c.assignee)}` : `(assigned to ${who(c.assignee)})`;
  return "";
}

function meta(c) {
  const parts = [
    h(
      "p",
      { class: "case-meta-line" },
      priorityBadge(c.priority),
      h("span", { class: "state-tag" }, label(c.state)),
      incidentBadge(c),
      reviewBadge(c),
      holderText(c),
      c.state === "offered" && c.offer?.agent_id === session.agentId
        ? [
            " · ",
            tick(
              h("span", {
                class: "countdown",
                dataset: { countdown: "offer", at: c.offer.expires_at },
              }),
            ),
          ]
        : null,
    ),
    dl([
      ["Channel", label(c.channel)],
      ["Team", teamName(c.team)],
      ["Customer", `${c.customer_id} (${label(c.customer_tier)})`],
      ["Language", c.language ?? "unknown"],
      ["Opened", time(c.created_at)],
      ["Needs", label(c.required_tier)],
      c.escalations || c.transfers
        ? ["Escalations / transfers", `${c.escalations} / ${c.transfers}`]
        : null,
      ["Case id", shortId(c.case_id)],
    ]),
  ];
  if (c.incident) {
    // The cause is known and handled centrally: the agent answers accordingly.
    parts.push(
      h(
        "p",
        { class: "incident-note" },
        h("strong", {}, `Part of incident ${c.incident.reference}`),
        c.incident.note ? `: ${c.incident.note}` : ".",
        ` Tagged by ${c.incident.tagged_by}, ${time(c.incident.tagged_at)}.`,
      ),
    );
  }
  if (c.state === "resolved") {
    parts.push(
      h(
        "p",
        { class: "resolved-note" },
        `Resolved ${time(c.resolved_at)}`,
        c.resolution_note ? `: ${c.resolution_note}` : ".",
        c.csat ? ` Customer satisfaction ${c.csat} of 5.` : null,
      ),
    );
  }
  return parts;
}

function priority(c) {
  const raised = c.priority !== c.base_priority;
  return section(
    "Priority",
    h(
      "p",
      {},
      priorityBadge(c.priority),
      ` score ${number(c.priority_score)}`,
      raised
        ? ` (raised from ${c.base_priority} while waiting or at a service-level warning)`
        : null,
    ),
    h(
      "ul",
      { class: "components" },
      c.priority_components.map((p) =>
        h(
          "li",
          {},
          h("span", { class: "points" }, `${p.points >= 0 ? "+" : ""}${number(p.points)}`),
          ` ${label(p.name)}: ${readable(p.detail)}`,
        ),
      ),
    ),
  );
}

// Details name enum values ("broken_promise", "goodwill_credit 12 GBP"): show them as words.
function readable(detail) {
  return detail.replaceAll("_", " ");
}

function guidance(c) {
  return section(
    "Handling guidance",
    h(
      "p",
      { class: "difficult-line" },
      "Customer type: ",
      h("strong", {}, label(c.difficult)),
      c.hostile
        ? h("span", { class: "hostile-tag" }, "Hostile: counts double on your capacity")
        : null,
    ),
    h("p", { class: "guidance" }, c.guidance),
  );
}

function tagRow(name, tag, corrected) {
  return h(
    "tr",
    {},
    h("th", { scope: "row" }, name),
    h(
      "td",
      {},
      label(tag.label),
      corrected ? h("span", { class: "corrected" }, ` → ${label(corrected)} (corrected)`) : null,
    ),
    h("td", {}, percent(tag.probability)),
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
            "Needs review",
          )
        : "OK",
    ),
  );
}

function tags(c) {
  const first = c.messages[0];
  const content = [];
  if (first) {
    const captionId = uid("tags");
    content.push(
      h(
        "table",
        { class: "compact", "aria-describedby": captionId },
        h("caption", { class: "visually-hidden" }, "Tags of the first message"),
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
          tagRow("Sentiment", first.sentiment, null),
          tagRow(
            "Category",
            first.category,
            c.category !== first.category.label ? c.category : null,
          ),
          tagRow(
            "Difficult type",
            first.difficult,
            c.difficult !== first.difficult.label ? c.difficult : null,
          ),
        ),
      ),
      h(
        "p",
        { id: captionId, class: "hint" },
        first.needs_review
          ? "The classifier was unsure of at least one tag: check it against the text."
          : "Tags of the first message, as the classifier gave them.",
      ),
    );
  }
  if (session.isSupervisor) {
    const correct = h("button", { type: "button", class: "secondary" }, "Correct tags");
    correct.addEventListener("click", () => openRelabel(c, correct));
    content.push(correct);
  }
  return section("Tags", ...content);
}

function messages(c) {
  return section(
    "Messages",
    h(
      "ol",
      { class: "messages" },
      c.messages.map((m) =>
        h(
          "li",
          { class: "message" },
          h(
            "p",
            { class: "message-meta" },
            h("span", {}, label(m.channel)),
            " · ",
            h("time", { datetime: m.received_at }, time(m.received_at)),
            m.public ? ` · public post${m.reach ? `, reach ${number(m.reach)}` : ""}` : null,
            ` · ${[m.sentiment, m.category, m.difficult].map((t) => label(t.label)).join(", ")}`,
            m.needs_review ? h("span", { class: "review-tag" }, " Needs review") : null,
          ),
          m.subject ? h("p", { class: "message-subject" }, m.subject) : null,
          h("p", { class: "message-text" }, m.text),
        ),
      ),
    ),
  );
}

function history(c) {
  const hist = c.history;
  return section(
    "Customer history",
    dl([
      [`Messages in the last ${hist.window_days} days`, number(hist.recent_messages)],
      ["Complaints among them", number(hist.recent_complaints)],
      ["Negative among them", number(hist.recent_negative)],
      ["Repeat complainer", hist.repeat_complainer ? "Yes" : "No"],
      hist.last_seen_at ? ["Last seen", time(hist.last_seen_at)] : null,
      hist.last_category
        ? [
            "Last message",
            [hist.last_sentiment, hist.last_category, hist.last_difficult].map(label).join(", "),
          ]
        : null,
    ]),
  );
}

function facts(c) {
  const { amounts = [], references = [] } = c.facts;
  return section(
    "Amounts and references",
    amounts.length
      ? h(
          "ul",
          {},
          amounts.map((a) =>
            h("li", {}, money(a.amount, a.currency), a.text ? ` (written “${a.text}”)` : null),
          ),
        )
      : h("p", {}, "No amounts mentioned."),
    references.length
      ? h(
          "ul",
          {},
          references.map((r) => h("li", {}, `${label(r.kind)}: `, h("code", {}, r.value))),
        )
      : h("p", {}, "No references found."),
  );
}

function remedy(c) {
  const r = c.remedy;
  if (!r) return section("Remedy", h("p", {}, "No remedy expected: an answer should be enough."));
  const limit = session.me.profile.authority?.[r.kind];
  const what =
    r.amount !== null && r.amount !== undefined
      ? `${label(r.kind)} of ${money(r.amount, r.currency)}`
      : `${label(r.kind)} (amount unknown)`;
  const within =
    limit !== undefined &&
    limit > 0 &&
    (r.amount === null || r.amount === undefined || limit >= r.amount);
  return section(
    "Remedy",
    h("p", {}, `Likely needed: ${what}.`),
    within
      ? h(
          "p",
          { class: "authority ok" },
          h("span", { "aria-hidden": "true" }, "✓ "),
          `You may offer up to ${number(limit)} ${label(r.kind)}`,
        )
      : h(
          "p",
          { class: "authority beyond" },
          h("span", { "aria-hidden": "true" }, "✕ "),
          "Beyond your authority: escalate or ask a supervisor",
        ),
    within && (r.amount === null || r.amount === undefined)
      ? h("p", { class: "hint" }, "Check the amount against your limit before offering it.")
      : null,
  );
}

function deadlineItem(d) {
  const states = [];
  if (d.breached) states.push(breachTag());
  else if (d.warned) states.push(h("span", { class: "warn-tag" }, "Warning"));
  let when;
  if (d.stopped_at) {
    when = d.met
      ? h(
          "span",
          { class: "met-tag" },
          h("span", { "aria-hidden": "true" }, "✓ "),
          `Met at ${time(d.stopped_at)}`,
        )
      : `Stopped at ${time(d.stopped_at)}, late`;
  } else if (d.paused) {
    when = h("span", { class: "paused-tag" }, "Paused while waiting on the customer");
  } else if (d.due_at) {
    when = [
      tick(h("span", { class: "countdown", dataset: { countdown: "due", at: d.due_at } })),
      ` (at ${time(d.due_at)})`,
    ];
  } else {
    when = "Not running";
  }
  return h(
    "li",
    { class: d.breached ? "deadline breached" : "deadline" },
    h("span", { class: "deadline-name" }, label(d.metric)),
    h("span", { class: "deadline-target" }, `target ${duration(d.target_seconds)}`),
    h("span", { class: "deadline-when" }, when),
    ...states,
  );
}

function candidateText(k) {
  const tier = label(k.tier).toLowerCase();
  return `${k.agent_id} (${tier}, skill ${k.proficiency}, load ${number(k.load)})`;
}

function serviceLevels(c) {
  return section(
    "Service levels",
    c.deadlines.length
      ? h("ul", { class: "deadlines" }, c.deadlines.map(deadlineItem))
      : h("p", {}, "No service-level clocks."),
  );
}

function routingLog(c) {
  const shown = c.routing.slice(-ROUTING_SHOWN).reverse();
  return section(
    "Routing log",
    shown.length
      ? h(
          "ol",
          { class: "routing", reversed: true },
          shown.map((d) =>
            h(
              "li",
              {},
              h(
                "p",
                {},
                h("time", { datetime: d.at }, time(d.at)),
                ` · ${label(d.outcome)}${d.agent_id ? ` to ${d.agent_id}` : ""} · ${d.rule}`,
              ),
              h(
                "p",
                { class: "hint" },
                `${d.eligible} eligible`,
                d.candidates.length ? `; best: ${d.candidates.map(candidateText).join(", ")}` : "",
                Object.keys(d.excluded).length
                  ? `; left out: ${Object.entries(d.excluded)
                      .map(([why, n]) => `${n} ${why}`)
                      .join(", ")}`
                  : "",
              ),
            ),
          ),
        )
      : h("p", {}, "No routing decisions yet."),
    c.routing.length > ROUTING_SHOWN
      ? h("p", { class: "hint" }, `The latest ${ROUTING_SHOWN} of ${c.routing.length} decisions.`)
      : null,
  );
}
