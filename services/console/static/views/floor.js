// The floor, for supervisors: queues, service levels, live alerts, agents and open cases.
// Refreshed when stream events arrive (at most once a second) and every 10 s regardless.
import * as api from "../api.js";
import { now, tick } from "../clock.js";
import { fill, h, hiddenLabel, reconcile, uid } from "../dom.js";
import {
  PRESENCES,
  PRIORITIES,
  caseTitle,
  label,
  number,
  percent,
  shortId,
  time,
} from "../format.js";
import { alertUser, announce, clearAlert, describe } from "../notices.js";
import { PRIORITY_RANK, alertOfBreach, session } from "../store.js";
import { breachTag, incidentBadge, priorityBadge } from "./badges.js";
import { openRelabel } from "./relabel-dialog.js";
import { SurgeBanner } from "./surges.js";
import { awayReasonText } from "./away-notice.js";

const FALLBACK_REFRESH_MS = 10000;
const MIN_REFRESH_GAP_MS = 1000;
// Open cases come whole (messages, routing log): refetch them less often, and keep their
// rows current from the stream's events in between.
const MIN_CASES_GAP_MS = 5000;
const OPEN_CASES_LIMIT = 500;
const ALERTS_SHOWN = 50;

function section(id, title, ...content) {
  return h(
    "section",
    { class: `panel floor-${id}`, "aria-labelledby": `floor-${id}-title` },
    h("h2", { id: `floor-${id}-title` }, title),
    ...content,
  );
}

function table(caption, columns, tbody) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      {},
      h("caption", {}, caption),
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          columns.map((c) =>
            // "#" marks a column of numbers, aligned right like its cells.
            c.startsWith("#")
              ? h("th", { scope: "col", class: "num" }, c.slice(1))
              : h("th", { scope: "col" }, c),
          ),
        ),
      ),
      tbody,
    ),
  );
}

function problem(el, what, error) {
  const why =
    error instanceof api.ApiError && error.status === 404
      ? `the router does not serve ${what} (404)`
      : describe(error);
  el.replaceChildren(h("p", { class: "section-problem" }, `Not available: ${why}`));
}

export class FloorView {
  constructor() {
    this.title = h("h1", { tabindex: "-1" }, "Floor");
    this.updated = h("p", { class: "updated" }, "Loading…");
    this.queuesBody = h("tbody");
    this.queuesContent = [
      table("Team queues", ["Team", ...PRIORITIES.map((p) => `#${p}`), "#Total"], this.queuesBody),
    ];
    this.queuesBox = h("div", {}, this.queuesContent);
    this.levelsBox = h("div", {}, h("p", { class: "loading" }, "Loading…"));
    this.alertsBox = h("div", {}, h("p", { class: "loading" }, "Loading…"));
    this.alertList = null;
    this.agentsBody = h("tbody");
    this.agentsContent = [
      table(
        "Agents",
        ["Name", "Team", "Tier", "Presence", "Load per channel", "#Utilisation"],
        this.agentsBody,
      ),
    ];
    this.agentsBox = h("div", {}, this.agentsContent);
    this.casesBody = h("tbody");
    this.casesNote = h("p", { class: "hint" });
    this.casesContent = [
      table(
        "Open cases",
        [
          "Case",
          "Priority",
          "Team",
          "State",
          "Assignee / offered to",
          "Category",
          "Difficult",
          "#Age",
          "Reassign",
          "Tags",
        ],
        this.casesBody,
      ),
      this.casesNote,
    ];
    this.casesBox = h("div", {}, this.casesContent);
    this.banner = new SurgeBanner();
    this.setAwayBody = h("tbody");
    // Shown only while someone is away by the router's doing: then it needs a supervisor.
    this.setAwaySection = section(
      "set-away",
      "Set away by the router",
      h(
        "p",
        { class: "hint" },
        "Available agents the router set away on its own: offers lapsed in a row, or their " +
          "console was disconnected too long. They get no offers until they or you set them " +
          "available.",
      ),
      table("Agents set away", ["Agent", "Team", "Why", "Since", "Action"], this.setAwayBody),
    );
    this.setAwaySection.hidden = true;
    this.element = h(
      "div",
      { class: "floor" },
      h("div", { class: "floor-head" }, this.title, this.updated),
      this.banner.element,
      this.setAwaySection,
      h(
        "div",
        { class: "floor-grid" },
        section("queues", "Queues", this.queuesBox),
        section("alerts", "Live alerts", this.alertsBox),
      ),
      section("levels", "Service levels", this.levelsBox),
      section("agents", "Agents", this.agentsBox),
      section("cases", "Open cases", this.casesBox),
    );
    this.names = new Map();
    this.loaded = new Set();
    this.lastGood = null;
    this.pending = null;
    this.inFlight = false;
    this.lastRefresh = 0;
    this.lastCasesRefresh = 0;
    this.onEvent = (e) => {
      this.applyEvent(e.detail.event);
      this.scheduleRefresh();
    };
    this.onAlerts = () => this.renderAlerts();
    this.onReconnected = () => this.scheduleRefresh();
    session.addEventListener("case-event", this.onEvent);
    session.addEventListener("alerts", this.onAlerts);
    session.addEventListener("reconnected", this.onReconnected);
    this.timer = setInterval(() => this.scheduleRefresh(), FALLBACK_REFRESH_MS);
    document.title = "Floor – Triage console";
    this.refresh();
  }

