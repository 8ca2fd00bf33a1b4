// What the agent can do with the open case; only the actions its state allows are shown.
import * as api from "../api.js";
import { h } from "../dom.js";
import { caseTitle, label } from "../format.js";
import { alertUser, announce, clearAlert, describe } from "../notices.js";
import { session } from "../store.js";

export class CaseActions {
  /** onUpdated(case) is called with the case the router answers. */
  constructor(onUpdated) {
    this.onUpdated = onUpdated;
    this.case = null;
    this.title = h("h3", { id: "actions-title", tabindex: "-1" }, "Actions");
    this.readOnly = h("p", { class: "hint" });

    this.accept = button("Accept", () => this.run("accept"));
    this.decline = button("Decline", () => this.run("decline", {}), "secondary");
    this.offerRow = h("div", { class: "button-row" }, this.accept, this.decline);

    // Waiting and resuming go with replying: "I asked; now the customer owes us an answer".
    this.wait = button("Wait on customer", () => this.run("wait", {}), "secondary");
    this.resume = button("Resume", () => this.run("resume"), "secondary");
    this.reply = h("textarea", { id: "reply", rows: "2", "aria-describedby": "reply-hint" });
    this.respondForm = form(
      "action-respond",
      h("label", { for: "reply" }, "Reply"),
      this.reply,
      h(
        "p",
        { id: "reply-hint", class: "hint" },
        "Your messaging platform delivers the reply to the customer. The console records " +
          "only that you replied and the reply's length, which stops the response clocks.",
      ),
      h(
        "div",
        { class: "button-row" },
        h("button", { type: "submit" }, "Respond"),
        this.wait,
        this.resume,
      ),
    );
    this.respondForm.addEventListener("submit", (e) => {
      e.preventDefault();
      const chars = this.reply.value.length;
      this.run("respond", chars ? { chars } : {}, () => {
        this.reply.value = "";
      });
    });

    this.note = h("textarea", { id: "resolution-note", rows: "2", maxlength: "2000" });
    this.resolveForm = form(
      "action-resolve",
      h("label", { for: "resolution-note" }, "Resolution note"),
      this.note,
      h("button", { type: "submit" }, "Resolve"),
    );
    this.resolveForm.addEventListener("submit", (e) => {
      e.preventDefault();
      const note = this.note.value.trim();
      this.run("resolve", note ? { note } : {}, () => {
        this.note.value = "";
      });
    });

    this.team = h("select", { id: "transfer-team" });
    this.transferReason = h("input", { id: "transfer-reason", type: "text", maxlength: "500" });
    this.transferForm = form(
      "action-transfer",
      h(
        "div",
        { class: "field-pair" },
        h("div", {}, h("label", { for: "transfer-team" }, "Transfer to team"), this.team),
        h(
          "div",
          {},
          h("label", { for: "transfer-reason" }, "Transfer reason (optional)"),
          this.transferReason,
        ),
      ),
      h("button", { type: "submit", class: "secondary" }, "Transfer"),
    );
    this.transferForm.addEventListener("submit", (e) => {
      e.preventDefault();
      if (!this.team.value) {
        alertUser("Choose a team to transfer to.");
        this.team.focus();
        return;
      }
      const body = { to_team: this.team.value };
      const reason = this.transferReason.value.trim();
      if (reason) body.reason = reason;
      this.run("transfer", body, () => {
        this.transferReason.value = "";
      });
    });

    this.escalateReason = h("input", { id: "escalate-reason", type: "text", maxlength: "500" });
    this.escalateForm = form(
      "action-escalate",
      h(
        "div",
        { class: "field-pair" },
        h(
          "div",
          {},
          h("label", { for: "escalate-reason" }, "Escalation reason (optional)"),
          this.escalateReason,
        ),
      ),
      h("button", { type: "submit", class: "secondary" }, "Escalate"),
    );
    this.escalateForm.addEventListener("submit", (e) => {
      e.preventDefault();
      const reason = this.escalateReason.value.trim();
      this.run("escalate", reason ? { reason } : {}, () => {
        this.escalateReason.value = "";
      });
    });

    this.element = h(
      "section",
      { class: "case-actions", "aria-labelledby": "actions-title" },
      this.title,
      this.readOnly,
      this.offerRow,
      h(
        "div",
        { class: "action-grid" },
        this.respondForm,
        this.resolveForm,
        this.transferForm,
        this.escalateForm,
      ),
    );
  }

