// Trends, for supervisors: volumes by category over time, the sentiment share, the mix of
// difficult types (GET /v1/trends), active surges, and the emerging issues
// (GET /v1/trends/emerging) with their cases and the "Tag as incident" action. The trends
// service answers through the router; every chart is drawn here as SVG (charts.js).
import * as api from "../api.js";
import {
  CATEGORY_COLOURS,
  SENTIMENT_COLOURS,
  bucketLabel,
  horizontalBars,
  legend,
  shareBars,
  stackedBars,
} from "../charts.js";
import { h, reconcile, uid } from "../dom.js";
import {
  CATEGORIES,
  DIFFICULT_TYPES,
  SENTIMENTS,
  caseTitle,
  label,
  number,
  shortId,
  time,
} from "../format.js";
import { alertUser, announce, describe } from "../notices.js";
import { session } from "../store.js";
import { incidentBadge, priorityBadge } from "./badges.js";
import { openIncident, taggedText } from "./incident-dialog.js";
import { SurgeBanner, TRENDS_OPTIONS } from "./surges.js";

const REFRESH_MS = 30000;
const CHANNELS = ["email", "chat", "social", "phone", "web", "survey"];
// Periods: [value, label, bucket width, hours back (none: the whole span the API keeps)].
const PERIODS = [
  ["2h", "Last 2 hours, 5-minute buckets", "5m", 2],
  ["24h", "Last 24 hours, 5-minute buckets", "5m", null],
  ["7d", "Last 7 days, hourly buckets", "1h", null],
];
// GET /v1/cases takes at most 500 event ids; fewer per call keep the URL short.
const EVENT_IDS_PER_CALL = 100;

/** Why the trends are not shown, in words. */
export function trendsProblem(error) {
  if (error instanceof api.ApiError) {
    if (error.status === 503)
      return `the trends service is not available (${error.detail || "not configured"}).`;
    if (error.status === 502 || error.status === 504) return `${error.detail}.`;
    if (error.status === 401) return "the trends service does not know your supervisor token.";
    if (error.status === 404) return "this router does not forward the trends (404).";
  }
  return describe(error);
}

function section(id, title, ...content) {
  return h(
    "section",
    { class: `panel trends-${id}`, "aria-labelledby": `trends-${id}-title` },
    h("h2", { id: `trends-${id}-title` }, title),
    ...content,
  );
}

function select(id, text, options, value = "") {
  const el = h(
    "select",
    { id },
    options.map(([v, t]) =>
      Array.isArray(t)
        ? h(
            "optgroup",
            { label: v },
            t.map(([ov, ot]) => h("option", { value: ov }, ot)),
          )
        : h("option", { value: v }, t),
    ),
  );
  el.value = value;
  return [h("label", { for: id }, text), el];
}

function dataTable(caption, buckets, keys, dimension, window) {
  const rows = buckets.filter((b) => b.total);
  return h(
    "details",
    { class: "chart-data" },
    h("summary", {}, `${caption}: the figures`),
    h(
      "div",
      { class: "table-scroll" },
      h(
        "table",
        { class: "compact" },
        h("caption", {}, caption),
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            h("th", { scope: "col" }, window === "5m" ? "From" : "Hour from"),
            h("th", { scope: "col", class: "num" }, "Total"),
            keys.map((k) => h("th", { scope: "col", class: "num" }, label(k))),
          ),
        ),
        h(
          "tbody",
          {},
          rows.map((b) =>
            h(
              "tr",
              {},
              h("th", { scope: "row" }, bucketLabel(b.start, window, { long: true })),
              h("td", { class: "num" }, number(b.total)),
              keys.map((k) => h("td", { class: "num" }, number(b[dimension]?.[k] ?? 0))),
            ),
          ),
        ),
      ),
    ),
  );
}