  show(_route, { focus }) {
    document.title = "Floor – Triage console";
    if (focus) this.title.focus();
  }

  destroy() {
    clearInterval(this.timer);
    this.banner.destroy();
    clearTimeout(this.pending);
    this.destroyed = true;
    session.removeEventListener("case-event", this.onEvent);
    session.removeEventListener("alerts", this.onAlerts);
    session.removeEventListener("reconnected", this.onReconnected);
  }

  scheduleRefresh() {
    if (this.pending || this.destroyed) return;
    const wait = Math.max(0, this.lastRefresh + MIN_REFRESH_GAP_MS - Date.now());
    this.pending = setTimeout(() => {
      this.pending = null;
      if (this.inFlight) this.scheduleRefresh();
      else this.refresh();
    }, wait);
  }

  applyEvent(event) {
    const row = [...this.casesBody.children].find((r) => r.dataset.key === event.case_id);
    if (!row) return; // a new case shows with the next refetch
    if (event.case.state === "resolved") row.remove();
    else if (event.case.version >= (row.caseData?.version ?? 0))
      this.updateCaseRow(row, event.case);
  }

  async refresh() {
    this.inFlight = true;
    this.lastRefresh = Date.now();
    const withCases = Date.now() - this.lastCasesRefresh >= MIN_CASES_GAP_MS;
    if (withCases) this.lastCasesRefresh = Date.now();
    const skipped = { status: "skipped" };
    const [teams, queues, agents, floor, cases] = await Promise.allSettled([
      withCases || !session.teams ? api.get("/v1/teams") : Promise.reject(skipped),
      api.get("/v1/queues"),
      api.getAll("/v1/agents"),
      api.get("/v1/floor"),
      withCases
        ? api.getAll("/v1/cases?open=true", { max: OPEN_CASES_LIMIT })
        : Promise.reject(skipped),
    ]);
    this.inFlight = false;
    if (this.destroyed) return;
    if (teams.status === "fulfilled") session.teams = teams.value;
    if (agents.status === "fulfilled") {
      for (const a of agents.value) this.names.set(a.profile.id, a.profile.name);
    }
    const fetchedAt = now();
    const parts = [
      [
        "queues",
        queues,
        this.queuesBox,
        "queues",
        () => this.renderQueues(queues.value, fetchedAt),
      ],
      [
        "levels",
        floor,
        this.levelsBox,
        "floor figures (GET /v1/floor)",
        () => this.renderLevels(floor.value),
      ],
      ["agents", agents, this.agentsBox, "the roster", () => this.renderAgents(agents.value)],
      [
        "cases",
        cases,
        this.casesBox,
        "open cases",
        () => this.renderCases(cases.value, floor.value),
      ],
    ];
    const content = {
      queues: this.queuesContent,
      agents: this.agentsContent,
      cases: this.casesContent,
    };
    let failure = null;
    for (const [name, result, box, what, render] of parts) {
      if (result.reason === skipped) continue;
      if (result.status === "fulfilled") {
        // After a problem was shown, the section's table comes back.
        if (content[name] && box.firstChild !== content[name][0])
          box.replaceChildren(...content[name]);
        render();
        this.loaded.add(name);
      } else {
        failure ??= result.reason;
        // A blip keeps the last figures on screen; only what never loaded says why here.
        if (!this.loaded.has(name)) problem(box, what, result.reason);
      }
    }
    if (floor.status === "fulfilled") this.renderSetAway(floor.value.set_away ?? []);
    if (floor.status === "fulfilled" || !this.alertList) this.seedAlerts(floor);
    const at = time(new Date(fetchedAt).toISOString());
    if (!failure) {
      this.updated.textContent = `Updated ${at}`;
      this.lastGood = at;
    } else {
      const why = describe(failure, { notFound: "not served" });
      this.updated.textContent = `Could not refresh at ${at} (${why})${
        this.lastGood ? `; showing figures from ${this.lastGood}` : ""
      }`;
    }
  }

