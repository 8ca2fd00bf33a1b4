// The notice an agent sees when the router set them away on its own (offers lapsed in a row,
// or their console was gone too long), with the way back: "I'm back" makes them available.
import * as api from "../api.js";
import { h } from "../dom.js";
import { alertUser, announce, clearAlert, describe } from "../notices.js";
import { session } from "../store.js";

/** Why the router set an agent away, in words (the reason of /v1/me and the floor). */
export function awayReasonText(reason, lapsed = 0) {
  if (reason === "offers_lapsed") {
    const count = lapsed > 1 ? `${lapsed} offers` : "offers";
    return `${count} lapsed in a row, unanswered`;
  }
  if (reason === "disconnected") return "console disconnected";
  return String(reason).replaceAll("_", " ");
}

let container = null;

function render() {
  if (!container) return;
  const me = session.me;
  const reason = me?.presence === "away" ? me.away_reason : null;
  if (!reason) {
    container.hidden = true;
    container.replaceChildren();
    return;
  }
  if (container.dataset.reason === reason && !container.hidden) return; // keep focus
  const back = h("button", { type: "button" }, "I'm back");
  back.addEventListener("click", () => comeBack(back));
  const why =
    reason === "offers_lapsed"
      ? "offers made to you lapsed in a row without an answer"
      : "your console was disconnected for too long";
  container.dataset.reason = reason;
  container.replaceChildren(
    h(
      "section",
      { class: "away-box", "aria-labelledby": "away-title" },
      h("h2", { id: "away-title" }, "The router set you away"),
      h(
        "p",
        {},
        `You were set away because ${why}. Your offers went back to the queue and you get ` +
          "no new ones until you are back.",
      ),
      back,
    ),
  );
  container.hidden = false;
}

async function comeBack(button) {
  button.disabled = true;
  clearAlert();
  try {
    await api.put("/v1/me/presence", { presence: "available" });
    session.setMe({ ...session.me, presence: "available", away_reason: null, lapsed_offers: 0 });
    announce("Welcome back: you are available and get offers again.");
  } catch (error) {
    button.disabled = false;
    alertUser(`Presence not changed. ${describe(error)}`);
  }
}

/** Show the notice in `el` while the signed-in agent is away by the router's doing. */
export function renderAwayNotice(el) {
  if (container !== el) {
    container = el;
    session.addEventListener("me", render);
  }
  delete container.dataset.reason;
  render();
}