export class TrendsView {
  constructor() {
    this.title = h("h1", { tabindex: "-1" }, "Trends");
    this.updated = h("p", { class: "updated" }, "Loading…");
    this.banner = new SurgeBanner();
    const teams = (session.teams ?? []).map((t) => [t.id, t.name]);
    const tags = [
      ["Category", CATEGORIES.map((c) => [c, label(c)])],
      ["Sentiment", SENTIMENTS.map((s) => [s, label(s)])],
      ["Difficult type", DIFFICULT_TYPES.filter((d) => d !== "none").map((d) => [d, label(d)])],
    ];
    this.filters = h(
      "form",
      { class: "trends-filters", "aria-label": "Trends filters" },
      h(
        "div",
        { class: "field" },
        select(
          "trends-window",
          "Period",
          PERIODS.map(([v, t]) => [v, t]),
          "2h",
        ),
      ),
      h("div", { class: "field" }, select("trends-tag", "Tag", [["", "Any tag"], ...tags])),
      h(
        "div",
        { class: "field" },
        select("trends-channel", "Channel", [
          ["", "Every channel"],
          ...CHANNELS.map((c) => [c, label(c)]),
        ]),
      ),
      h("div", { class: "field" }, select("trends-team", "Team", [["", "Every team"], ...teams])),
    );
    this.filters.addEventListener("change", () => this.refreshVolumes({ announceIt: true }));
    this.filters.addEventListener("submit", (e) => e.preventDefault());
    this.volumesBox = h("div", {}, h("p", { class: "loading" }, "Loading…"));
    this.sentimentBox = h("div", {}, h("p", { class: "loading" }, "Loading…"));
    this.difficultBox = h("div", {}, h("p", { class: "loading" }, "Loading…"));
    this.emergingList = h("div", { class: "cluster-list" });
    this.emergingNote = h("p", { class: "loading" }, "Loading…");
    this.element = h(
      "div",
      { class: "trends" },
      h("div", { class: "floor-head" }, this.title, this.updated),
      this.banner.element,
      section("filters-panel", "Filters", this.filters),
      section("volumes", "Volumes by category", this.volumesBox),
      h(
        "div",
        { class: "trends-grid" },
        section("sentiment", "Sentiment share", this.sentimentBox),
        section("difficult", "Difficult-customer types", this.difficultBox),
      ),
      section(
        "emerging",
        "Emerging issues",
        h(
          "p",
          { class: "hint" },
          "Groups of similar messages growing fast: an outage, a failed delivery round.",
        ),
        this.emergingNote,
        this.emergingList,
      ),
    );
    document.title = "Trends – Triage console";
    this.refresh();
    this.timer = setInterval(() => this.refresh(), REFRESH_MS);
  }

  show(_route, { focus }) {
    document.title = "Trends – Triage console";
    if (focus) this.title.focus();
  }

  destroy() {
    this.destroyed = true;
    clearInterval(this.timer);
    this.banner.destroy();
  }

  async refresh() {
    await Promise.all([this.refreshVolumes(), this.refreshEmerging()]);
    if (this.destroyed) return;
    const at = time(new Date().toISOString());
    this.updated.textContent = this.failed
      ? `Could not refresh at ${at}: ${this.failed}`
      : `Updated ${at}`;
  }

  /** What the filters say now. */
  choice() {
    return [...this.filters.querySelectorAll("select")].map((s) => s.value).join("\n");
  }

  query() {
    const params = new URLSearchParams();
    const value = (id) => this.filters.querySelector(`#${id}`).value;
    const [, , window, hours] = PERIODS.find(([v]) => v === value("trends-window")) ?? PERIODS[1];
    params.set("window", window);
    if (hours) {
      // From the start of the 5-minute bucket `hours` ago.
      const from = new Date(Date.now() - hours * 3600_000);
      from.setUTCMinutes(from.getUTCMinutes() - (from.getUTCMinutes() % 5), 0, 0);
      params.set("since", from.toISOString());
    }
    for (const [name, id] of [
      ["tag", "trends-tag"],
      ["channel", "trends-channel"],
      ["team", "trends-team"],
    ]) {
      if (value(id)) params.set(name, value(id));
    }
    return params;
  }

  async refreshVolumes({ announceIt = false } = {}) {
    const params = this.query();
    const asked = this.choice();
    let body;
    try {
      body = await api.get(`/v1/trends?${params}`, TRENDS_OPTIONS);
    } catch (error) {
      if (this.destroyed) return;
      this.failed = trendsProblem(error);
      if (!this.drawn) {
        for (const box of [this.volumesBox, this.sentimentBox, this.difficultBox]) {
          box.replaceChildren(
            h("p", { class: "section-problem" }, `Not available: ${this.failed}`),
          );
        }
      }
      if (announceIt) alertUser(`Trends not shown: ${this.failed}`);
      return;
    }
    // A later change of the filters wins over an earlier answer.
    if (this.destroyed || asked !== this.choice()) return;
    this.failed = null;
    this.drawn = true;
    this.draw(body);
    if (announceIt) announce(`Trends shown: ${number(body.totals.total)} messages.`);
  }