  renderSetAway(agents) {
    reconcile(this.setAwayBody, agents, {
      key: (a) => `${a.agent_id}@${a.since}`,
      create: (a) => this.setAwayRow(a),
      update: () => {},
    });
    this.setAwaySection.hidden = agents.length === 0;
  }

  setAwayRow(a) {
    const back = h(
      "button",
      { type: "button", class: "secondary small" },
      "Set available",
      h("span", { class: "visually-hidden" }, ` ${a.name}`),
    );
    const since = a.since
      ? [
          h("time", { datetime: a.since }, time(a.since)),
          " (",
          tick(h("span", { dataset: { countdown: "age", at: a.since } })),
          " ago)",
        ]
      : "—";
    const row = h(
      "tr",
      {},
      h("th", { scope: "row" }, a.name),
      h("td", {}, session.teams?.find((t) => t.id === a.team)?.name ?? a.team),
      h("td", {}, awayReasonText(a.reason, a.lapsed_offers)),
      h("td", {}, since),
      h("td", {}, back),
    );
    back.addEventListener("click", () => this.bringBack(row, a, back));
    return row;
  }

  async bringBack(row, a, button) {
    clearAlert();
    button.disabled = true;
    try {
      await api.put(`/v1/agents/${encodeURIComponent(a.agent_id)}/presence`, {
        presence: "available",
      });
      announce(`${a.name} is available again.`);
      row.remove();
      this.setAwaySection.hidden = this.setAwayBody.children.length === 0;
      // Focus stays in the list while it has rows, else goes to the page's heading.
      const next = this.setAwayBody.querySelector("button");
      (next ?? this.title).focus();
      this.scheduleRefresh();
    } catch (error) {
      button.disabled = false;
      alertUser(`${a.name} not set available. ${describe(error)}`);
      if (button.isConnected) button.focus();
    }
  }