  update(c) {
    this.case = c;
    const me = session.agentId;
    const supervisor = session.isSupervisor;
    const offeredToMe = c.state === "offered" && c.offer?.agent_id === me;
    const mine = c.assignee === me && ["assigned", "waiting_on_customer"].includes(c.state);
    const working = ["assigned", "waiting_on_customer"].includes(c.state) && (mine || supervisor);
    const open = c.state !== "resolved";
    const steer = open && (mine || offeredToMe || supervisor);

    this.offerRow.hidden = !offeredToMe;
    this.respondForm.hidden = !working;
    this.wait.hidden = !(working && c.state === "assigned");
    this.resume.hidden = !(working && c.state === "waiting_on_customer");
    this.resolveForm.hidden = !working;
    this.transferForm.hidden = !steer;
    this.escalateForm.hidden = !(steer && c.required_tier !== "supervisor");
    this.fillTeams(c.team);

    let note = "";
    if (c.state === "resolved") note = "This case is resolved.";
    else if (!steer) note = "This case is no longer yours: you can read it but not act on it.";
    else if (!mine && !offeredToMe && supervisor) note = "You act on this case as supervisor.";
    this.readOnly.textContent = note;
    this.readOnly.hidden = !note;
  }

  fillTeams(currentTeam) {
    const teams = session.teams;
    if (!teams) {
      this.team.replaceChildren(h("option", { value: "" }, "Teams not available"));
      return;
    }
    const chosen = this.team.value;
    this.team.replaceChildren(
      ...teams.filter((t) => t.id !== currentTeam).map((t) => h("option", { value: t.id }, t.name)),
    );
    if (chosen && [...this.team.options].some((o) => o.value === chosen)) this.team.value = chosen;
  }

  async run(action, body, onDone) {
    const c = this.case;
    const origin = document.activeElement;
    const controls = this.element.querySelectorAll("button, textarea, input, select");
    for (const el of controls) el.disabled = true;
    clearAlert();
    try {
      const updated = await api.post(api.casePath(c.case_id, action), body);
      onDone?.();
      session.updateCase(updated);
      this.onUpdated(updated);
      announce(doneText(action, updated, body));
    } catch (error) {
      alertUser(`${ACTION_NAMES[action]} failed. ${describe(error)}`);
    } finally {
      for (const el of controls) el.disabled = false;
      // The control used may be gone now (Wait becomes Resume): keep focus in the section.
      if (origin?.isConnected && origin.offsetParent !== null) origin.focus();
      else this.title.focus();
    }
  }
}

const ACTION_NAMES = {
  accept: "Accept",
  decline: "Decline",
  respond: "Respond",
  wait: "Wait on customer",
  resume: "Resume",
  resolve: "Resolve",
  transfer: "Transfer",
  escalate: "Escalate",
};

function button(text, onClick, className) {
  const b = h("button", { type: "button", class: className }, text);
  b.addEventListener("click", onClick);
  return b;
}

function form(className, ...children) {
  return h("form", { class: `action-form ${className}`, novalidate: true }, ...children);
}

function doneText(action, c, body) {
  const title = caseTitle(c);
  switch (action) {
    case "accept":
      return `Accepted: ${title}.`;
    case "decline":
      return `Declined: ${title}.`;
    case "respond":
      return `Reply recorded${body.chars ? ` (${body.chars} characters)` : ""}; clocks stopped.`;
    case "wait":
      return "Waiting on the customer: the resolution clock is paused.";
    case "resume":
      return "Resumed: the clocks run again.";
    case "resolve":
      return `Resolved: ${title}.`;
    case "transfer": {
      const team = session.teams?.find((t) => t.id === c.team)?.name ?? c.team;
      return `Transferred to ${team}.`;
    }
    case "escalate":
      return `Escalated: the case now needs a ${label(c.required_tier).toLowerCase()}.`;
    default:
      return "Done.";
  }
}