  draw(body) {
    const { buckets, window } = body;
    const volumes = stackedBars(buckets, {
      dimension: "category",
      window,
      colours: CATEGORY_COLOURS,
      title: "Messages by category over time",
      unit: "messages",
    });
    const filters = Object.entries(body.filters ?? {})
      .map(([k, v]) => `${k} ${label(v)}`)
      .join(", ");
    this.volumesBox.replaceChildren(
      h(
        "p",
        { class: "chart-caption" },
        `${number(body.totals.total)} messages, ${
          window === "5m"
            ? `${periodText(buckets.length)} in 5-minute buckets`
            : "last 7 days by hour"
        }${filters ? ` (${filters})` : ""}. Vertical axis: messages per bucket; horizontal: time.`,
      ),
      legend(volumes.keys, CATEGORY_COLOURS, { title: "Categories" }),
      h("div", { class: "chart-box" }, volumes.element),
      dataTable("Messages by category", buckets, volumes.keys, "category", window),
    );
    const sentiment = shareBars(buckets, {
      dimension: "sentiment",
      window,
      colours: SENTIMENT_COLOURS,
      order: SENTIMENTS,
      title: "Share of each sentiment over time",
    });
    this.sentimentBox.replaceChildren(
      legend(SENTIMENTS, SENTIMENT_COLOURS, { title: "Sentiments" }),
      h("div", { class: "chart-box" }, sentiment.element),
      dataTable("Messages by sentiment", buckets, SENTIMENTS, "sentiment", window),
    );
    const mix = Object.entries(body.totals.difficult ?? {})
      .filter(([k, n]) => k !== "none" && n > 0)
      .sort((a, b) => b[1] - a[1]);
    const plain = body.totals.difficult?.none ?? 0;
    this.difficultBox.replaceChildren(
      h(
        "p",
        { class: "chart-caption" },
        `Over the period; ${number(plain)} messages of no difficult type are not drawn.`,
      ),
      mix.length
        ? h(
            "div",
            { class: "chart-box" },
            horizontalBars(mix, { title: "Messages by difficult-customer type" }).element,
          )
        : h("p", { class: "empty" }, "No difficult-customer messages in this period."),
    );
  }

  async refreshEmerging() {
    let clusters;
    try {
      clusters = await api.get("/v1/trends/emerging", TRENDS_OPTIONS);
    } catch (error) {
      if (this.destroyed) return;
      this.failed = trendsProblem(error);
      if (!this.emergingShown) {
        this.emergingNote.textContent = `Not available: ${this.failed}`;
        this.emergingNote.className = "section-problem";
      }
      return;
    }
    if (this.destroyed) return;
    this.emergingShown = true;
    clusters.sort((a, b) => b.recent - a.recent || b.size - a.size);
    this.emergingNote.className = "empty";
    this.emergingNote.textContent = clusters.length
      ? ""
      : "No emerging issues: nothing is growing faster than usual.";
    this.emergingNote.hidden = clusters.length > 0;
    reconcile(this.emergingList, clusters, {
      key: (c) => c.cluster_id,
      create: (c) => this.clusterItem(c),
      update: (el, c) => updateCluster(el, c),
    });
  }

  clusterItem(c) {
    const titleId = uid("cluster");
    const open = h("button", { type: "button", class: "secondary" }, "Open cases");
    const tag = h("button", { type: "button" }, "Tag as incident");
    const result = h("p", { class: "incident-result", role: "status" });
    const cases = h("div", { class: "cluster-cases" });
    const el = h(
      "article",
      { class: "cluster", "aria-labelledby": titleId },
      h("h3", { id: titleId, class: "cluster-title" }),
      h("div", { class: "cluster-body" }),
      h("div", { class: "button-row" }, open, tag),
      result,
      cases,
    );
    el.cluster = c;
    const memberIds = async () => {
      const detail = await api.get(
        `/v1/trends/emerging/${encodeURIComponent(el.cluster.cluster_id)}`,
        TRENDS_OPTIONS,
      );
      return detail.member_ids ?? [];
    };
    open.addEventListener("click", () => this.openCases(el, memberIds, open));
    tag.addEventListener("click", () =>
      openIncident({
        title: clusterTitle(el.cluster),
        memberIds,
        returnFocus: tag,
        onTagged: (answer) => {
          result.textContent = taggedText(answer);
          if (cases.childElementCount) this.openCases(el, memberIds, null);
        },
      }),
    );
    updateCluster(el, c);
    return el;
  }