  renderQueues(queues, fetchedAt) {
    const byTeam = new Map(queues.map((q) => [q.team, q]));
    const teamIds = session.teams ? session.teams.map((t) => t.id) : [];
    for (const q of queues) if (!teamIds.includes(q.team)) teamIds.push(q.team);
    reconcile(this.queuesBody, teamIds, {
      key: (id) => id,
      create: () => h("tr"),
      update: () => {},
    });
    for (const row of this.queuesBody.children) {
      const id = row.dataset.key;
      const q = byTeam.get(id);
      const name = session.teams?.find((t) => t.id === id)?.name ?? id;
      row.replaceChildren(
        h("th", { scope: "row" }, name),
        ...PRIORITIES.map((p) => {
          const n = q?.by_priority?.[p] ?? 0;
          if (!n) return h("td", { class: "num muted" }, "0");
          const since = new Date(fetchedAt - (q.oldest_seconds[p] ?? 0) * 1000).toISOString();
          return h(
            "td",
            { class: "num" },
            `${n} · `,
            tick(h("span", { dataset: { countdown: "age", at: since } })),
            h("span", { class: "visually-hidden" }, " oldest wait"),
          );
        }),
        h("td", { class: "num total" }, String(q?.depth ?? 0)),
      );
    }
  }

  renderLevels(floor) {
    const attainment = h(
      "tbody",
      {},
      (floor.attainment ?? []).map((a) =>
        h(
          "tr",
          {},
          h("th", { scope: "row" }, label(a.metric)),
          h("td", { class: "num" }, percent(a.share)),
          h("td", { class: "num" }, `${a.met} of ${a.completed}`),
        ),
      ),
    );
    const counts = floor.cases ?? {};
    this.levelsBox.replaceChildren(
      h(
        "div",
        { class: "levels" },
        table(
          "Attainment per service level",
          ["Service level", "#Within target", "#Met / completed"],
          attainment,
        ),
        h(
          "div",
          {},
          h(
            "dl",
            { class: "stats" },
            stat("Breaches", number(floor.breaches)),
            stat("Warnings", number(floor.warnings)),
            stat("Escalations", number(floor.escalations)),
            stat("Follow-ups due", number(floor.follow_ups_due ?? 0)),
            stat("First-contact resolution", percent(floor.first_contact_resolution)),
            stat(
              "CSAT average",
              floor.csat_average === null ? "—" : `${number(floor.csat_average)} of 5`,
            ),
          ),
          h("p", { class: "stats-caption" }, "Cases by state"),
          h(
            "dl",
            { class: "stats stats-small" },
            ["queued", "offered", "assigned", "waiting_on_customer", "resolved"].map((s) =>
              stat(label(s), number(counts[s] ?? 0)),
            ),
          ),
        ),
      ),
    );
  }

  seedAlerts(floor) {
    if (floor.status === "fulfilled") {
      for (const b of floor.value.recent_breaches ?? []) session.addAlert(alertOfBreach(b));
    }
    if (!this.alertList) {
      // Filled before it enters the page, so the log announces only what comes after.
      this.alertList = h("ol", { class: "alert-list" });
      this.alertsEmpty = h("p", { class: "empty" }, "No warnings, breaches or escalations yet.");
      this.renderAlerts();
      // The log scrolls: it takes focus so keyboard users can scroll it too.
      const log = h(
        "div",
        {
          class: "alerts",
          role: "log",
          "aria-live": "polite",
          "aria-labelledby": "floor-alerts-title",
          tabindex: "0",
        },
        this.alertList,
      );
      this.alertsBox.replaceChildren(log, this.alertsEmpty);
    }
  }

  renderAlerts() {
    if (!this.alertList) return;
    const alerts = [...session.alerts.values()]
      .sort((a, b) => Date.parse(b.at) - Date.parse(a.at))
      .slice(0, ALERTS_SHOWN);
    reconcile(this.alertList, alerts, {
      key: (a) => a.key,
      create: (a) => alertItem(a, this.names),
      update: () => {},
    });
    this.alertsEmpty.hidden = alerts.length > 0;
  }

  renderAgents(agents) {
    const sorted = [...agents].sort(
      (a, b) =>
        a.profile.team.localeCompare(b.profile.team) ||
        a.profile.name.localeCompare(b.profile.name),
    );
    reconcile(this.agentsBody, sorted, {
      key: (a) => a.profile.id,
      create: (a) => agentRow(a),
      update: (row, a) => updateAgentRow(row, a),
    });
  }

