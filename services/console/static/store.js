// What the console knows of the session: the signed-in agent and the cases they hold,
// kept current by the live stream. Views listen for "held", "case-event" and "me".

const OPEN_HELD = new Set(["assigned", "waiting_on_customer"]);
const ALERT_TYPES = new Set(["sla_warning", "sla_breached", "escalated"]);
const MAX_ALERTS = 100;

export const PRIORITY_RANK = { P1: 0, P2: 1, P3: 2, P4: 3 };

class Session extends EventTarget {
  constructor() {
    super();
    this.reset();
  }

  reset() {
    this.me = null; // AgentView
    this.held = new Map(); // case_id -> Case (offered to or assigned to this agent)
    this.alerts = new Map(); // key -> alert (supervisors: warnings, breaches, escalations)
    this.teams = null; // /v1/teams, when loaded
  }

  get agentId() {
    return this.me?.profile.id ?? null;
  }

  get isSupervisor() {
    return this.me?.profile.tier === "supervisor";
  }

  setMe(view) {
    this.me = view;
    this.emit("me");
  }

  /** Whether this agent holds the case: it is offered to them or they work it. */
  holds(c) {
    const id = this.agentId;
    if (c.state === "offered") return c.offer?.agent_id === id;
    return OPEN_HELD.has(c.state) && c.assignee === id;
  }

  /** Replace the held cases (the stream's snapshot, or a refetch). */
  replaceHeld(cases) {
    this.held = new Map(cases.filter((c) => this.holds(c)).map((c) => [c.case_id, c]));
    this.emit("held");
  }

  /** Take in a newer version of a case (from an action's answer or an event). */
  updateCase(c) {
    const known = this.held.get(c.case_id);
    if (known && known.version > c.version) return;
    const before = this.held.has(c.case_id);
    if (this.holds(c)) this.held.set(c.case_id, c);
    else this.held.delete(c.case_id);
    if (before || this.held.has(c.case_id)) this.emit("held");
  }

  /** Drop a case this agent turned out not to hold (the router refused to show it). */
  forget(caseId) {
    if (this.held.delete(caseId)) this.emit("held");
  }

  /** One CaseEvent from the stream. */
  applyEvent(event) {
    const wasOffered = this.held.get(event.case_id)?.state === "offered";
    this.updateCase(event.case);
    if (ALERT_TYPES.has(event.type)) this.addAlert(alertOfEvent(event));
    const newOffer = !wasOffered && this.held.get(event.case_id)?.state === "offered";
    this.emit("case-event", { event, newOffer });
  }

  addAlert(alert) {
    if (this.alerts.has(alert.key)) return false;
    this.alerts.set(alert.key, alert);
    if (this.alerts.size > MAX_ALERTS) {
      const oldest = [...this.alerts.values()].sort(
        (a, b) => Date.parse(a.at) - Date.parse(b.at),
      )[0];
      this.alerts.delete(oldest.key);
    }
    this.emit("alerts");
    return true;
  }

  emit(name, detail) {
    this.dispatchEvent(new CustomEvent(name, { detail }));
  }
}

function alertOfEvent(event) {
  const c = event.case;
  const kind = { sla_warning: "warning", sla_breached: "breach", escalated: "escalation" }[
    event.type
  ];
  const metric = event.detail?.metric ?? null;
  return {
    key: kind === "escalation" ? `escalation:${event.event_id}` : `${kind}:${c.case_id}:${metric}`,
    kind,
    at: event.at,
    caseId: c.case_id,
    subject: c.subject,
    metric,
    reason: event.detail?.reason ?? null,
    toTier: event.detail?.to_tier ?? null,
    team: c.team,
    priority: c.priority,
    assignee: c.assignee ?? c.offer?.agent_id ?? null,
  };
}

/** An alert from /v1/floor's recent_breaches. */
export function alertOfBreach(b) {
  return {
    key: `breach:${b.case_id}:${b.metric}`,
    kind: "breach",
    at: b.at,
    caseId: b.case_id,
    subject: null,
    metric: b.metric,
    reason: null,
    toTier: null,
    team: b.team,
    priority: b.priority,
    assignee: b.assignee,
  };
}

/** The nearest running deadline of a case, or null. */
export function nearestDeadline(c) {
  let best = null;
  for (const d of c.deadlines ?? []) {
    if (!d.due_at || d.paused || d.stopped_at) continue;
    if (!best || Date.parse(d.due_at) < Date.parse(best.due_at)) best = d;
  }
  return best;
}

export function isBreached(c) {
  return (c.deadlines ?? []).some((d) => d.breached);
}

/** Priority first, then the nearest deadline. */
export function byUrgency(a, b) {
  const p = PRIORITY_RANK[a.priority] - PRIORITY_RANK[b.priority];
  if (p) return p;
  const da = nearestDeadline(a)?.due_at;
  const db = nearestDeadline(b)?.due_at;
  return (da ? Date.parse(da) : Infinity) - (db ? Date.parse(db) : Infinity) || 0;
}

export const session = new Session();