  async openCases(el, memberIds, button) {
    const box = el.querySelector(".cluster-cases");
    if (button) button.disabled = true;
    try {
      const ids = await memberIds();
      const found = new Map();
      for (let i = 0; i < ids.length; i += EVENT_IDS_PER_CALL) {
        const query = ids
          .slice(i, i + EVENT_IDS_PER_CALL)
          .map((id) => `event_id=${encodeURIComponent(id)}`)
          .join("&");
        for (const c of await api.getAll(`/v1/cases?${query}`)) found.set(c.case_id, c);
      }
      if (this.destroyed) return;
      box.replaceChildren(casesTable(clusterTitle(el.cluster), [...found.values()], ids.length));
      if (button) announce(`${found.size} cases hold messages of this issue.`);
    } catch (error) {
      box.replaceChildren(
        h("p", { class: "section-problem" }, `Cases not listed: ${trendsProblem(error)}`),
      );
    } finally {
      if (button) {
        button.disabled = false;
        if (button.isConnected) button.focus();
      }
    }
  }
}

function periodText(buckets) {
  return buckets >= 288 ? "last 24 hours" : `last ${number(Math.round((buckets * 5) / 60))} hours`;
}

function clusterTitle(c) {
  return c.top_terms?.length
    ? c.top_terms.slice(0, 4).join(", ")
    : `Issue ${shortId(c.cluster_id)}`;
}

function counts(map) {
  return Object.entries(map ?? {})
    .sort((a, b) => b[1] - a[1])
    .map(([k, n]) => `${label(k)} ${number(n)}`)
    .join(", ");
}

function updateCluster(el, c) {
  el.cluster = c;
  el.querySelector(".cluster-title").textContent = clusterTitle(c);
  el.querySelector(".cluster-body").replaceChildren(
    h(
      "dl",
      { class: "stats cluster-stats" },
      stat("Messages", number(c.size)),
      stat("Recent", `${number(c.recent)} (vs ${number(c.expected_recent)} expected)`),
      stat("Growth", `${number(c.growth)}×`),
      stat("First seen", time(c.first_seen)),
      stat("Last seen", time(c.last_seen)),
    ),
    h("p", {}, h("strong", {}, "Categories: "), counts(c.categories)),
    h("p", {}, h("strong", {}, "Channels: "), counts(c.channels)),
    h("p", {}, h("strong", {}, "Top terms: "), (c.top_terms ?? []).join(", ") || "—"),
    h(
      "ul",
      { class: "excerpts", "aria-label": "Representative messages" },
      (c.representatives ?? []).map((r) =>
        h(
          "li",
          {},
          h("blockquote", {}, r.excerpt),
          h("p", { class: "hint" }, `${label(r.channel)} · ${label(r.category)} · ${time(r.at)}`),
        ),
      ),
    ),
  );
}

function stat(term, value) {
  return h("div", {}, h("dt", {}, term), h("dd", {}, value));
}

function agentName(id) {
  for (const team of session.teams ?? []) {
    const agent = team.agents?.find((a) => a.id === id);
    if (agent) return agent.name;
  }
  return id;
}

function holder(c) {
  if (c.state === "offered" && c.offer) return `Offered to ${agentName(c.offer.agent_id)}`;
  return c.assignee ? agentName(c.assignee) : "—";
}

function casesTable(title, cases, members) {
  if (!cases.length)
    return h("p", { class: "empty" }, `None of its ${number(members)} messages is in a case here.`);
  const sorted = [...cases].sort((a, b) => a.priority.localeCompare(b.priority));
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "compact" },
      h("caption", {}, `Cases of “${title}”: ${number(cases.length)}`),
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["Case", "Priority", "State", "Team", "Assignee", "Incident"].map((t) =>
            h("th", { scope: "col" }, t),
          ),
        ),
      ),
      h(
        "tbody",
        {},
        sorted.map((c) =>
          h(
            "tr",
            {},
            h(
              "th",
              { scope: "row", class: "case-cell" },
              h(
                "a",
                { href: `#/cases/${c.case_id}` },
                h("span", { class: "mono" }, shortId(c.case_id)),
                " ",
                caseTitle(c, { words: true }),
              ),
            ),
            h("td", {}, priorityBadge(c.priority)),
            h("td", {}, label(c.state)),
            h("td", {}, session.teams?.find((t) => t.id === c.team)?.name ?? c.team),
            h("td", {}, holder(c)),
            h("td", {}, incidentBadge(c) ?? "—"),
          ),
        ),
      ),
    ),
  );
}