  renderCases(cases, floor) {
    const sorted = [...cases].sort(
      (a, b) =>
        PRIORITY_RANK[a.priority] - PRIORITY_RANK[b.priority] ||
        Date.parse(a.created_at) - Date.parse(b.created_at),
    );
    reconcile(this.casesBody, sorted, {
      key: (c) => c.case_id,
      create: (c) => this.caseRow(c),
      update: (row, c) => this.updateCaseRow(row, c),
    });
    const counts = floor?.cases;
    const open = counts
      ? (counts.queued ?? 0) +
        (counts.offered ?? 0) +
        (counts.assigned ?? 0) +
        (counts.waiting_on_customer ?? 0)
      : null;
    this.casesNote.textContent =
      open !== null && open > cases.length
        ? `Showing the ${cases.length} most recently updated of ${open} open cases.`
        : `${cases.length} open ${cases.length === 1 ? "case" : "cases"}.`;
  }

  caseRow(c) {
    const short = shortId(c.case_id);
    const selectId = uid("reassign");
    const select = h("select", { id: selectId, class: "reassign-select" }, agentOptions());
    const reassign = h("button", { type: "button", class: "secondary small" }, "Reassign");
    const correct = h("button", { type: "button", class: "secondary small" }, "Correct tags");
    const row = h(
      "tr",
      {},
      h("th", { scope: "row", class: "case-cell" }),
      h("td", { class: "prio-cell" }),
      h("td", { class: "team-cell" }),
      h("td", { class: "state-cell" }),
      h("td", { class: "holder-cell" }),
      h("td", { class: "category-cell" }),
      h("td", { class: "difficult-cell" }),
      h("td", { class: "age-cell num" }),
      h(
        "td",
        { class: "reassign-cell" },
        hiddenLabel(selectId, `Reassign ${short} to`),
        h("div", { class: "inline-control" }, select, reassign),
      ),
      h("td", {}, correct),
    );
    reassign.addEventListener("click", () => this.reassign(row, select, reassign));
    correct.addEventListener("click", () => openRelabel(row.caseData, correct));
    this.updateCaseRow(row, c);
    return row;
  }

  updateCaseRow(row, c) {
    row.caseData = c;
    const cell = (name) => row.querySelector(`.${name}`);
    const breached = (c.deadlines ?? []).some((d) => d.breached && !d.stopped_at);
    fill(
      cell("case-cell"),
      h(
        "a",
        { href: `#/cases/${c.case_id}`, title: caseTitle(c, { words: true }) },
        h("span", { class: "mono" }, shortId(c.case_id)),
        " ",
        caseTitle(c, { words: true }),
      ),
      breached ? breachTag() : null,
      incidentBadge(c),
    );
    cell("prio-cell").replaceChildren(priorityBadge(c.priority));
    cell("team-cell").textContent = session.teams?.find((t) => t.id === c.team)?.name ?? c.team;
    cell("state-cell").textContent = label(c.state);
    cell("holder-cell").textContent =
      c.state === "offered" && c.offer
        ? `Offered to ${this.names.get(c.offer.agent_id) ?? c.offer.agent_id}`
        : c.assignee
          ? (this.names.get(c.assignee) ?? c.assignee)
          : "—";
    cell("category-cell").textContent = label(c.category);
    cell("difficult-cell").textContent = label(c.difficult);
    const age = cell("age-cell");
    age.dataset.countdown = "age";
    age.dataset.at = c.created_at;
    tick(age);
  }

  async reassign(row, select, button) {
    const c = row.caseData;
    const short = shortId(c.case_id);
    if (!select.value) {
      alertUser(`Choose an agent to reassign case ${short} to.`);
      select.focus();
      return;
    }
    clearAlert();
    button.disabled = true;
    try {
      const updated = await api.post(api.casePath(c.case_id, "reassign"), {
        agent_id: select.value,
      });
      session.updateCase(updated);
      announce(`Case ${short} reassigned to ${this.names.get(select.value) ?? select.value}.`);
      select.value = "";
      this.scheduleRefresh();
    } catch (error) {
      alertUser(`Case ${short} not reassigned. ${describe(error)}`);
    } finally {
      button.disabled = false;
      if (button.isConnected) button.focus();
    }
  }
}

function stat(term, value) {
  return h("div", {}, h("dt", {}, term), h("dd", {}, value));
}

function agentOptions() {
  const first = h("option", { value: "" }, "Choose an agent");
  if (!session.teams) return [first];
  return [
    first,
    ...session.teams.map((t) =>
      h(
        "optgroup",
        { label: t.name },
        t.agents.map((a) => h("option", { value: a.id }, a.name)),
      ),
    ),
  ];
}

const ALERT_WORDS = { breach: "Breached", warning: "Warning", escalation: "Escalated" };

function alertItem(a, names) {
  const who = a.assignee ? (names.get(a.assignee) ?? a.assignee) : "unassigned";
  const what =
    a.kind === "escalation"
      ? `to ${label(a.toTier).toLowerCase()}${a.reason ? `: ${a.reason}` : ""}`
      : label(a.metric);
  return h(
    "li",
    { class: `alert-item alert-${a.kind}` },
    h("time", { datetime: a.at }, time(a.at)),
    h(
      "span",
      { class: "alert-kind" },
      h(
        "span",
        { "aria-hidden": "true" },
        a.kind === "escalation" ? "↑ " : a.kind === "breach" ? "⚠ " : "! ",
      ),
      ALERT_WORDS[a.kind],
    ),
    h("a", { href: `#/cases/${a.caseId}` }, `Case ${shortId(a.caseId)}`),
    h("span", { class: "alert-what" }, ` ${what} · ${a.team} · ${a.priority} · ${who}`),
  );
}

function agentRow(a) {
  const selectId = uid("presence");
  const select = h(
    "select",
    { id: selectId },
    PRESENCES.map((p) => h("option", { value: p }, label(p))),
  );
  select.value = a.presence;
  const row = h(
    "tr",
    {},
    h("th", { scope: "row" }),
    h("td", { class: "team-cell" }),
    h("td", { class: "tier-cell" }),
    h("td", {}, hiddenLabel(selectId, `Presence of ${a.profile.name}`), select),
    h("td", { class: "load-cell" }),
    h("td", { class: "num util-cell" }),
  );
  select.addEventListener("change", () => setPresence(row, select));
  updateAgentRow(row, a);
  return row;
}

function updateAgentRow(row, a) {
  row.agent = a;
  const p = a.profile;
  row.children[0].textContent = p.name;
  row.querySelector(".team-cell").textContent =
    session.teams?.find((t) => t.id === p.team)?.name ?? p.team;
  row.querySelector(".tier-cell").textContent = label(p.tier);
  const select = row.querySelector("select");
  if (document.activeElement !== select && !select.disabled) select.value = a.presence;
  row.querySelector(".load-cell").textContent = Object.entries(p.channels)
    .map(([ch, cap]) => `${label(ch)} ${number(a.load?.[ch] ?? 0)}/${cap}`)
    .join(", ");
  row.querySelector(".util-cell").textContent = percent(a.utilisation);
}

async function setPresence(row, select) {
  const a = row.agent;
  const presence = select.value;
  select.disabled = true;
  clearAlert();
  try {
    await api.put(`/v1/agents/${encodeURIComponent(a.profile.id)}/presence`, { presence });
    row.agent = { ...a, presence };
    announce(`${a.profile.name} is now ${label(presence).toLowerCase()}.`);
    if (a.profile.id === session.agentId) session.setMe({ ...session.me, presence });
  } catch (error) {
    select.value = a.presence;
    alertUser(`Presence of ${a.profile.name} not changed. ${describe(error)}`);
  } finally {
    select.disabled = false;
    select.focus();
  }
}
